package logindtest

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/prop"
	"golang.org/x/sys/unix"
)

const (
	loginName  = "org.freedesktop.login1"
	loginPath  = dbus.ObjectPath("/org/freedesktop/login1")
	loginIface = "org.freedesktop.login1.Manager"

	systemdName  = "org.freedesktop.systemd1"
	systemdPath  = dbus.ObjectPath("/org/freedesktop/systemd1")
	systemdIface = "org.freedesktop.systemd1.Manager"

	// DefaultInhibitDelayMax is logind's built-in InhibitDelayMaxSec.
	DefaultInhibitDelayMax = 5 * time.Second
)

// Options configures Start. The zero value means the defaults.
type Options struct {
	// InhibitDelayMax is the property before any drop-in is applied.
	// Zero: DefaultInhibitDelayMax.
	InhibitDelayMax time.Duration
	// DropInDir is read by KillUnit (in name order, the last value wins).
	// Zero: a temp dir.
	DropInDir string
}

// Service is the stand-in logind. Its methods may be called from any
// goroutine.
type Service struct {
	// Address is the private bus's D-Bus address, for Options.Address or
	// DBUS_SYSTEM_BUS_ADDRESS.
	Address string

	t         testing.TB
	dropInDir string
	base      time.Duration

	mu       sync.Mutex
	conn     *dbus.Conn
	props    *prop.Properties
	locks    []*Lock
	reloads  int
	changed  chan struct{} // closed and replaced at every change
	shutdown bool
}

// Start runs a private bus and the Service on it until t ends.
func Start(t testing.TB, opts Options) *Service {
	t.Helper()
	if opts.InhibitDelayMax == 0 {
		opts.InhibitDelayMax = DefaultInhibitDelayMax
	}
	if opts.DropInDir == "" {
		opts.DropInDir = t.TempDir()
	}
	s := &Service{
		Address:   startBus(t),
		t:         t,
		dropInDir: opts.DropInDir,
		base:      opts.InhibitDelayMax,
		changed:   make(chan struct{}),
	}
	if err := s.serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.mu.Lock()
		conn, locks := s.conn, s.locks
		s.mu.Unlock()
		conn.Close()
		for _, l := range locks {
			l.r.Close()
		}
	})
	return s
}

// serve connects, exports both objects and takes both bus names.
func (s *Service) serve() error {
	conn, err := dbus.Connect(s.Address)
	if err != nil {
		return fmt.Errorf("logindtest: connect: %w", err)
	}
	m := &manager{s: s, conn: conn}
	if err := conn.Export(m, loginPath, loginIface); err != nil {
		conn.Close()
		return fmt.Errorf("logindtest: export login1: %w", err)
	}
	if err := conn.Export(&systemd{s: s}, systemdPath, systemdIface); err != nil {
		conn.Close()
		return fmt.Errorf("logindtest: export systemd1: %w", err)
	}
	s.mu.Lock()
	delay, preparing := s.base, s.shutdown
	if s.props != nil {
		delay = time.Duration(s.props.GetMust(loginIface, "InhibitDelayMaxUSec").(uint64)) * time.Microsecond
	}
	s.mu.Unlock()
	props, err := prop.Export(conn, loginPath, prop.Map{loginIface: {
		"InhibitDelayMaxUSec":  {Value: uint64(delay / time.Microsecond), Emit: prop.EmitFalse},
		"PreparingForShutdown": {Value: preparing, Emit: prop.EmitFalse},
	}})
	if err != nil {
		conn.Close()
		return fmt.Errorf("logindtest: export properties: %w", err)
	}
	for _, name := range []string{loginName, systemdName} {
		reply, err := conn.RequestName(name, dbus.NameFlagDoNotQueue)
		if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
			conn.Close()
			return fmt.Errorf("logindtest: own %s: reply %v, %v", name, reply, err)
		}
	}
	s.mu.Lock()
	s.conn, s.props = conn, props
	s.mu.Unlock()
	return nil
}

