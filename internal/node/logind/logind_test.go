package logind_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/lastcall-dev/lastcall/internal/node/logind"
	"github.com/lastcall-dev/lastcall/internal/node/logind/logindtest"
)

const waitLimit = 10 * time.Second

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// running connects a Client to svc and runs it until the test ends. The
// returned channel is closed when Run returns; *runErr holds its error then.
func running(t *testing.T, svc *logindtest.Service, opts logind.Options) (c *logind.Client, done <-chan struct{}, runErr *error) {
	t.Helper()
	opts.Address = svc.Address
	opts.Logger = quiet
	c, err := logind.Connect(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ended := make(chan struct{})
	runErr = new(error)
	go func() {
		*runErr = c.Run(ctx)
		close(ended)
	}()
	t.Cleanup(func() {
		cancel()
		<-ended
		c.Close()
	})
	return c, ended, runErr
}

// holding waits until c holds the delay lock (the service hands it out
// before the client has read the reply).
func holding(t *testing.T, c *logind.Client) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, waitLimit, true, func(context.Context) (bool, error) {
		return c.Held(), nil
	})
	if err != nil {
		t.Fatal("the client never held the delay lock")
	}
}

func waitCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	t.Cleanup(cancel)
	return ctx
}

func nextEvent(t *testing.T, c *logind.Client) logind.Event {
	t.Helper()
	select {
	case ev := <-c.Events():
		return ev
	case <-time.After(waitLimit):
		t.Fatal("no logind event within the limit")
	}
	return logind.Event{}
}

func waitReleased(t *testing.T, l *logindtest.Lock, what string) {
	t.Helper()
	select {
	case <-l.Released():
	case <-time.After(waitLimit):
		t.Fatalf("%s: the service never saw the lock's fd closed", what)
	}
}

