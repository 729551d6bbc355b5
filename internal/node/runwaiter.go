package node

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
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
	w       watch.Interface
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

// open starts a watch on the group's runs, with their current state first.
func (w *runWaiter) open(ctx context.Context) error {
	wi, err := w.p.c.Watch(ctx, &v1alpha1.TerminationRunList{}, anyVersion(),
		client.MatchingLabels{LabelShutdown: groupKey(w.req)})
	if err != nil {
		return fmt.Errorf("watch TerminationRuns: %w", err)
	}
	w.mu.Lock()
	w.w = wi
	w.mu.Unlock()
	return nil
}

func (w *runWaiter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.w != nil {
		w.w.Stop()
	}
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

// follow applies watch events until every run ended, the group's run
// deadline passes (the runs still going are reported), or ctx ends.
func (w *runWaiter) follow(ctx context.Context) {
	defer w.close()
	timer := w.p.clock.NewTimer(w.req.Deadline.Sub(w.p.clock.Now()))
	defer timer.Stop()
	for {
		w.mu.Lock()
		events := w.w.ResultChan()
		w.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-timer.C():
			w.reportOverdue()
			return
		case ev, ok := <-events:
			if !ok || ev.Type == watch.Error {
				// The API server ends watches now and then: open a new one,
				// which starts with the current state again.
				w.close()
				if !w.reopen(ctx) {
					return
				}
				continue
			}
			if w.apply(ev) {
				return
			}
		}
	}
}

// reopen retries the watch until it is open or ctx ends.
func (w *runWaiter) reopen(ctx context.Context) bool {
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		if err := w.open(ctx); err != nil {
			w.p.log.Warn("node shutdown: watch on termination runs failed; retrying", "err", err)
			return false, nil
		}
		return true, nil
	})
	return err == nil
}

// apply records one event and reports whether every run has ended.
func (w *runWaiter) apply(ev watch.Event) bool {
	run, ok := ev.Object.(*v1alpha1.TerminationRun)
	if !ok {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	rs, ok := w.runs[client.ObjectKeyFromObject(run)]
	if !ok || rs.ended {
		return w.allEnded()
	}
	rs.last = run
	switch {
	case ev.Type == watch.Deleted:
		rs.ended = true
		w.report(rs, runFailed, "deleted")
	case meta.IsStatusConditionTrue(run.Status.Conditions, v1alpha1.ConditionComplete):
		rs.ended = true
		result := runSucceeded
		if run.Status.Phase != v1alpha1.RunSucceeded {
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
