package node

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lastcall-dev/lastcall/internal/node/logind"
)

// threeGroups: regular pods 10 s, priority >= 1000 5 s, critical 3 s.
func threeGroups() Config {
	return Config{ShutdownGracePeriodByPodPriority: []PriorityGracePeriod{
		{Priority: 1000, ShutdownGracePeriodSeconds: 5},
		{Priority: 0, ShutdownGracePeriodSeconds: 10},
		{Priority: CriticalPriority, ShutdownGracePeriodSeconds: 3},
	}}
}

func TestShutdownEvictsGroupsLowestPriorityFirstWithClampedGrace(t *testing.T) {
	h := newHarness(t, threeGroups(), time.Minute, nil,
		newPod("low", withGrace(30)),
		newPod("below-lowest", withPriority(-5), withGrace(2)),
		newPod("mid", withPriority(1500), withGrace(60)),
		newPod("crit", withPriority(2000001000), withGrace(1)),
		newPod("ds", ownedBy("DaemonSet")),
		newPod("static", mirror()),
		newPod("done", withPhase(corev1.PodSucceeded)),
	)
	h.run()
	h.logind.startShutdown()
	h.eventually("the delay lock to be released", func() bool { return h.logind.releases() == 1 })

	calls := h.callsSnapshot()
	want := map[string]int64{"low": 10, "below-lowest": 2, "mid": 5, "crit": 1}
	order := map[string]int{"low": 0, "below-lowest": 0, "mid": 1, "crit": 2}
	if len(calls) != len(want) {
		t.Fatalf("calls %+v, want one eviction each for %v (DaemonSet, static and terminal pods skipped)", calls, want)
	}
	last := 0
	for _, c := range calls {
		if c.verb != "evict" || c.grace != want[c.pod] || string(c.uid) != "uid-"+c.pod {
			t.Errorf("call %+v: want evict with grace %d and UID precondition uid-%s", c, want[c.pod], c.pod)
		}
		if order[c.pod] < last {
			t.Errorf("%s (group %d) evicted after a pod of group %d", c.pod, order[c.pod], last)
		}
		last = order[c.pod]
	}
	n := h.node()
	if !n.Spec.Unschedulable || !hasTaint(n) {
		t.Errorf("node unschedulable=%v taints=%v, want cordoned and tainted %s", n.Spec.Unschedulable, n.Spec.Taints, TaintKey)
	}
	if rec, ok := Record(n); !ok || rec.BootID != "boot-1" || !rec.Cordoned {
		t.Errorf("annotation %q: want bootID boot-1, cordoned by lastcall", n.Annotations[AnnotationShutdown])
	}
	if got := testutil.ToFloat64(h.agent.metrics.pods.WithLabelValues("graceful")); got != 4 {
		t.Errorf("graceful pods metric %v, want 4", got)
	}
	if got := testutil.ToFloat64(h.agent.metrics.shutdowns.WithLabelValues("done")); got != 1 {
		t.Errorf("shutdowns{done} %v, want 1", got)
	}
	if got := testutil.CollectAndCount(h.agent.metrics.groupDuration); got != 3 {
		t.Errorf("group duration series %d, want 3 (one per group)", got)
	}
	evs := strings.Join(h.events(), "\n")
	for _, want := range []string{
		"Normal " + ReasonShutdownStarted + " Shutdown started: 4 pods in 3 priority groups, budget 18s",
		"Normal " + ReasonPodEvicted + " Evicted for node shutdown of node-a with 10s grace (priority group 0)",
		"Normal " + ReasonPodEvicted + " Evicted for node shutdown of node-a with 1s grace (priority group 2000000000)",
		"Normal " + ReasonShutdownDone + " Shutdown done",
	} {
		if !strings.Contains(evs, want) {
			t.Errorf("events:\n%s\nwant one containing %q", evs, want)
		}
	}
	if !h.logs.contains(`msg="node shutdown: pod" node=node-a pod=mid namespace=ns group=1000 outcome=graceful grace=5s`) {
		t.Errorf("no structured line for pod mid in:\n%s", h.logs.String())
	}
}

