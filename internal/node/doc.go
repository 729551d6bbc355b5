// Package node owns a node's graceful shutdown for clusters whose kubelet
// does not do it: on logind's PrepareForShutdown it cordons and taints the
// node, then evicts its pods in priority groups, lowest first, each group
// within its own budget as the kubelet's graceful node shutdown would, but
// through the Eviction API (PodDisruptionBudgets are respected until a margin
// before the group's deadline), after starting the termination runs that
// policies select, and with Events and metrics for every pod.
//
// Basics: Config is kubelet-compatible (shutdownGracePeriodByPodPriority, or
// shutdownGracePeriod with shutdownGracePeriodCriticalPods); NewPlan shows
// the order and budgets for a set of pods; Agent.Run holds the sequence
// together with a Logind (package logind in production) and a RunStarter
// (PolicyRuns: one TerminationRun per policy and group, executed by
// `lastcall server`). The delay lock is released when the sequence ends,
// when the budget is spent, on errors and on panics.
//
// Caveats: logind waits at most its InhibitDelayMaxSec; when it grants less
// than the configured total, the group budgets are scaled down to fit (never
// claimed beyond what logind grants). A cancelled shutdown is undone (uncordon,
// taint removed) only where lastcall made the change, as recorded in the
// node's annotation, which also makes the agent uncordon after a reboot.
package node
