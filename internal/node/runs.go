package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// RunStarter starts the termination runs that policies select for pods
// about to be evicted. The agent calls it once per priority group, before
// the group's evictions; a nil RunStarter means no policies are configured.
// PolicyRuns is the implementation on TerminationRuns.
type RunStarter interface {
	// StartRuns starts runs for the pods a policy selects (possibly none)
	// and returns a waiter for them, nil when there is nothing to wait
	// for. The waiter follows the runs until ctx ends.
	StartRuns(ctx context.Context, req RunRequest) (RunWaiter, error)
}

// RunWaiter waits for the runs StartRuns started.
type RunWaiter interface {
	// Wait returns when every run that covers pod has ended or is done with
	// it (at once for a pod no run covers), or when ctx ends.
	Wait(ctx context.Context, pod *corev1.Pod) error
}

// RunRequest is what a RunStarter gets for one priority group.
type RunRequest struct {
	Shutdown ShutdownID
	Group    Group
	// Pods are the group's pods, to be evicted once their runs end.
	Pods []corev1.Pod
	// Deadline is when evictions begin whatever the runs' state.
	Deadline time.Time
}

// ShutdownID names one shutdown of a node by the boot it happened in and
// when it began, as recorded in the node's annotation: an agent restarted
// during the shutdown finds the same ID, so it names the same runs and does
// not start them twice.
type ShutdownID struct {
	Node   string
	BootID string
	Since  time.Time
}

// Key is a short hash of the ID, fit for a label value.
func (s ShutdownID) Key() string {
	sum := sha256.Sum256([]byte(s.Node + "\x00" + s.BootID + "\x00" + s.Since.UTC().Format(time.RFC3339)))
	return hex.EncodeToString(sum[:])[:16]
}

// startRuns asks the RunStarter for the group's runs; they may use the
// first RunShare of the group's budget. A nil waiter means: evict at once.
func (a *Agent) startRuns(ctx context.Context, sid ShutdownID, g Group, pods []corev1.Pod, start, deadline time.Time) (RunWaiter, time.Time) {
	if a.runs == nil {
		return nil, start
	}
	runsDeadline := start.Add(time.Duration(float64(deadline.Sub(start)) * a.cfg.RunShare))
	w, err := a.runs.StartRuns(ctx, RunRequest{Shutdown: sid, Group: g, Pods: pods, Deadline: runsDeadline})
	if err != nil {
		a.log.Error("node shutdown: cannot start termination runs; evicting without them", "group", g.Priority, "pods", len(pods), "err", err)
		a.rec.Eventf(nodeRef(a.cfg.NodeName), corev1.EventTypeWarning, ReasonRunsFailed,
			"Termination runs for priority group %d could not start (%v): its pods are evicted without them", g.Priority, err)
		return nil, start
	}
	return w, runsDeadline
}

// waitRuns holds pod's eviction until its runs end or runsDeadline passes.
// A run that fails or overruns never blocks the eviction: the waiter
// reports it, and the pod goes on.
func (a *Agent) waitRuns(ctx context.Context, w RunWaiter, pod *corev1.Pod, runsDeadline time.Time) {
	if w == nil {
		return
	}
	rctx, cancel := withDeadline(ctx, a.clock, runsDeadline)
	defer cancel()
	_ = w.Wait(rctx, pod)
}

// groupLabel is a group's metric and label value: its priority, bounded by
// the config.
func groupLabel(g Group) string { return strconv.FormatInt(int64(g.Priority), 10) }

// runChecker is a RunStarter that can tell at start whether it will work
// (PolicyRuns: the CRDs are installed and RBAC lets it read policies).
type runChecker interface {
	Check(ctx context.Context) error
}

// checkRuns says at start when pods will be evicted without runs.
func (a *Agent) checkRuns(ctx context.Context) {
	ref := nodeRef(a.cfg.NodeName)
	if a.runs == nil {
		a.log.Warn("node agent: termination runs are off: pods are evicted without runs")
		a.rec.Event(ref, corev1.EventTypeNormal, ReasonNoPolicies, "Termination runs are off: pods are evicted without runs")
		return
	}
	c, ok := a.runs.(runChecker)
	if !ok {
		return
	}
	if err := c.Check(ctx); err != nil {
		a.log.Warn("node agent: termination policies cannot be read; until they can, pods are evicted without runs", "err", err)
		a.rec.Eventf(ref, corev1.EventTypeWarning, ReasonNoPolicies,
			"Termination policies cannot be read (%v): until they can, pods are evicted without runs", err)
	}
}
