package node

import (
	"context"
	"errors"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
	"github.com/lastcall-dev/lastcall/internal/run"
)

// Results of termination runs for lastcall_node_shutdown_runs_total.
const (
	runSucceeded = "succeeded"
	runFailed    = "failed"
	runTimeout   = "timeout" // still going when evictions had to start
	runError     = "error"   // could not be created
)

// runWaiter follows one group's runs with a single watch and tells each
// pod's eviction when the runs covering it are done with it.
type runWaiter struct {
	p   *PolicyRuns
	req RunRequest

	mu      sync.Mutex
	runs    map[types.NamespacedName]*runState
	byPod   map[types.NamespacedName][]*runState
	changed chan struct{} // closed and replaced at every change
}

// runState is what the watch last showed of one run.
type runState struct {
	key   types.NamespacedName
	last  *v1alpha1.TerminationRun // nil until seen
	ended bool
}

func newRunWaiter(p *PolicyRuns, req RunRequest) *runWaiter {
	return &runWaiter{p: p, req: req, runs: map[types.NamespacedName]*runState{},
		byPod: map[types.NamespacedName][]*runState{}, changed: make(chan struct{})}
}

func (w *runWaiter) add(pr plannedRun) {
	w.mu.Lock()
	defer w.mu.Unlock()
	rs := &runState{key: client.ObjectKeyFromObject(pr.run)}
	w.runs[rs.key] = rs
	for _, pod := range pr.pods {
		k := types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name}
		w.byPod[k] = append(w.byPod[k], rs)
	}
}

// Wait returns when every run covering pod is done with it, or ctx ends.
func (w *runWaiter) Wait(ctx context.Context, pod *corev1.Pod) error {
	k := types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name}
	for {
		w.mu.Lock()
		done := true
		for _, rs := range w.byPod[k] {
			done = done && rs.doneWith(pod)
		}
		changed := w.changed
		w.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// doneWith is true when the run ended, or its current attempt finished pod
// (Succeeded, or Gone). A Failed pod waits for the run's end: an exit
// handler may retry it.
func (rs *runState) doneWith(pod *corev1.Pod) bool {
	if rs.ended {
		return true
	}
	if rs.last == nil {
		return false
	}
	for _, ps := range rs.last.Status.Pods {
		if ps.Name == pod.Name && (ps.UID == "" || ps.UID == pod.UID) {
			return ps.Phase == v1alpha1.PodSucceeded || ps.Phase == v1alpha1.PodGone
		}
	}
	return false
}

// errOverdue ends follow when the group's share of the budget for runs is
// spent.
var errOverdue = errors.New("the group's runs are overdue")

// follow applies what run.Waiter reports until every run ended, the
// group's run deadline passes (the runs still going are reported), or ctx
// ends.
func (w *runWaiter) follow(ctx context.Context) {
	fctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	timer := w.p.clock.NewTimer(w.req.Deadline.Sub(w.p.clock.Now()))
	defer timer.Stop()
	go func() {
		select {
		case <-timer.C():
			cancel(errOverdue)
		case <-fctx.Done():
		}
	}()
	sel := run.Selection{Labels: labels.SelectorFromSet(labels.Set{LabelShutdown: groupKey(w.req)})}
	err := (&run.Waiter{Client: w.p.c}).Follow(fctx, sel, w.apply)
	switch {
	case errors.Is(context.Cause(fctx), errOverdue):
		w.reportOverdue()
	case err != nil && ctx.Err() == nil:
		w.p.log.Error("node shutdown: cannot follow the termination runs; their pods are evicted at the deadline", "err", err)
	}
}

// apply records a run's state and reports whether every run has ended.
func (w *runWaiter) apply(r *v1alpha1.TerminationRun, deleted bool) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	rs, ok := w.runs[client.ObjectKeyFromObject(r)]
	if !ok || rs.ended {
		return w.allEnded()
	}
	rs.last = r
	switch {
	case deleted:
		rs.ended = true
		w.report(rs, runFailed, "deleted")
	case meta.IsStatusConditionTrue(r.Status.Conditions, v1alpha1.ConditionComplete):
		rs.ended = true
		result := runSucceeded
		if r.Status.Phase != v1alpha1.RunSucceeded {
			result = runFailed
		}
		w.report(rs, result, "")
	}
	close(w.changed)
	w.changed = make(chan struct{})
	return w.allEnded()
}

func (w *runWaiter) allEnded() bool {
	for _, rs := range w.runs {
		if !rs.ended {
			return false
		}
	}
	return true
}

// report logs a run's end, counts it and, when it failed, says on the run
// that the node's pods are evicted anyway. Called with mu held.
func (w *runWaiter) report(rs *runState, result, why string) {
	w.p.metrics.runs.WithLabelValues(result).Inc()
	phase, reason, msg, uid := v1alpha1.RunPhase(""), "", why, types.UID("")
	if rs.last != nil {
		phase, reason, uid = rs.last.Status.Phase, rs.last.Status.Reason, rs.last.UID
		if msg == "" {
			msg = rs.last.Status.Message
		}
	}
	attrs := []any{"namespace", rs.key.Namespace, "run", rs.key.Name, "group", w.req.Group.Priority, "phase", phase, "result", result}
	if result == runSucceeded {
		w.p.log.Info("node shutdown: termination run ended", attrs...)
		return
	}
	w.p.log.Warn("node shutdown: termination run failed; its pods are evicted anyway", append(attrs, "reason", reason, "message", msg)...)
	w.p.rec.Eventf(runRef(rs.key, uid), corev1.EventTypeWarning, ReasonRunFailed,
		"Termination run for the shutdown of node %s ended %s (%s: %s): its pods are evicted anyway", w.req.Shutdown.Node, phase, reason, msg)
}

// reportOverdue reports the runs still going when evictions must start.
func (w *runWaiter) reportOverdue() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, rs := range w.runs {
		if rs.ended {
			continue
		}
		w.p.metrics.runs.WithLabelValues(runTimeout).Inc()
		phase, uid := v1alpha1.RunPhase("not started"), types.UID("")
		if rs.last != nil && rs.last.Status.Phase != "" {
			phase, uid = rs.last.Status.Phase, rs.last.UID
		}
		w.p.log.Warn("node shutdown: termination run still going when its pods' evictions must start; evicting them now",
			"namespace", rs.key.Namespace, "run", rs.key.Name, "group", w.req.Group.Priority, "phase", phase)
		w.p.rec.Eventf(runRef(rs.key, uid), corev1.EventTypeWarning, ReasonRunTimedOut,
			"Termination run still %s when node %s had to evict its pods (priority group %d's share of the budget for runs ended): evicting them now",
			phase, w.req.Shutdown.Node, w.req.Group.Priority)
	}
}
