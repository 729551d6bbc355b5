package logindtest

import (
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/godbus/dbus/v5"
)

// manager implements the part of org.freedesktop.login1.Manager the agent uses.
type manager struct {
	s    *Service
	conn *dbus.Conn
}

// Inhibit hands out the write end of a pipe as the lock. It sends the reply
// itself (msg carries the caller and serial) so that it can close its own
// copy of the write end after the fd has gone out; then the client's close
// is the last one and shows as EOF on the read end. godbus's automatic empty
// reply that follows is unexpected for the bus, which drops it.
func (m *manager) Inhibit(msg dbus.Message, what, who, why, mode string) *dbus.Error {
	if what != "shutdown" || mode != "delay" {
		return dbus.MakeFailedError(fmt.Errorf("logindtest supports what=shutdown mode=delay only, got what=%q mode=%q", what, mode))
	}
	r, w, err := os.Pipe()
	if err != nil {
		return dbus.MakeFailedError(err)
	}
	sender, _ := msg.Headers[dbus.FieldSender].Value().(string)
	reply := &dbus.Message{
		Type: dbus.TypeMethodReply,
		Headers: map[dbus.HeaderField]dbus.Variant{
			dbus.FieldDestination: dbus.MakeVariant(sender),
			dbus.FieldReplySerial: dbus.MakeVariant(msg.Serial()),
			dbus.FieldSignature:   dbus.MakeVariant(dbus.SignatureOf(dbus.UnixFD(0))),
		},
		Body: []any{dbus.UnixFD(w.Fd())},
	}
	call := m.conn.Send(reply, nil) // synchronous for replies: the fd is in the kernel now
	w.Close()
	if call.Err != nil {
		r.Close()
		return dbus.MakeFailedError(call.Err)
	}
	m.s.addLock(&Lock{What: what, Who: who, Why: why, Mode: mode, Sender: sender, r: r, released: make(chan struct{})})
	return nil
}

// systemd implements org.freedesktop.systemd1.Manager.KillUnit for logind.
type systemd struct{ s *Service }

// KillUnit with SIGHUP on systemd-logind.service reloads the fake logind:
// it applies the drop-ins of DropInDir to InhibitDelayMaxUSec.
func (d *systemd) KillUnit(unit, whom string, signal int32) *dbus.Error {
	if unit != "systemd-logind.service" || whom != "all" || signal != int32(syscall.SIGHUP) {
		return dbus.MakeFailedError(fmt.Errorf("logindtest: unexpected KillUnit(%q, %q, %d)", unit, whom, signal))
	}
	delay, err := readDropIns(d.s.dropInDir, d.s.base)
	if err != nil {
		return dbus.MakeFailedError(err)
	}
	d.s.mu.Lock()
	d.s.props.SetMust(loginIface, "InhibitDelayMaxUSec", uint64(delay/time.Microsecond))
	d.s.reloads++
	d.s.mu.Unlock()
	d.s.notify()
	return nil
}
