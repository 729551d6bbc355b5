// Package prestop owns what runs inside a dying container and in its
// replacement: the preStop hook (drain the app, wait for its connections,
// save its files to the state API, ask for a TerminationRun) within the
// termination grace budget, and the restore an initContainer runs.
//
// Basics: NewHook(Config{...}, clock, logger, stdout).Run(ctx) runs the
// steps in order, each ending by start + budget − reserve, and writes a
// Summary to stdout, the termination message and PID 1's stdout; it returns
// ErrStepFailed when a required step was not done. NewRestorer(
// RestoreConfig{...}, clock, logger).Run(ctx) fetches the latest (or a
// given) version and unpacks it safely. Config and RestoreConfig mean their
// defaults when zero, and AddFlags binds them to flags; both the `lastcall`
// subcommands and the static cmd/lastcall-prestop use them.
//
// Caveats: the package talks to the Kubernetes API and the state API with
// plain net/http, because it is linked into a small static helper copied
// into app images: no client-go, controller-runtime, Prometheus or cloud
// SDK may enter its import graph (cmd/lastcall-prestop tests that). The
// budget counts from the hook process's start; the runtime's exec overhead
// before that comes out of the reserve. A save whose answer the deadline
// cut off is reported as of unknown outcome: the server may have stored it.
package prestop
