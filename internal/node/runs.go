package node

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// RunStarter starts the termination runs that policies select for pods
// about to be evicted. The agent calls it once per priority group, before
// the group's evictions; a nil RunStarter means no policies are configured.
type RunStarter interface {
	// StartRuns starts runs for the pods a policy selects (possibly none)
	// and returns a waiter for them. deadline is when evictions begin
	// whatever the runs' state.
	StartRuns(ctx context.Context, pods []corev1.Pod, deadline time.Time) (RunWaiter, error)
}

// RunWaiter waits for the runs StartRuns started.
type RunWaiter interface {
	// Wait returns when every run has ended, or when ctx ends (at the
	// deadline given to StartRuns).
	Wait(ctx context.Context) error
}

// runPolicies starts the group's runs and waits for them until their share
// of the group's budget is used.
func (a *Agent) runPolicies(ctx context.Context, pods []corev1.Pod, start, deadline time.Time) {
	if a.runs == nil {
		return
	}
	runsDeadline := start.Add(time.Duration(float64(deadline.Sub(start)) * a.cfg.RunShare))
	w, err := a.runs.StartRuns(ctx, pods, runsDeadline)
	if err != nil {
		a.log.Error("node shutdown: cannot start termination runs; evicting without them", "pods", len(pods), "err", err)
		return
	}
	if w == nil {
		return
	}
	rctx, cancel := withDeadline(ctx, a.clock, runsDeadline)
	defer cancel()
	if err := w.Wait(rctx); err != nil {
		a.log.Warn("node shutdown: termination runs did not all end in time; evicting now", "pods", len(pods), "err", err)
	}
}
