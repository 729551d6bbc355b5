package logind

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/godbus/dbus/v5"
	"k8s.io/apimachinery/pkg/util/wait"
)

// Delay is what EnsureInhibitDelay found and did.
type Delay struct {
	// Requested is what the caller asked for.
	Requested time.Duration
	// Before is logind's InhibitDelayMaxUSec before any change.
	Before time.Duration
	// Granted is logind's InhibitDelayMaxUSec now: the longest logind waits
	// for a delay lock. It can be below Requested (another drop-in wins).
	Granted time.Duration
	// DropIn is the path written, empty when logind already granted enough.
	DropIn string
}

// Short reports whether logind grants less than was requested.
func (d Delay) Short() bool { return d.Granted < d.Requested }

// InhibitDelayMax reads logind's InhibitDelayMaxUSec.
func (c *Client) InhibitDelayMax(ctx context.Context) (time.Duration, error) {
	var v dbus.Variant
	err := c.logind().CallWithContext(ctx, "org.freedesktop.DBus.Properties.Get", 0, ManagerInterface, "InhibitDelayMaxUSec").Store(&v)
	if err != nil {
		return 0, fmt.Errorf("read logind InhibitDelayMaxUSec: %w", err)
	}
	usec, ok := v.Value().(uint64)
	if !ok {
		return 0, fmt.Errorf("read logind InhibitDelayMaxUSec: got %s, want uint64", v.Signature())
	}
	if usec > uint64(math.MaxInt64/int64(time.Microsecond)) {
		return time.Duration(math.MaxInt64), nil // "infinity"
	}
	return time.Duration(usec) * time.Microsecond, nil
}

// EnsureInhibitDelay makes logind wait at least want for delay locks if it
// can: when InhibitDelayMaxUSec is shorter it writes the drop-in, reloads
// logind (SIGHUP through systemd) and re-reads the property until it is
// long enough or ReloadTimeout passes (with Options.ReadOnly it only reads).
// A logind that still grants less is not
// an error: the returned Delay says what it grants, and callers must plan
// with that.
func (c *Client) EnsureInhibitDelay(ctx context.Context, want time.Duration) (Delay, error) {
	d := Delay{Requested: want}
	var err error
	if d.Before, err = c.InhibitDelayMax(ctx); err != nil {
		return d, err
	}
	d.Granted = d.Before
	if d.Before >= want || c.opts.ReadOnly {
		return d, nil
	}
	if err := writeDropIn(c.opts.DropInPath, want); err != nil {
		return d, err
	}
	d.DropIn = c.opts.DropInPath
	if err := c.reload(ctx); err != nil {
		return d, err
	}
	// logind reloads on its own time after the signal: poll the property.
	pollErr := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, c.opts.ReloadTimeout, true, func(ctx context.Context) (bool, error) {
		got, err := c.InhibitDelayMax(ctx)
		if err != nil {
			return false, err
		}
		d.Granted = got
		return got >= want, nil
	})
	if pollErr != nil && !wait.Interrupted(pollErr) {
		return d, pollErr
	}
	if ctx.Err() != nil {
		return d, ctx.Err()
	}
	return d, nil
}

// reload asks systemd to send SIGHUP to logind, which re-reads its config.
func (c *Client) reload(ctx context.Context) error {
	obj := c.conn.Object(systemdBusName, systemdPath)
	call := obj.CallWithContext(ctx, systemdInterface+".KillUnit", 0, logindUnit, "all", int32(syscall.SIGHUP))
	if call.Err != nil {
		return fmt.Errorf("reload logind (KillUnit %s SIGHUP): %w", logindUnit, call.Err)
	}
	return nil
}

// writeDropIn writes [Login] InhibitDelayMaxSec, rounded up to whole
// seconds, atomically: logind never reads half a file.
func writeDropIn(path string, want time.Duration) error {
	secs := int64(math.Ceil(want.Seconds()))
	body := fmt.Sprintf("# Written by lastcall node-agent: how long logind waits for its shutdown delay lock.\n[Login]\nInhibitDelayMaxSec=%d\n", secs)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write logind drop-in: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".lastcall-*.conf.tmp")
	if err != nil {
		return fmt.Errorf("write logind drop-in: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.WriteString(body); err != nil {
		tmp.Close()
		return fmt.Errorf("write logind drop-in %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("write logind drop-in %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write logind drop-in %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write logind drop-in %s: %w", path, err)
	}
	return nil
}