func TestGroupWaitsForItsPodsUntilItsBudgetEnds(t *testing.T) {
	h := newHarness(t, threeGroups(), time.Minute, nil,
		newPod("slow", withGrace(30)),
		newPod("mid", withPriority(1000), withGrace(30)),
	)
	h.set("slow", stays)
	h.run()
	h.logind.startShutdown()
	h.eventually("slow to be evicted", func() bool { _, ok := h.firstCall("slow", "evict"); return ok })
	h.advance(100*time.Millisecond, 15*time.Second, 2, "mid to be evicted", func() bool { _, ok := h.firstCall("mid", "evict"); return ok })
	c, _ := h.firstCall("mid", "evict")
	// The fake clock may step once more while the next group starts.
	if waited := c.at.Sub(h.start); waited < 10*time.Second || waited >= 11*time.Second {
		t.Errorf("mid evicted %s after the start, want when group 0's 10 s budget ended", waited)
	}
	if c.grace != 5 {
		t.Errorf("mid got %d s grace, want its group's 5 s", c.grace)
	}
}

func TestPDBBlockedPodIsDeletedWithTheGraceLeftAtTheMargin(t *testing.T) {
	cfg := threeGroups()
	cfg.PDBMargin = metav1.Duration{Duration: 2 * time.Second}
	h := newHarness(t, cfg, time.Minute, nil, newPod("guarded", withGrace(30)), newPod("mid", withPriority(1000)))
	h.set("guarded", blocked)
	h.run()
	h.logind.startShutdown()
	h.advance(100*time.Millisecond, 15*time.Second, 3, "the override delete", func() bool { _, ok := h.firstCall("guarded", "delete"); return ok })
	d, _ := h.firstCall("guarded", "delete")
	if at := d.at.Sub(h.start); at != 8*time.Second {
		t.Errorf("deleted at +%s, want at the margin: 8 s into the 10 s group", at)
	}
	if d.grace != 2 || d.uid != "uid-guarded" {
		t.Errorf("delete %+v, want grace 2 s (what is left) and the UID precondition", d)
	}
	evictions := 0
	for _, c := range h.callsSnapshot() {
		if c.pod == "guarded" && c.verb == "evict" {
			evictions++
		}
	}
	if evictions < 5 {
		t.Errorf("%d eviction attempts before the override, want retries with backoff", evictions)
	}
	h.eventually("the shutdown to end", func() bool { return h.logind.releases() == 1 })
	if got := testutil.ToFloat64(h.agent.metrics.pods.WithLabelValues("overridden")); got != 1 {
		t.Errorf("overridden pods %v, want 1", got)
	}
	if evs := strings.Join(h.events(), "\n"); !strings.Contains(evs, "Warning "+ReasonPodOverridden) {
		t.Errorf("no %s event in:\n%s", ReasonPodOverridden, evs)
	}
}

func TestPDBBlockedPodIsLeftRunningInRespectMode(t *testing.T) {
	cfg := threeGroups()
	cfg.PDB = PDBRespect
	h := newHarness(t, cfg, time.Minute, nil, newPod("guarded", withGrace(30)), newPod("mid", withPriority(1000)))
	h.set("guarded", blocked)
	h.run()
	h.logind.startShutdown()
	h.advance(100*time.Millisecond, 15*time.Second, 3, "the next group", func() bool { _, ok := h.firstCall("mid", "evict"); return ok })
	if _, deleted := h.firstCall("guarded", "delete"); deleted {
		t.Error("a PDB-blocked pod was deleted in respect mode")
	}
	c, _ := h.firstCall("mid", "evict")
	if at := c.at.Sub(h.start); at >= 10*time.Second {
		t.Errorf("next group started at +%s: a left pod must not hold its group until its 10 s deadline", at)
	}
	h.eventually("the shutdown to end", func() bool { return h.logind.releases() == 1 })
	if got := testutil.ToFloat64(h.agent.metrics.pods.WithLabelValues("left")); got != 1 {
		t.Errorf("left pods %v, want 1", got)
	}
	if _, err := h.cs.CoreV1().Pods("ns").Get(context.Background(), "guarded", metav1.GetOptions{}); err != nil {
		t.Errorf("guarded pod: %v, want it still there", err)
	}
}