// Restart simulates a logind restart: the old connection leaves the bus (its
// names are released) and a new one takes them, so clients see
// NameOwnerChanged with a new owner. Locks handed out before stay tracked.
func (s *Service) Restart() error {
	s.mu.Lock()
	old := s.conn
	s.mu.Unlock()
	if err := old.Close(); err != nil {
		return fmt.Errorf("logindtest: close old connection: %w", err)
	}
	return s.serve()
}

// PrepareForShutdown emits logind's signal: true when a shutdown starts,
// false when it is cancelled.
// As logind does, the PreparingForShutdown property says the same before the
// signal goes out.
func (s *Service) PrepareForShutdown(active bool) error {
	s.mu.Lock()
	s.shutdown = active
	s.props.SetMust(loginIface, "PreparingForShutdown", active)
	s.mu.Unlock()
	return s.EmitPrepareForShutdownOnly(active)
}

// EmitPrepareForShutdownOnly emits the signal from logind's connection without
// changing PreparingForShutdown: a signal logind's state does not confirm.
func (s *Service) EmitPrepareForShutdownOnly(active bool) error {
	s.mu.Lock()
	conn := s.conn
	s.mu.Unlock()
	if err := conn.Emit(loginPath, loginIface+".PrepareForShutdown", active); err != nil {
		return fmt.Errorf("logindtest: emit PrepareForShutdown(%v): %w", active, err)
	}
	return nil
}

// InhibitDelayMax is the property's current value.
func (s *Service) InhibitDelayMax() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return time.Duration(s.props.GetMust(loginIface, "InhibitDelayMaxUSec").(uint64)) * time.Microsecond
}

// DropInDir is the directory KillUnit reads.
func (s *Service) DropInDir() string { return s.dropInDir }

// Reloads counts KillUnit calls that reloaded logind.
func (s *Service) Reloads() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reloads
}

// Locks returns every lock handed out, oldest first.
func (s *Service) Locks() []*Lock {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Lock(nil), s.locks...)
}

// Held counts the locks whose client has not closed them.
func (s *Service) Held() int {
	n := 0
	for _, l := range s.Locks() {
		if !l.IsReleased() {
			n++
		}
	}
	return n
}

// WaitFor blocks until cond holds (checked at every change of the Service)
// or ctx ends.
func (s *Service) WaitFor(ctx context.Context, cond func(*Service) bool) error {
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		if cond(s) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("logindtest: %w", ctx.Err())
		}
	}
}

// WaitLocks waits until at least n locks were handed out and returns them.
func (s *Service) WaitLocks(ctx context.Context, n int) ([]*Lock, error) {
	err := s.WaitFor(ctx, func(s *Service) bool { return len(s.Locks()) >= n })
	return s.Locks(), err
}

// notify wakes WaitFor callers.
func (s *Service) notify() {
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

func (s *Service) addLock(l *Lock) {
	s.mu.Lock()
	s.locks = append(s.locks, l)
	s.mu.Unlock()
	go func() {
		buf := make([]byte, 64)
		for {
			if _, err := l.r.Read(buf); err != nil {
				break // EOF: every write end is closed; or our Close at cleanup
			}
		}
		close(l.released)
		s.notify()
	}()
	s.notify()
}

// Lock is one delay inhibitor handed out by Inhibit.
type Lock struct {
	What, Who, Why, Mode string
	// Sender is the client's unique bus name.
	Sender   string
	r        *os.File
	released chan struct{}
}

// Released is closed when the client closed its fd.
func (l *Lock) Released() <-chan struct{} { return l.released }

// IsReleased reports whether the client closed its fd. It asks the kernel
// (POLLHUP on the read end: no writer is left), so it is exact the moment the
// client's close returns.
func (l *Lock) IsReleased() bool {
	hup := false
	rc, err := l.r.SyscallConn()
	if err != nil {
		return true // closed at cleanup
	}
	_ = rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if n, err := unix.Poll(fds, 0); err == nil && n > 0 {
			hup = fds[0].Revents&unix.POLLHUP != 0
		}
	})
	return hup
}
