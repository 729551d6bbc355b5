// Package logind holds systemd-logind's shutdown delay lock for the node
// agent: it takes a "delay" inhibitor for "shutdown" over D-Bus, raises
// logind's InhibitDelayMaxSec with a drop-in when it is shorter than the
// agent's budget, and reports PrepareForShutdown signals.
//
// Basics: Connect dials the system bus (or Options.Address); EnsureInhibitDelay
// returns the delay logind really grants; Run takes the lock, delivers Events
// and re-takes the lock after a cancelled shutdown or a logind restart, until
// its context ends. A ShutdownStarted event carries the Release of the lock
// held at that moment: closing its file descriptor lets the shutdown go on.
//
// Caveats: logind applies drop-ins in name order, so a later-sorting file can
// undo ours; EnsureInhibitDelay therefore re-reads the property and reports
// what logind grants, never what was asked. Reloading logind is asynchronous
// (SIGHUP through systemd's KillUnit), so the re-read is polled briefly.
package logind