func TestLockReleasedWhenTheTotalBudgetIsSpent(t *testing.T) {
	cfg := Config{ShutdownGracePeriod: metav1.Duration{Duration: 6 * time.Second}, ShutdownGracePeriodCriticalPods: metav1.Duration{Duration: 2 * time.Second}}
	h := newHarness(t, cfg, time.Minute, nil, newPod("slow", withGrace(30)), newPod("crit-slow", withPriority(CriticalPriority)))
	h.set("slow", stays)
	h.set("crit-slow", stays)
	h.run()
	h.logind.startShutdown()
	h.advance(100*time.Millisecond, 10*time.Second, 2, "the lock release", func() bool { return h.logind.releases() == 1 })
	if took := h.clock.Since(h.start); took != 6*time.Second {
		t.Errorf("lock released at +%s, want when the 6 s budget ended", took)
	}
	// The lock goes at the deadline itself; the sequence winds down after.
	h.eventually("the shutdown counted as budget_spent", func() bool {
		return testutil.ToFloat64(h.agent.metrics.shutdowns.WithLabelValues("budget_spent")) == 1
	})
}

func TestLockReleasedAtTheBudgetEvenWhenARequestHangs(t *testing.T) {
	cfg := Config{ShutdownGracePeriod: metav1.Duration{Duration: 4 * time.Second}}
	h := newHarness(t, cfg, time.Minute, nil, newPod("stuck", withGrace(30)))
	h.set("stuck", hangs)
	h.run()
	h.logind.startShutdown()
	h.eventually("the hanging eviction", func() bool { _, ok := h.firstCall("stuck", "evict"); return ok })
	h.advance(100*time.Millisecond, 6*time.Second, 1, "the lock release", func() bool { return h.logind.releases() == 1 })
	if took := h.clock.Since(h.start); took != 4*time.Second {
		t.Errorf("lock released at +%s, want at the 4 s budget although a request still hangs", took)
	}
}

// panicStarter panics as a buggy policy integration would.
type panicStarter struct{}

func (panicStarter) StartRuns(context.Context, RunRequest) (RunWaiter, error) {
	panic("policy bug")
}

func TestLockReleasedWhenTheSequencePanics(t *testing.T) {
	h := newHarness(t, threeGroups(), time.Minute, panicStarter{}, newPod("a"))
	h.run()
	h.logind.startShutdown()
	h.eventually("the lock release after the panic", func() bool { return h.logind.releases() == 1 })
	if got := testutil.ToFloat64(h.agent.metrics.shutdowns.WithLabelValues("failed")); got != 1 {
		t.Errorf("shutdowns{failed} %v, want 1", got)
	}
	if !h.logs.contains("policy bug") {
		t.Error("the panic was not logged")
	}
}

// gateStarter records what it was given and holds the evictions of the
// pods it covers (all of them when covers is nil) until opened.
type gateStarter struct {
	covers map[string]bool
	open   chan struct{}

	mu       sync.Mutex
	reqs     []RunRequest
	pods     []string
	deadline time.Time
}

func (g *gateStarter) StartRuns(_ context.Context, req RunRequest) (RunWaiter, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.reqs = append(g.reqs, req)
	for _, p := range req.Pods {
		g.pods = append(g.pods, p.Name)
	}
	g.deadline = req.Deadline
	return g, nil
}

