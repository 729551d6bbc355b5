package prestop

// HookHelp is the long help of `lastcall prestop` and `lastcall-prestop`.
const HookHelp = `Run as a container's preStop exec hook. Within the termination grace budget,
and leaving --reserve of it for the app's own SIGTERM shutdown, it runs each
configured step in order: drain (POST --drain-url), wait (no ESTABLISHED
connection left on --port), save (--save paths as one tar to the state API)
and run (POST --run-url). A step runs even if an earlier one failed.

The budget is --budget, or deletionTimestamp − now read from the API server
as the pod's ServiceAccount (RBAC: get on its own pod), or 30s if neither is
available. Every step ends by start + budget − reserve; if that is not in the
future, no step runs and the summary says so.

The summary (each step: done, failed or skipped, how long, why) goes to
stdout, to --termination-message-path (kubectl describe pod) and to --console
(PID 1's stdout, so kubectl logs shows it). The exit code is 1 when a required
(configured, not --optional) step was not done, so the kubelet records a
FailedPreStopHook event. Running it twice is harmless: the second save is a
new version.`

// RestoreHelp is the long help of `lastcall restore` and
// `lastcall-prestop restore`.
const RestoreHelp = `Run as an initContainer: fetch the state saved by the preStop hook (the latest
version, or --version) and put it in --dir. The SHA-256 is verified while
streaming; a tar is unpacked into a scratch directory inside --dir (entries
with absolute names, "..", or symlinks pointing outside are refused) and only
then moved into place, replacing entries of the same names. A payload that is
not a tar is written to --dir/--file the same way.

Nothing saved yet (a first start) exits 0 with a message, unless --require.
Transport errors, 5xx answers and checksum mismatches are retried until
--timeout; 4xx answers are not.`
