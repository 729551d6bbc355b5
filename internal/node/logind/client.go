package logind

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
)

// D-Bus names of logind and of the systemd manager that reloads it.
const (
	BusName          = "org.freedesktop.login1"
	ObjectPath       = dbus.ObjectPath("/org/freedesktop/login1")
	ManagerInterface = "org.freedesktop.login1.Manager"

	systemdBusName   = "org.freedesktop.systemd1"
	systemdPath      = dbus.ObjectPath("/org/freedesktop/systemd1")
	systemdInterface = "org.freedesktop.systemd1.Manager"
	logindUnit       = "systemd-logind.service"
)

// Defaults for the zero values of Options.
const (
	DefaultWho           = "lastcall"
	DefaultWhy           = "lastcall node-agent evicts pods by priority before the node shuts down"
	DefaultDropInPath    = "/etc/systemd/logind.conf.d/99-lastcall.conf"
	DefaultReloadTimeout = 5 * time.Second
)

// ErrBusClosed is returned by Run when the D-Bus connection ends: without it
// no shutdown can be seen, so the agent must stop (and be restarted).
var ErrBusClosed = errors.New("logind: D-Bus connection closed")

// Options configures Connect. The zero value means the defaults.
type Options struct {
	// Address is the D-Bus address; empty means the system bus
	// ($DBUS_SYSTEM_BUS_ADDRESS, else /run/dbus/system_bus_socket).
	Address string
	// Who and Why describe the inhibitor lock (systemd-inhibit --list shows them).
	Who, Why string
	// DropInPath is the logind.conf drop-in written when InhibitDelayMaxSec
	// is too short. Zero: DefaultDropInPath.
	DropInPath string
	// ReadOnly makes EnsureInhibitDelay only read what logind grants: the
	// caller runs without root and the drop-in was written, and logind
	// reloaded, by a privileged step before it (node-agent prepare-logind).
	ReadOnly bool
	// ReloadTimeout bounds the wait for logind to apply the drop-in after the
	// reload. Zero: DefaultReloadTimeout.
	ReloadTimeout time.Duration
	// Logger gets one line per lock taken or released. Zero: slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Who == "" {
		o.Who = DefaultWho
	}
	if o.Why == "" {
		o.Why = DefaultWhy
	}
	if o.DropInPath == "" {
		o.DropInPath = DefaultDropInPath
	}
	if o.ReloadTimeout == 0 {
		o.ReloadTimeout = DefaultReloadTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Client talks to logind over one D-Bus connection. Its methods may be called
// from several goroutines; Run must be called at most once.
type Client struct {
	opts    Options
	conn    *dbus.Conn
	signals chan *dbus.Signal
	events  chan Event

	mu      sync.Mutex
	current *lock // the lock Run holds; nil when none

	// owner is logind's unique bus name, the only sender whose
	// PrepareForShutdown counts. Only Run's goroutine uses it after Connect.
	owner string
}

// Connect dials the bus and subscribes to logind's PrepareForShutdown and to
// changes of the owner of its bus name (a logind restart).
func Connect(ctx context.Context, opts Options) (*Client, error) {
	opts = opts.withDefaults()
	// The sequential handler keeps signals in order: a shutdown and its
	// cancellation must not swap.
	conOpts := []dbus.ConnOption{dbus.WithSignalHandler(dbus.NewSequentialSignalHandler())}
	var (
		conn *dbus.Conn
		err  error
	)
	if opts.Address != "" {
		conn, err = dbus.Connect(opts.Address, conOpts...)
	} else {
		conn, err = dbus.ConnectSystemBus(conOpts...)
	}
	if err != nil {
		return nil, fmt.Errorf("connect to D-Bus: %w", err)
	}
	c := &Client{opts: opts, conn: conn, signals: make(chan *dbus.Signal, 16), events: make(chan Event, 16)}
	conn.Signal(c.signals)
	matches := [][]dbus.MatchOption{
		// Sender is resolved by the bus to logind's current owner, so no
		// other process on the bus can fake a shutdown.
		{dbus.WithMatchSender(BusName), dbus.WithMatchObjectPath(ObjectPath), dbus.WithMatchInterface(ManagerInterface), dbus.WithMatchMember("PrepareForShutdown")},
		{dbus.WithMatchSender("org.freedesktop.DBus"), dbus.WithMatchInterface("org.freedesktop.DBus"), dbus.WithMatchMember("NameOwnerChanged"), dbus.WithMatchArg(0, BusName)},
	}
	for _, m := range matches {
		if err := conn.AddMatchSignalContext(ctx, m...); err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("subscribe to logind signals: %w", err)
		}
	}
	// Asked after subscribing, so a logind restart in between is seen as
	// NameOwnerChanged rather than missed.
	if err := conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.GetNameOwner", 0, BusName).Store(&c.owner); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("find logind on the bus (is systemd-logind running?): %w", err)
	}
	return c, nil
}

// Close releases the lock Run holds, if any, and closes the connection.
func (c *Client) Close() error {
	c.swap(nil)
	return c.conn.Close()
}

func (c *Client) logind() dbus.BusObject { return c.conn.Object(BusName, ObjectPath) }