func (g *gateStarter) Wait(ctx context.Context, pod *corev1.Pod) error {
	if g.covers != nil && !g.covers[pod.Name] {
		return nil
	}
	select {
	case <-g.open:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *gateStarter) started() ([]string, time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.pods...), g.deadline
}

func (g *gateStarter) requests() []RunRequest {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]RunRequest(nil), g.reqs...)
}

func TestRunsStartBeforeEvictionsWithTheirShareOfTheGroupBudget(t *testing.T) {
	gate := &gateStarter{open: make(chan struct{})}
	h := newHarness(t, threeGroups(), time.Minute, gate, newPod("a"))
	h.run()
	h.logind.startShutdown()
	h.eventually("runs to start", func() bool { pods, _ := gate.started(); return len(pods) == 1 })
	pods, deadline := gate.started()
	if pods[0] != "a" || !deadline.Equal(h.start.Add(5*time.Second)) {
		t.Errorf("runs for %v until +%s, want [a] until +5s (half of the 10 s group)", pods, deadline.Sub(h.start))
	}
	if calls := h.callsSnapshot(); len(calls) != 0 {
		t.Fatalf("evicted while runs were going: %+v", calls)
	}
	close(gate.open)
	h.eventually("the eviction after the runs", func() bool { _, ok := h.firstCall("a", "evict"); return ok })
}

func TestRunsThatOverrunTheirShareDoNotDelayEvictions(t *testing.T) {
	gate := &gateStarter{open: make(chan struct{})}
	h := newHarness(t, threeGroups(), time.Minute, gate, newPod("a", withGrace(30)))
	h.run()
	h.logind.startShutdown()
	h.advance(100*time.Millisecond, 8*time.Second, 3, "the eviction", func() bool { _, ok := h.firstCall("a", "evict"); return ok })
	c, _ := h.firstCall("a", "evict")
	if at := c.at.Sub(h.start); at != 5*time.Second || c.grace != 5 {
		t.Errorf("evicted at +%s with %d s grace, want at +5s (the runs' share) with the 5 s left", at, c.grace)
	}
}

func TestPodsNoRunCoversAreEvictedWithoutWaitingForOthersRuns(t *testing.T) {
	gate := &gateStarter{open: make(chan struct{}), covers: map[string]bool{"covered": true}}
	h := newHarness(t, threeGroups(), time.Minute, gate, newPod("covered"), newPod("free"))
	h.run()
	h.logind.startShutdown()
	h.eventually("the eviction of the pod no run covers", func() bool { _, ok := h.firstCall("free", "evict"); return ok })
	if _, ok := h.firstCall("covered", "evict"); ok {
		t.Fatal("the covered pod was evicted while its run was going")
	}
	close(gate.open)
	h.eventually("the covered pod's eviction after its run", func() bool { _, ok := h.firstCall("covered", "evict"); return ok })
}

func TestRunRequestsNameTheShutdownAsRecordedOnTheNode(t *testing.T) {
	gate := &gateStarter{open: make(chan struct{})}
	close(gate.open)
	h := newHarness(t, threeGroups(), time.Minute, gate, newPod("a"), newPod("b", withPriority(100000)))
	h.run()
	h.logind.startShutdown()
	h.eventually("runs for both groups", func() bool { return len(gate.requests()) == 2 })
	reqs := gate.requests()
	rec, ok := Record(h.node())
	if !ok {
		t.Fatal("node not annotated")
	}
	want := ShutdownID{Node: testNode, BootID: "boot-1", Since: rec.Since}
	for i, r := range reqs {
		if r.Shutdown != want {
			t.Errorf("request %d for shutdown %+v, want %+v (the node's record)", i, r.Shutdown, want)
		}
	}
	if reqs[0].Group.Priority >= reqs[1].Group.Priority {
		t.Errorf("groups requested in order %d, %d; want the lowest priority first", reqs[0].Group.Priority, reqs[1].Group.Priority)
	}
	if reqs[0].Shutdown.Key() == (ShutdownID{Node: testNode, BootID: "boot-2", Since: rec.Since}).Key() {
		t.Error("the shutdown key does not depend on the boot ID")
	}
}

