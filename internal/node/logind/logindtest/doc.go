// Package logindtest runs a stand-in for systemd-logind on a real, private
// dbus-daemon, so that the node agent's D-Bus code is tested as it runs in
// production: fd passing over a unix socket, properties, signals, bus names.
//
// Basics: Start launches `dbus-daemon --nofork --print-address` with a
// permissive config in a temp dir and a Service that owns
// org.freedesktop.login1 (Inhibit, InhibitDelayMaxUSec, PrepareForShutdown)
// and org.freedesktop.systemd1 (KillUnit, which applies the drop-ins in
// DropInDir to the property as a reloading logind would). Clients connect to
// Service.Address. Every lock handed out is a pipe whose read end the
// Service keeps: end-of-file means the client released it.
//
// Caveats: dbus-daemon must be installed (Debian package "dbus"); Start
// fails the test otherwise. godbus sends a method's reply after the method
// returns, so Inhibit sends its reply itself and closes its copy of the
// write end only then; godbus's own second reply is dropped by the bus.
package logindtest
