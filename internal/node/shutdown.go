package node

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// shutdown runs one node shutdown with groups (the configured budgets,
// scaled to granted, what logind grants): cordon, then the groups in order. It
// releases the delay lock when it ends, however it ends, and at the latest
// when the total budget is spent.
func (a *Agent) shutdown(ctx context.Context, groups []Group, granted time.Duration, release func() error) {
	start := a.clock.Now()
	budget := Total(groups)
	ctx, cancel := withDeadline(ctx, a.clock, start.Add(budget))
	defer cancel()
	releaseLock := func(why string) {
		if release == nil {
			return
		}
		if err := release(); err != nil {
			a.log.Error("node shutdown: cannot release the delay lock", "when", why, "err", err)
		}
	}
	// When the budget is spent (or the shutdown is stopped) the lock goes at
	// once, without waiting for a request that might ignore its context.
	stopWatchdog := context.AfterFunc(ctx, func() { releaseLock("budget spent or shutdown stopped") })
	defer stopWatchdog()
	counts := map[Outcome]int{}
	result := resultFailed
	defer func() {
		if p := recover(); p != nil {
			a.log.Error("node shutdown: panic; releasing the delay lock", "panic", p, "stack", string(debug.Stack()))
			result = resultFailed
		}
		a.finish(start, result, counts)
		releaseLock("shutdown ended")
	}()

	ref := nodeRef(a.cfg.NodeName)
	rec, err := a.nodes.cordon(ctx, start)
	if err != nil {
		a.log.Error("node shutdown: cordon failed; evicting anyway", "err", err)
		a.rec.Eventf(ref, corev1.EventTypeWarning, ReasonShutdownStarted, "Cordon failed, evicting anyway: %v", err)
		rec = ShutdownRecord{Since: start.UTC().Truncate(time.Second)}
	}
	sid := ShutdownID{Node: a.cfg.NodeName, BootID: rec.BootID, Since: rec.Since}
	pods, err := a.watch.pods()
	if err != nil {
		a.log.Error("node shutdown: cannot list the node's pods", "err", err)
		return // result stays failed; the lock is released
	}
	plan := NewPlan(a.cfg.NodeName, groups, pods)
	a.log.Info("node shutdown started", "pods", plan.PodCount(), "skipped", len(plan.Skipped), "groups", len(plan.Groups), "budget", budget, "granted", granted)
	a.rec.Eventf(ref, corev1.EventTypeNormal, ReasonShutdownStarted,
		"Shutdown started: %d pods in %d priority groups, budget %s (logind grants %s); node cordoned and tainted %s",
		plan.PodCount(), len(plan.Groups), budget, granted, TaintKey)
	for _, g := range plan.Groups {
		if len(g.Pods) == 0 {
			continue // as the kubelet: an empty group costs no time
		}
		if ctx.Err() != nil {
			for _, pp := range g.Pods {
				a.recordPod(g.Group, podResult{pod: pp.Pod, outcome: OutcomeLeft, err: context.Cause(ctx)}, counts)
			}
			continue
		}
		a.runGroup(ctx, sid, g, start.Add(budget), counts)
	}
	result = classify(ctx, a.clock.Now(), start.Add(budget))
}

// finish reports a shutdown's end.
func (a *Agent) finish(start time.Time, result shutdownResult, counts map[Outcome]int) {
	took := a.clock.Since(start)
	a.metrics.shutdowns.WithLabelValues(string(result)).Inc()
	a.log.Info("node shutdown ended", "result", result, "took", took,
		"graceful", counts[OutcomeGraceful], "overridden", counts[OutcomeOverridden], "left", counts[OutcomeLeft])
	kind := corev1.EventTypeNormal
	if result == resultFailed || counts[OutcomeLeft] > 0 {
		kind = corev1.EventTypeWarning
	}
	a.rec.Eventf(nodeRef(a.cfg.NodeName), kind, ReasonShutdownDone,
		"Shutdown %s in %s: %d pods evicted, %d deleted despite a PDB, %d left running; releasing the delay lock",
		result, took.Round(time.Millisecond), counts[OutcomeGraceful], counts[OutcomeOverridden], counts[OutcomeLeft])
}