func TestNoRunStarterIsReported(t *testing.T) {
	h := newHarness(t, threeGroups(), time.Minute, nil)
	h.run()
	if !h.logs.contains("termination runs are off") {
		t.Errorf("logs:\n%s\nwant a line saying no policies are configured", h.logs.String())
	}
	if evs := strings.Join(h.events(), "\n"); !strings.Contains(evs, ReasonNoPolicies) {
		t.Errorf("events:\n%s\nwant %s", evs, ReasonNoPolicies)
	}
}

func TestCancelledShutdownStopsAndUndoesOnlyWhatLastcallDid(t *testing.T) {
	for _, tc := range []struct {
		name            string
		cordonedBefore  bool
		wantUnscheduled bool
	}{
		{name: "lastcall cordoned", cordonedBefore: false, wantUnscheduled: false},
		{name: "admin cordoned before", cordonedBefore: true, wantUnscheduled: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, threeGroups(), time.Minute, nil, newPod("slow", withGrace(30)), newPod("mid", withPriority(1000)))
			if tc.cordonedBefore {
				n := h.node()
				n.Spec.Unschedulable = true
				if _, err := h.cs.CoreV1().Nodes().Update(context.Background(), n, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			h.set("slow", stays)
			h.run()
			h.logind.startShutdown()
			h.eventually("slow to be evicted", func() bool { _, ok := h.firstCall("slow", "evict"); return ok })
			h.logind.events <- logind.Event{Kind: logind.ShutdownCancelled}
			h.eventually("the cordon to be undone", func() bool { _, ok := h.node().Annotations[AnnotationShutdown]; return !ok })
			n := h.node()
			if n.Spec.Unschedulable != tc.wantUnscheduled || hasTaint(n) {
				t.Errorf("node unschedulable=%v taints=%v, want unschedulable=%v and no %s taint", n.Spec.Unschedulable, n.Spec.Taints, tc.wantUnscheduled, TaintKey)
			}
			if h.logind.releases() != 1 {
				t.Errorf("the cancelled shutdown's lock released %d times, want 1", h.logind.releases())
			}
			if _, ok := h.firstCall("mid", "evict"); ok {
				t.Error("the next group was evicted after the cancel")
			}
			if got := testutil.ToFloat64(h.agent.metrics.shutdowns.WithLabelValues("cancelled")); got != 1 {
				t.Errorf("shutdowns{cancelled} %v, want 1", got)
			}
		})
	}
}

func TestAgentUncordonsAfterARebootOnly(t *testing.T) {
	for _, tc := range []struct {
		name, recorded string
		wantUncordoned bool
	}{
		{name: "rebooted", recorded: "boot-0", wantUncordoned: true},
		{name: "same boot", recorded: "boot-1", wantUncordoned: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, threeGroups(), time.Minute, nil)
			n := h.node()
			n.Spec.Unschedulable = true
			n.Spec.Taints = []corev1.Taint{{Key: TaintKey, Effect: corev1.TaintEffectNoSchedule}, {Key: "other", Effect: corev1.TaintEffectNoSchedule}}
			n.Annotations = map[string]string{AnnotationShutdown: `{"bootID":"` + tc.recorded + `","cordoned":true}`}
			if _, err := h.cs.CoreV1().Nodes().Update(context.Background(), n, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			h.run()
			n = h.node()
			uncordoned := !n.Spec.Unschedulable && !hasTaint(n) && n.Annotations[AnnotationShutdown] == ""
			if uncordoned != tc.wantUncordoned {
				t.Errorf("node unschedulable=%v taints=%v annotations=%v; want uncordoned=%v", n.Spec.Unschedulable, n.Spec.Taints, n.Annotations, tc.wantUncordoned)
			}
			if len(n.Spec.Taints) == 0 || n.Spec.Taints[len(n.Spec.Taints)-1].Key != "other" {
				t.Errorf("taints %v: another taint was removed", n.Spec.Taints)
			}
		})
	}
}

