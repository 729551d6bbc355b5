package logind

import (
	"context"
	"fmt"
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
	for {
		select {
		case <-ctx.Done():
			return nil
		case sig, ok := <-c.signals:
			if !ok {
				return ErrBusClosed
			}
			ev, ok := c.handle(ctx, sig.Name, sig.Body)
			if !ok {
				continue
			}
			select {
			case c.events <- ev:
			case <-ctx.Done():
				return nil
			}
		}
	}
}

func (c *Client) handle(ctx context.Context, name string, body []any) (Event, bool) {
	switch name {
	case ManagerInterface + ".PrepareForShutdown":
		active, ok := arg[bool](body, 0)
		if !ok {
			c.opts.Logger.Warn("malformed PrepareForShutdown signal", "body", body)
			return Event{}, false
		}
		if active {
			return Event{Kind: ShutdownStarted, Release: c.releaser()}, true
		}
		c.retake(ctx, "shutdown cancelled")
		return Event{Kind: ShutdownCancelled}, true
	case "org.freedesktop.DBus.NameOwnerChanged":
		name, _ := arg[string](body, 0)
		newOwner, _ := arg[string](body, 2)
		if name != BusName || newOwner == "" {
			return Event{}, false // logind left; wait for the new one
		}
		c.retake(ctx, "logind restarted")
		return Event{Kind: LogindRestarted}, true
	}
	return Event{}, false
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
