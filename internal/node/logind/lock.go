package logind

import (
	"context"
	"fmt"
	"os"
	"sync"
	"syscall"

	"github.com/godbus/dbus/v5"
)

// lock is one delay inhibitor: logind waits while its fd is open.
type lock struct {
	f        *os.File
	mu       sync.Mutex
	released bool
}

// release closes the fd once; it reports whether this call closed it.
func (l *lock) release() (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return false, nil
	}
	l.released = true
	return true, l.f.Close()
}

func (l *lock) held() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.released
}

// inhibit asks logind for a delay lock on shutdown.
func (c *Client) inhibit(ctx context.Context) (*lock, error) {
	var fd dbus.UnixFD
	call := c.logind().CallWithContext(ctx, ManagerInterface+".Inhibit", 0, "shutdown", c.opts.Who, c.opts.Why, "delay")
	if err := call.Store(&fd); err != nil {
		return nil, fmt.Errorf("take logind delay lock: %w", err)
	}
	syscall.CloseOnExec(int(fd))
	return &lock{f: os.NewFile(uintptr(fd), "logind-delay-lock")}, nil
}

// take replaces the current lock by a new one. The new lock is taken before
// the old one is released, so that the node is never without one.
func (c *Client) take(ctx context.Context) error {
	l, err := c.inhibit(ctx)
	if err != nil {
		return err
	}
	c.swap(l)
	c.opts.Logger.Info("logind delay lock taken", "who", c.opts.Who)
	return nil
}

// swap makes l the current lock and releases the previous one.
func (c *Client) swap(l *lock) {
	c.mu.Lock()
	old := c.current
	c.current = l
	c.mu.Unlock()
	if old != nil {
		_, _ = old.release()
	}
}

// releaser returns a Release for the lock held now: it closes that lock only,
// never one taken later, and may be called more than once.
func (c *Client) releaser() func() error {
	c.mu.Lock()
	l := c.current
	c.mu.Unlock()
	return func() error {
		if l == nil {
			return nil
		}
		closed, err := l.release()
		if err != nil {
			return fmt.Errorf("release logind delay lock: %w", err)
		}
		if closed {
			c.opts.Logger.Info("logind delay lock released", "who", c.opts.Who)
		}
		return nil
	}
}

// Held reports whether Run holds a delay lock that is not released.
func (c *Client) Held() bool {
	c.mu.Lock()
	l := c.current
	c.mu.Unlock()
	return l != nil && l.held()
}