// runGroup starts the group's runs, evicts its pods in parallel (each once
// the runs that cover it end) and waits until they are gone (or left) or the
// group's budget ends.
func (a *Agent) runGroup(ctx context.Context, sid ShutdownID, g PlanGroup, total time.Time, counts map[Outcome]int) {
	start := a.clock.Now()
	deadline := start.Add(g.Budget)
	if total.Before(deadline) {
		deadline = total
	}
	gctx, cancel := withDeadline(ctx, a.clock, deadline)
	defer cancel()
	pods := make([]corev1.Pod, len(g.Pods))
	for i, pp := range g.Pods {
		pods[i] = *pp.Pod
	}
	a.log.Info("node shutdown: group started", "group", g.Priority, "pods", len(pods), "budget", deadline.Sub(start))
	w, runsDeadline := a.startRuns(gctx, sid, g.Group, pods, start, deadline)

	results := make(chan podResult, len(pods))
	for i := range pods {
		go func(pod *corev1.Pod) {
			defer func() {
				if p := recover(); p != nil {
					a.log.Error("node shutdown: panic evicting a pod", "pod", pod.Name, "namespace", pod.Namespace, "panic", p, "stack", string(debug.Stack()))
					results <- podResult{pod: pod, outcome: OutcomeLeft, err: fmt.Errorf("panic: %v", p)}
				}
			}()
			a.waitRuns(gctx, w, pod, runsDeadline)
			results <- a.evictor.evict(gctx, pod, deadline)
		}(&pods[i])
	}

	waiting := make(map[types.NamespacedName]*corev1.Pod, len(pods))
	for i := range pods {
		waiting[types.NamespacedName{Namespace: pods[i].Namespace, Name: pods[i].Name}] = &pods[i]
	}
	got := a.waitGroup(gctx, results, waiting, g.Group, counts)
	cancel() // stops evictions still retrying
	for ; got < len(pods); got++ {
		a.recordPod(g.Group, <-results, counts)
	}
	took := a.clock.Since(start)
	a.metrics.groupDuration.WithLabelValues(groupLabel(g.Group)).Observe(took.Seconds())
	a.log.Info("node shutdown: group ended", "group", g.Priority, "took", took, "stillRunning", len(waiting))
}

// waitGroup collects eviction results and waits until every pod not left
// running is gone, or ctx ends. It returns how many results it collected.
func (a *Agent) waitGroup(ctx context.Context, results <-chan podResult, waiting map[types.NamespacedName]*corev1.Pod, g Group, counts map[Outcome]int) int {
	got, want := 0, len(waiting)
	for {
		changed := a.watch.Changed() // before the check: no change is missed
		for k, p := range waiting {
			if a.watch.gone(p) {
				delete(waiting, k)
			}
		}
		if got == want && len(waiting) == 0 {
			return got
		}
		select {
		case r := <-results:
			got++
			a.recordPod(g, r, counts)
			if r.outcome == OutcomeLeft {
				delete(waiting, types.NamespacedName{Namespace: r.pod.Namespace, Name: r.pod.Name})
			}
		case <-changed:
		case <-ctx.Done():
			return got
		}
	}
}

// recordPod reports one pod's outcome: metric, log line, Event.
func (a *Agent) recordPod(g Group, r podResult, counts map[Outcome]int) {
	counts[r.outcome]++
	a.metrics.pods.WithLabelValues(string(r.outcome)).Inc()
	attrs := []any{"pod", r.pod.Name, "namespace", r.pod.Namespace, "group", g.Priority,
		"outcome", r.outcome, "grace", r.grace, "attempts", r.attempts, "pdbRefusals", r.blocked}
	if r.err != nil {
		attrs = append(attrs, "err", r.err.Error())
	}
	a.log.Info("node shutdown: pod", attrs...)
	switch r.outcome {
	case OutcomeGraceful:
		if r.grace > 0 {
			a.rec.Eventf(r.pod, corev1.EventTypeNormal, ReasonPodEvicted,
				"Evicted for node shutdown of %s with %s grace (priority group %d)", a.cfg.NodeName, r.grace, g.Priority)
		}
	case OutcomeOverridden:
		a.rec.Eventf(r.pod, corev1.EventTypeWarning, ReasonPodOverridden,
			"Node %s shuts down: eviction still refused %s before the group's deadline (%d refusals: %v); deleted with %s grace (pdb: override)",
			a.cfg.NodeName, a.cfg.PDBMargin.Duration, r.blocked, r.err, r.grace)
	case OutcomeLeft:
		a.rec.Eventf(r.pod, corev1.EventTypeWarning, ReasonPodLeft,
			"Node %s shuts down: pod left running (pdb: %s): %v", a.cfg.NodeName, a.cfg.PDB, r.err)
	}
}
