// Package kubeletsim plays the kubelet's part in stopping a container, for
// tests: it runs the container's command as a local process and terminates
// it exactly as the kubelet does, preStop hook first.
//
// Basics: Start runs Spec.Command; Container.Terminate(ctx, grace) then
// follows kubelet's killContainer and executePreStopHook
// (pkg/kubelet/kuberuntime/kuberuntime_container.go, Kubernetes 1.34):
//
//  1. If there is a preStop exec hook and grace > 0, run it with the whole
//     grace as its deadline. The kubelet does not cancel a hook that
//     overruns: it stops waiting for it, and the hook goes on running until
//     the container dies. A hook that fails gives a FailedPreStopHook
//     Warning event whose message is only "PreStopHook failed".
//  2. Subtract the hook's duration from the grace; whatever is left is
//     raised to minimumGracePeriodInSeconds (2 s), so even a container whose
//     hook used everything gets 2 s after SIGTERM.
//  3. StopContainer: SIGTERM to the container's main process, SIGKILL (to
//     every process of the container) when the grace left runs out.
//  4. When the main process is gone, every other process of the container,
//     an overrunning hook included, dies with it.
//
// Checked against the real kubelet (test/realnode, issue 17): a hook that
// returns gives SIGTERM at once; a hook that overruns is waited for the
// whole grace, then SIGTERM, then SIGKILL 2 s later; FailedPreStopHook comes
// at once for a hook that fails and, for one that overruns, only when the
// SIGKILL ends it. The one difference that matters to a test is the start:
// the real kubelet began the hook about 2 s after the delete returned (its
// pod worker's sync), the simulator at Terminate.
//
// Where it is kept, and why: cmd/lastcall-prestop's soak test terminates an
// app 50 times with budgets of 0.2–3 s, which no pod can have (grace is in
// whole seconds, the hook's start lags by ~2 s) and which would take minutes
// on a node. Everything a real node can show is shown there instead.
//
// Caveats: the kubelet counts in whole seconds and truncates the hook's
// duration (a 1.9 s hook costs 1 s); the simulator subtracts the exact
// duration, so it is never more generous than a real node. The termination
// message is read like the kubelet does (the file's last 4096 bytes). Exec
// hook output, which a real kubelet shows nowhere but its own log, goes to
// Spec.HookOutput. Processes run with the test's privileges, in their own
// process group standing in for the container's cgroup.
package kubeletsim