func TestRunTakesDelayLockAndReleaseClosesItsFD(t *testing.T) {
	svc := logindtest.Start(t, logindtest.Options{})
	c, _, _ := running(t, svc, logind.Options{Why: "test reason"})

	locks, err := svc.WaitLocks(waitCtx(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	l := locks[0]
	if l.What != "shutdown" || l.Mode != "delay" || l.Who != "lastcall" || l.Why != "test reason" {
		t.Errorf("lock what=%q mode=%q who=%q why=%q, want shutdown/delay/lastcall/test reason", l.What, l.Mode, l.Who, l.Why)
	}
	if l.IsReleased() {
		t.Fatal("lock released right after it was taken")
	}

	if err := svc.PrepareForShutdown(true); err != nil {
		t.Fatal(err)
	}
	ev := nextEvent(t, c)
	if ev.Kind != logind.ShutdownStarted || ev.Release == nil {
		t.Fatalf("got event %v (release set: %v), want ShutdownStarted with a Release", ev.Kind, ev.Release != nil)
	}
	if l.IsReleased() {
		t.Fatal("a shutdown released the lock before the agent did")
	}
	if err := ev.Release(); err != nil {
		t.Fatal(err)
	}
	if !l.IsReleased() {
		t.Error("Release returned but the service still sees a writer on the lock")
	}
	waitReleased(t, l, "after Release")
	if err := ev.Release(); err != nil {
		t.Errorf("second Release: %v, want nil", err)
	}
}

func TestEnsureInhibitDelayWritesDropInReloadsAndRereads(t *testing.T) {
	svc := logindtest.Start(t, logindtest.Options{InhibitDelayMax: 5 * time.Second})
	path := filepath.Join(svc.DropInDir(), "99-lastcall.conf")
	c, _, _ := running(t, svc, logind.Options{DropInPath: path})

	d, err := c.EnsureInhibitDelay(context.Background(), 29500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if d.Before != 5*time.Second || d.Granted != 30*time.Second || d.DropIn != path || d.Short() {
		t.Errorf("got %+v, want before 5s, granted 30s (rounded up to whole seconds), drop-in %s", d, path)
	}
	if n := svc.Reloads(); n != 1 {
		t.Errorf("logind reloaded %d times, want 1", n)
	}
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), "[Login]\nInhibitDelayMaxSec=30\n") {
		t.Errorf("drop-in:\n%s\nwant [Login] InhibitDelayMaxSec=30", body)
	}
	if got := svc.InhibitDelayMax(); got != 30*time.Second {
		t.Errorf("service property %s after reload, want 30s", got)
	}
}

func TestEnsureInhibitDelayReportsWhatLogindGrantsWhenAnotherDropInWins(t *testing.T) {
	svc := logindtest.Start(t, logindtest.Options{InhibitDelayMax: 5 * time.Second})
	// Sorts after ours, as unattended-upgrades' file did (kubernetes#102818).
	other := filepath.Join(svc.DropInDir(), "99-zz-unattended-upgrades.conf")
	if err := os.WriteFile(other, []byte("[Login]\nInhibitDelayMaxSec=12\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, _, _ := running(t, svc, logind.Options{DropInPath: filepath.Join(svc.DropInDir(), "99-lastcall.conf"), ReloadTimeout: 300 * time.Millisecond})

	d, err := c.EnsureInhibitDelay(context.Background(), 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if d.Granted != 12*time.Second || !d.Short() {
		t.Errorf("got %+v, want granted 12s (the later drop-in wins) and Short", d)
	}
}

func TestEnsureInhibitDelayLeavesALongerDelayAlone(t *testing.T) {
	svc := logindtest.Start(t, logindtest.Options{InhibitDelayMax: 90 * time.Second})
	path := filepath.Join(svc.DropInDir(), "99-lastcall.conf")
	c, _, _ := running(t, svc, logind.Options{DropInPath: path})

	d, err := c.EnsureInhibitDelay(context.Background(), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if d.Granted != 90*time.Second || d.DropIn != "" || svc.Reloads() != 0 {
		t.Errorf("got %+v with %d reloads, want 90s granted, no drop-in, no reload", d, svc.Reloads())
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("drop-in written although logind granted enough: %v", err)
	}
}

// TestReadOnlyClientNeverWritesOrReloads: the unprivileged agent only reads
// what logind grants; the privileged prepare step wrote the drop-in.
func TestReadOnlyClientNeverWritesOrReloads(t *testing.T) {
	svc := logindtest.Start(t, logindtest.Options{InhibitDelayMax: 5 * time.Second})
	path := filepath.Join(svc.DropInDir(), "99-lastcall.conf")
	c, _, _ := running(t, svc, logind.Options{DropInPath: path, ReadOnly: true})
	d, err := c.EnsureInhibitDelay(context.Background(), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if d.Granted != 5*time.Second || !d.Short() || d.DropIn != "" || svc.Reloads() != 0 {
		t.Errorf("got %+v with %d reloads, want 5s granted (short), no drop-in, no reload", d, svc.Reloads())
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a read-only client wrote the drop-in: %v", err)
	}
}

func TestLockRetakenAfterCancelledShutdown(t *testing.T) {
	svc := logindtest.Start(t, logindtest.Options{})
	c, _, _ := running(t, svc, logind.Options{})
	if _, err := svc.WaitLocks(waitCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	if err := svc.PrepareForShutdown(true); err != nil {
		t.Fatal(err)
	}
	started := nextEvent(t, c)
	if err := svc.PrepareForShutdown(false); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, c); ev.Kind != logind.ShutdownCancelled {
		t.Fatalf("got %v, want ShutdownCancelled", ev.Kind)
	}
	locks, err := svc.WaitLocks(waitCtx(t), 2)
	if err != nil || len(locks) != 2 {
		t.Fatalf("%d locks handed out (%v), want 2: the first and the one re-taken after the cancel", len(locks), err)
	}
	waitReleased(t, locks[0], "the lock of the cancelled shutdown")
	// The cancelled shutdown's Release must not touch the new lock.
	if err := started.Release(); err != nil {
		t.Fatal(err)
	}
	if locks[1].IsReleased() {
		t.Fatal("the stale Release closed the lock taken after the cancel")
	}

	// And the new lock serves the next shutdown.
	if err := svc.PrepareForShutdown(true); err != nil {
		t.Fatal(err)
	}
	again := nextEvent(t, c)
	if again.Kind != logind.ShutdownStarted {
		t.Fatalf("got %v, want ShutdownStarted", again.Kind)
	}
	if err := again.Release(); err != nil {
		t.Fatal(err)
	}
	waitReleased(t, locks[1], "the re-taken lock")
}

func TestLockRetakenAfterLogindRestart(t *testing.T) {
	svc := logindtest.Start(t, logindtest.Options{})
	c, _, _ := running(t, svc, logind.Options{})
	if _, err := svc.WaitLocks(waitCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	if err := svc.Restart(); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, c); ev.Kind != logind.LogindRestarted {
		t.Fatalf("got %v, want LogindRestarted", ev.Kind)
	}
	locks, err := svc.WaitLocks(waitCtx(t), 2)
	if err != nil || len(locks) != 2 {
		t.Fatalf("%d locks handed out (%v), want 2", len(locks), err)
	}
	if locks[1].IsReleased() {
		t.Error("the lock taken from the new logind is not held")
	}
	waitReleased(t, locks[0], "the lock of the old logind")
}

func TestRunReleasesLockWhenItsContextEnds(t *testing.T) {
	svc := logindtest.Start(t, logindtest.Options{})
	c, err := logind.Connect(context.Background(), logind.Options{Address: svc.Address, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	locks, err := svc.WaitLocks(waitCtx(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	holding(t, c)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v, want nil after cancel", err)
	}
	if !locks[0].IsReleased() {
		t.Error("Run returned with the lock still held")
	}
}

func TestRunFailsWhenTheBusConnectionCloses(t *testing.T) {
	svc := logindtest.Start(t, logindtest.Options{})
	c, done, runErr := running(t, svc, logind.Options{})
	locks, err := svc.WaitLocks(waitCtx(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	holding(t, c)
	c.Close()
	select {
	case <-done:
		if !errors.Is(*runErr, logind.ErrBusClosed) {
			t.Fatalf("Run: %v, want ErrBusClosed", *runErr)
		}
	case <-time.After(waitLimit):
		t.Fatal("Run did not return after the connection closed")
	}
	waitReleased(t, locks[0], "after the connection closed")
}

func TestShutdownSignalFromAnotherSenderIsIgnored(t *testing.T) {
	svc := logindtest.Start(t, logindtest.Options{})
	c, _, _ := running(t, svc, logind.Options{})
	if _, err := svc.WaitLocks(waitCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	rogue, err := dbus.Connect(svc.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer rogue.Close()
	if err := rogue.Emit(logind.ObjectPath, logind.ManagerInterface+".PrepareForShutdown", false); err != nil {
		t.Fatal(err)
	}
	// Messages from one connection arrive in order: once this call returns,
	// the client has read the rogue signal (and must have dropped it).
	var id string
	if err := rogue.BusObject().Call("org.freedesktop.DBus.GetId", 0).Store(&id); err != nil {
		t.Fatal(err)
	}
	if err := svc.PrepareForShutdown(true); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, c); ev.Kind != logind.ShutdownStarted {
		t.Fatalf("first event %v, want ShutdownStarted: a signal not sent by logind's owner was accepted", ev.Kind)
	}
}

// forge sends a signal from conn as the rogue chooses: to dest only
// (unicast, which the bus delivers whatever the receiver's match rules say)
// or to everyone when dest is empty.
func forge(t *testing.T, conn *dbus.Conn, dest string, path dbus.ObjectPath, iface, member string, body ...any) {
	t.Helper()
	msg := &dbus.Message{Type: dbus.TypeSignal, Headers: map[dbus.HeaderField]dbus.Variant{
		dbus.FieldPath:      dbus.MakeVariant(path),
		dbus.FieldInterface: dbus.MakeVariant(iface),
		dbus.FieldMember:    dbus.MakeVariant(member),
		dbus.FieldSignature: dbus.MakeVariant(dbus.SignatureOf(body...)),
	}, Body: body}
	if dest != "" {
		msg.Headers[dbus.FieldDestination] = dbus.MakeVariant(dest)
	}
	if call := conn.Send(msg, nil); call.Err != nil {
		t.Fatal(call.Err)
	}
}

// TestForgedShutdownSignalsAreIgnored: a bus client that is not logind sends
// PrepareForShutdown(true) to the agent alone, and to everyone, and fakes a
// logind restart; the agent must act on none of them, and still on logind's
// own broadcast after them.
func TestForgedShutdownSignalsAreIgnored(t *testing.T) {
	svc := logindtest.Start(t, logindtest.Options{})
	c, _, _ := running(t, svc, logind.Options{})
	locks, err := svc.WaitLocks(waitCtx(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	agent := locks[0].Sender
	rogue, err := dbus.Connect(svc.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer rogue.Close()
	forge(t, rogue, agent, logind.ObjectPath, logind.ManagerInterface, "PrepareForShutdown", true)
	forge(t, rogue, "", logind.ObjectPath, logind.ManagerInterface, "PrepareForShutdown", true)
	forge(t, rogue, agent, "/org/freedesktop/DBus", "org.freedesktop.DBus", "NameOwnerChanged", logind.BusName, ":1.1", rogue.Names()[0])
	// Messages from one connection are routed in order: once this call
	// returns, the agent has been sent every forgery, before logind's signal.
	var id string
	if err := rogue.BusObject().Call("org.freedesktop.DBus.GetId", 0).Store(&id); err != nil {
		t.Fatal(err)
	}
	if err := svc.PrepareForShutdown(true); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, c); ev.Kind != logind.ShutdownStarted {
		t.Fatalf("first event %v, want ShutdownStarted", ev.Kind)
	}
	if err := svc.PrepareForShutdown(false); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, c); ev.Kind != logind.ShutdownCancelled {
		t.Fatalf("second event %v, want ShutdownCancelled: a forged signal was taken for logind's", ev.Kind)
	}
}

// TestShutdownSignalNotConfirmedByLogindIsIgnored: logind's own signal
// counts only when its PreparingForShutdown property agrees, so a stray or
// replayed signal cannot start a drain.
func TestShutdownSignalNotConfirmedByLogindIsIgnored(t *testing.T) {
	svc := logindtest.Start(t, logindtest.Options{})
	c, _, _ := running(t, svc, logind.Options{})
	if _, err := svc.WaitLocks(waitCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	if err := svc.EmitPrepareForShutdownOnly(true); err != nil {
		t.Fatal(err)
	}
	if err := svc.PrepareForShutdown(true); err != nil {
		t.Fatal(err)
	}
	// The agent reads the property when it handles each signal; the
	// cancellation is sent only once it has handled the real one.
	if ev := nextEvent(t, c); ev.Kind != logind.ShutdownStarted {
		t.Fatalf("first event %v, want ShutdownStarted", ev.Kind)
	}
	if err := svc.PrepareForShutdown(false); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, c); ev.Kind != logind.ShutdownCancelled {
		t.Fatalf("second event %v, want ShutdownCancelled: the unconfirmed signal was acted on", ev.Kind)
	}
}

// TestShutdownInProgressAtStartIsResumed: an agent (re)started while logind
// prepares a shutdown missed the signal; it resumes the shutdown.
func TestShutdownInProgressAtStartIsResumed(t *testing.T) {
	svc := logindtest.Start(t, logindtest.Options{})
	if err := svc.PrepareForShutdown(true); err != nil {
		t.Fatal(err)
	}
	c, _, _ := running(t, svc, logind.Options{})
	if ev := nextEvent(t, c); ev.Kind != logind.ShutdownStarted || ev.Release == nil {
		t.Fatalf("first event %v, want ShutdownStarted with a Release", ev.Kind)
	}
}
