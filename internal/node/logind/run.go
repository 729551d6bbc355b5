package logind

import (
	"context"
	"fmt"

	"github.com/godbus/dbus/v5"
)

// EventKind says what logind did.
type EventKind int

// The events Run delivers.
const (
	// ShutdownStarted: PrepareForShutdown(true). The lock is still held;
	// Event.Release lets the shutdown go on.
	ShutdownStarted EventKind = iota + 1
	// ShutdownCancelled: PrepareForShutdown(false). Run has taken a new lock.
	ShutdownCancelled
	// LogindRestarted: a new logind owns its bus name. Run has taken a new
	// lock from it.
	LogindRestarted
)

func (k EventKind) String() string {
	switch k {
	case ShutdownStarted:
		return "ShutdownStarted"
	case ShutdownCancelled:
		return "ShutdownCancelled"
	case LogindRestarted:
		return "LogindRestarted"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is one thing logind did that the agent must act on.
type Event struct {
	Kind EventKind
	// Release closes the delay lock that was held when the shutdown started
	// (never a lock taken later) and may be called more than once. Set for
	// ShutdownStarted only; a no-op when no lock was held.
	Release func() error
}

// Events delivers what Run sees, in order. It is never closed; Run's return
// says when no more will come.
func (c *Client) Events() <-chan Event { return c.events }

// Run takes the delay lock and watches logind until ctx ends (then it
// releases the lock and returns nil) or the bus connection closes
// (ErrBusClosed). After a cancelled shutdown and after a logind restart it
// takes a new lock; failing to take one is logged and retried at the next
// signal, since stopping would leave the node with no lock at all.
func (c *Client) Run(ctx context.Context) error {
	defer c.swap(nil)
	if err := c.take(ctx); err != nil {
		switch {
		case ctx.Err() != nil:
			return nil
		case !c.conn.Connected():
			return fmt.Errorf("%w: %w", ErrBusClosed, err)
		}
		return err
	}
	// An agent restarted while logind prepares a shutdown missed the signal:
	// logind's own state says so, and the shutdown goes on from here.
	// started: a shutdown is under way; a second confirmed signal (a
	// replay, or the property already true when an earlier signal was
	// handled) is the same shutdown, not a new one.
	started := false
	if c.preparing(ctx) {
		c.opts.Logger.Warn("logind is already preparing a shutdown; resuming it")
		started = true
		select {
		case c.events <- Event{Kind: ShutdownStarted, Release: c.releaser()}:
		case <-ctx.Done():
			return nil
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case sig, ok := <-c.signals:
			if !ok {
				return ErrBusClosed
			}
			ev, ok := c.handle(ctx, sig)
			if !ok || (ev.Kind == ShutdownStarted && started) {
				continue
			}
			switch ev.Kind {
			case ShutdownStarted:
				started = true
			case ShutdownCancelled:
				started = false
			}
			select {
			case c.events <- ev:
			case <-ctx.Done():
				return nil
			}
		}
	}
}

// handle turns a signal into an Event. The bus stamps every message with its
// true sender, but it delivers a signal addressed to us (unicast) whatever our
// match rules say, so any client could send one: only logind's current owner
// counts for PrepareForShutdown, only the bus itself for NameOwnerChanged, and
// a shutdown must also be confirmed by logind's PreparingForShutdown property.
func (c *Client) handle(ctx context.Context, sig *dbus.Signal) (Event, bool) {
	switch sig.Name {
	case ManagerInterface + ".PrepareForShutdown":
		if sig.Sender != c.owner || sig.Path != ObjectPath {
			c.opts.Logger.Warn("ignored PrepareForShutdown not sent by logind", "sender", sig.Sender, "logind", c.owner, "path", sig.Path)
			return Event{}, false
		}
		active, ok := arg[bool](sig.Body, 0)
		if !ok {
			c.opts.Logger.Warn("malformed PrepareForShutdown signal", "body", sig.Body)
			return Event{}, false
		}
		if active {
			if !c.confirmed(ctx) {
				return Event{}, false
			}
			return Event{Kind: ShutdownStarted, Release: c.releaser()}, true
		}
		c.retake(ctx, "shutdown cancelled")
		return Event{Kind: ShutdownCancelled}, true
	case "org.freedesktop.DBus.NameOwnerChanged":
		if sig.Sender != "org.freedesktop.DBus" {
			c.opts.Logger.Warn("ignored NameOwnerChanged not sent by the bus", "sender", sig.Sender)
			return Event{}, false
		}
		name, _ := arg[string](sig.Body, 0)
		newOwner, _ := arg[string](sig.Body, 2)
		if name != BusName {
			return Event{}, false
		}
		c.owner = newOwner
		if newOwner == "" {
			return Event{}, false // logind left; wait for the new one
		}
		c.retake(ctx, "logind restarted")
		return Event{Kind: LogindRestarted}, true
	}
	return Event{}, false
}

// confirmed asks logind whether it is really preparing a shutdown. When the
// property cannot be read the signal, whose sender the bus vouches for, is
// believed: missing a real shutdown is the worse mistake.
func (c *Client) confirmed(ctx context.Context) bool {
	preparing, err := c.readPreparing(ctx)
	switch {
	case err != nil:
		c.opts.Logger.Error("cannot read logind's PreparingForShutdown; acting on its signal", "err", err)
		return true
	case !preparing:
		c.opts.Logger.Warn("ignored PrepareForShutdown(true): logind says it is not preparing a shutdown")
		return false
	}
	return true
}

// preparing reports whether logind prepares a shutdown now; false when it
// cannot be read (then only a signal starts one).
func (c *Client) preparing(ctx context.Context) bool {
	p, err := c.readPreparing(ctx)
	if err != nil {
		c.opts.Logger.Warn("cannot read logind's PreparingForShutdown", "err", err)
	}
	return p
}

func (c *Client) readPreparing(ctx context.Context) (bool, error) {
	var v dbus.Variant
	if err := c.logind().CallWithContext(ctx, "org.freedesktop.DBus.Properties.Get", 0, ManagerInterface, "PreparingForShutdown").Store(&v); err != nil {
		return false, fmt.Errorf("read logind PreparingForShutdown: %w", err)
	}
	p, ok := v.Value().(bool)
	if !ok {
		return false, fmt.Errorf("read logind PreparingForShutdown: got %s, want a boolean", v.Signature())
	}
	return p, nil
}

func (c *Client) retake(ctx context.Context, why string) {
	if err := c.take(ctx); err != nil {
		c.opts.Logger.Error("cannot take logind delay lock; shutdowns are not delayed until the next logind signal", "reason", why, "err", err)
	}
}

func arg[T any](body []any, i int) (T, bool) {
	var zero T
	if i >= len(body) {
		return zero, false
	}
	v, ok := body[i].(T)
	return v, ok
}