func TestLogindRestartReplansWithWhatTheNewLogindGrants(t *testing.T) {
	h := newHarness(t, threeGroups(), 9*time.Second, nil, newPod("low", withGrace(30)))
	h.run()
	if got := testutil.ToFloat64(h.agent.metrics.budget); got != 9 {
		t.Fatalf("budget %v s, want 9 (scaled to what logind grants)", got)
	}
	// The new logind grants the whole 18 s: the budgets go back to the
	// configured ones, not a scaling of the scaled ones.
	h.logind.restart(time.Minute)
	h.eventually("the budgets re-planned", func() bool { return testutil.ToFloat64(h.agent.metrics.budget) == 18 })
	h.logind.startShutdown()
	c := func() call {
		h.eventually("the eviction", func() bool { _, ok := h.firstCall("low", "evict"); return ok })
		c, _ := h.firstCall("low", "evict")
		return c
	}()
	if c.grace != 10 {
		t.Errorf("evicted with %d s grace, want the configured 10 s group budget", c.grace)
	}
}

func TestShortInhibitDelayScalesTheGroupBudgets(t *testing.T) {
	h := newHarness(t, threeGroups(), 9*time.Second, nil, newPod("low", withGrace(30)))
	h.run()
	want := []Group{{0, 5 * time.Second}, {1000, 2500 * time.Millisecond}, {CriticalPriority, 1500 * time.Millisecond}}
	for i, g := range h.agent.groups {
		if g != want[i] {
			t.Errorf("group %d: %+v, want %+v", i, g, want[i])
		}
	}
	if got := testutil.ToFloat64(h.agent.metrics.inhibitDelay); got != 9 {
		t.Errorf("granted delay metric %v, want 9", got)
	}
	if evs := strings.Join(h.events(), "\n"); !strings.Contains(evs, "Warning "+ReasonInhibitDelay+" logind grants 9s of the 18s budget") {
		t.Errorf("events:\n%s\nwant a warning about the short delay", evs)
	}
	h.logind.startShutdown()
	h.eventually("the eviction", func() bool { _, ok := h.firstCall("low", "evict"); return ok })
	if c, _ := h.firstCall("low", "evict"); c.grace != 5 {
		t.Errorf("grace %d s, want 5 (the scaled budget)", c.grace)
	}
}

func TestPDBRefusedEvictionIsRetriedAsSoonAsTheBudgetAllows(t *testing.T) {
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "guarded", Namespace: "ns"},
		Spec:       policyv1.PodDisruptionBudgetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "guarded"}}},
	}
	guarded := newPod("guarded", withGrace(30))
	guarded.Labels = map[string]string{"app": "guarded"}
	h := newHarness(t, threeGroups(), time.Minute, nil, guarded, pdb)
	h.set("guarded", blocked)
	h.run()
	h.logind.startShutdown()
	h.eventually("the first, refused eviction", func() bool { _, ok := h.firstCall("guarded", "evict"); return ok })

	h.set("guarded", leaves)
	pdb.Status.DisruptionsAllowed = 1
	if _, err := h.cs.PolicyV1().PodDisruptionBudgets("ns").UpdateStatus(context.Background(), pdb, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.eventually("the retry after the PDB allowed it", func() bool { return len(h.callsSnapshot()) == 2 })
	if moved := h.clock.Since(h.start); moved != 0 {
		t.Errorf("the fake clock moved %s: the retry waited for the backoff, not for the PDB", moved)
	}
	h.eventually("the shutdown to end", func() bool { return h.logind.releases() == 1 })
}
