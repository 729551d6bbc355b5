//go:build integration

package node

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
	"github.com/lastcall-dev/lastcall/internal/devcluster"
	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
	"github.com/lastcall-dev/lastcall/internal/node/logind/logindtest"
)

func TestMain(m *testing.M) {
	// The in-process run controller logs through controller-runtime; the
	// tests read the agent's log only.
	ctrllog.SetLogger(logr.Discard())
	clustertest.Main(m, devcluster.Options{Nodes: 1},
		clustertest.InstallCRDs("../../charts/lastcall/crds/lastcall.dev_terminationpolicies.yaml", "../../charts/lastcall/crds/lastcall.dev_terminationruns.yaml",
			"../../charts/lastcall/crds/lastcall.dev_gates.yaml"))
}

// scenarioPod is a pod of the scenario, its group and what it must get.
type scenarioPod struct {
	podSpec
	group     int   // index of the priority group
	wantGrace int64 // the grace the agent should give, at most
	outcome   Outcome
}

func scenario(cl map[int32]string) []scenarioPod {
	var out []scenarioPod
	add := func(n int, prefix string, group int, prio int32, grace int64, exit, app string, want int64, o Outcome) {
		for i := range n {
			out = append(out, scenarioPod{podSpec: podSpec{
				name: fmt.Sprintf("%s-%02d", prefix, i), class: cl[prio], priority: prio,
				grace: grace, exitAfter: exit, app: app,
			}, group: group, wantGrace: want, outcome: o})
		}
	}
	// Group 0 (priority >= 0, 4 s): 61 pods.
	add(51, "low-quick", 0, 100, 30, "300ms", "low", 4, OutcomeGraceful)
	add(5, "low-slow", 0, 100, 2, "", "low", 2, OutcomeGraceful)            // use their whole 2 s
	add(5, "guarded", 0, 100, 30, "300ms", "guarded", 1, OutcomeOverridden) // PDB allows none
	// Group 1 (priority >= 10000, 3 s): 34 pods.
	add(30, "mid-quick", 1, 10000, 30, "300ms", "mid", 3, OutcomeGraceful)
	add(4, "partial", 1, 10000, 30, "300ms", "partial", 3, "") // PDB allows 2 of 4
	// Group 2 (priority >= 1000000, 3 s): 15 pods.
	add(13, "high-quick", 2, 1000000, 30, "300ms", "high", 3, OutcomeGraceful)
	add(2, "high-long", 2, 1000000, 60, "", "high", 3, OutcomeGraceful) // clamped to the group's budget
	return out
}

var scenarioBudgets = []time.Duration{4 * time.Second, 3 * time.Second, 3 * time.Second}

func scenarioConfig(mode PDBMode) Config {
	return Config{
		ShutdownGracePeriodByPodPriority: []PriorityGracePeriod{
			{Priority: 0, ShutdownGracePeriodSeconds: 4},
			{Priority: 10000, ShutdownGracePeriodSeconds: 3},
			{Priority: 1000000, ShutdownGracePeriodSeconds: 3},
		},
		PDB:       mode,
		PDBMargin: metav1.Duration{Duration: time.Second},
	}
}

func TestShutdownEvacuates110PodsByPriorityWithinBudgets(t *testing.T) {
	env := clustertest.New(t)
	cs := fastClient(t, env)
	cleanNode(t, cs)
	runs := startController(t)
	cl := classes(t, cs, env.Namespace, 100, 10000, 1000000)
	pods := scenario(cl)
	if len(pods) != 110 {
		t.Fatalf("scenario has %d pods, want 110", len(pods))
	}
	specs := make([]podSpec, len(pods))
	for i, p := range pods {
		specs[i] = p.podSpec
	}
	daemonSet(t, cs, env.Namespace)
	static := podSpec{name: "static-web", grace: 30, app: "static"}.pod(env.Namespace)
	static.Annotations = map[string]string{mirrorAnnotation: "hash"} // as the kubelet mirrors a static pod
	if _, err := cs.CoreV1().Pods(env.Namespace).Create(context.Background(), static, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create mirror pod: %v", err)
	}
	createPods(t, cs, env.Namespace, specs)
	createPDB(t, cs, env.Namespace, "guarded", 5, 5)
	createPDB(t, cs, env.Namespace, "partial", 4, 2)

	// Policies for the middle group (by selector) and the top group (by
	// targetRef); their pods record the drain call the runs make.
	var covered []string
	for _, p := range pods {
		if p.app == "mid" || p.app == "high" {
			covered = append(covered, p.name)
		}
	}
	drains := serveDrains(t, cs, env.Namespace, covered, http.StatusOK)
	ctx := context.Background()
	for _, obj := range []client.Object{
		emptyDeployment(env.Namespace, "high", "high"),
		drainPolicy(env.Namespace, "drain-mid", &metav1.LabelSelector{MatchLabels: map[string]string{"app": "mid"}}, nil),
		drainPolicy(env.Namespace, "drain-high", nil, &v1alpha1.TargetRef{Kind: "Deployment", Name: "high"}),
	} {
		if err := runs.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	tl := watchTimeline(t, cs, env.Namespace)

	// What `lastcall node-agent plan` prints, for the same pods.
	plan, err := PlanFor(context.Background(), cs, kwokNode, scenarioConfig(PDBOverride).Groups())
	if err != nil {
		t.Fatal(err)
	}
	if got := []int{len(plan.Groups[0].Pods), len(plan.Groups[1].Pods), len(plan.Groups[2].Pods)}; got[0] != 61 || got[1] != 34 || got[2] != 15 {
		t.Errorf("plan groups hold %v pods, want [61 34 15]", got)
	}
	pr, err := NewRunsClient(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	if err := NewPolicyRuns(pr, PolicyRunsOptions{}).AddPolicies(context.Background(), &plan); err != nil {
		t.Fatal(err)
	}
	for _, p := range pods {
		want := map[string]string{"mid": "drain-mid", "high": "drain-high"}[p.app]
		if got := strings.Join(plan.Policies[types.NamespacedName{Namespace: env.Namespace, Name: p.name}], ","); got != want {
			t.Errorf("plan: %s waits for runs of %q, want %q", p.name, got, want)
		}
	}
	skipped := map[SkipReason]int{}
	for _, sk := range plan.Skipped {
		skipped[sk.Reason]++
	}
	if skipped[SkipDaemonSet] != 1 || skipped[SkipMirror] != 1 {
		t.Errorf("plan skips %v, want the DaemonSet pod and the mirror pod", skipped)
	}

	svc := logindtest.Start(t, logindtest.Options{})
	run := startAgent(t, svc, cs, scenarioConfig(PDBOverride))
	locks, err := svc.WaitLocks(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := svc.InhibitDelayMax(); got != 10*time.Second {
		t.Errorf("logind grants %s after the agent's drop-in, want the 10 s budget", got)
	}

	t0 := time.Now()
	if err := svc.PrepareForShutdown(true); err != nil {
		t.Fatal(err)
	}
	select {
	case <-locks[0].Released():
	case <-time.After(30 * time.Second):
		t.Fatal("the agent never released the delay lock")
	}
	released := time.Since(t0)
	clustertest.Eventually(t, 30*time.Second, func(context.Context) (bool, error) { return tl.goneCount() >= 110, nil }, "all 110 pods to be gone")

	// Per pod: deletion started, with the grace its group allows.
	groupFirst := make([]time.Duration, 3)
	groupLastGone := make([]time.Duration, 3)
	for i := range groupFirst {
		groupFirst[i] = time.Hour
	}
	overridden := 0
	for _, p := range pods {
		del, grace, gone, ok := tl.get(p.name)
		if !ok {
			t.Errorf("%s: never deleted", p.name)
			continue
		}
		overriddenAtMargin := p.app == "partial" && grace == 1 // its PDB let 2 of 4 go
		if !overriddenAtMargin && (grace > p.wantGrace || grace < max(p.wantGrace-1, 1)) {
			t.Errorf("%s (group %d): deleted with %d s grace, want %d (min of its own %d s and what is left of the group's budget)", p.name, p.group, grace, p.wantGrace, p.grace)
		}
		groupFirst[p.group] = min(groupFirst[p.group], del.Sub(t0))
		groupLastGone[p.group] = max(groupLastGone[p.group], gone.Sub(t0))
		if p.app == "guarded" && del.Sub(t0) < 2700*time.Millisecond {
			t.Errorf("%s: deleted %s after the start, want after the PDB margin (3 s into its 4 s group)", p.name, del.Sub(t0))
		}
		if overriddenAtMargin {
			overridden++
		}
	}
	// Order: a group starts only when the one below is gone (or out of budget).
	for g := 1; g < 3; g++ {
		if groupFirst[g] < groupLastGone[g-1] {
			t.Errorf("group %d started at +%s, before group %d was gone (+%s)", g, groupFirst[g], g-1, groupLastGone[g-1])
		}
		if took := groupFirst[g] - groupFirst[g-1]; took > scenarioBudgets[g-1]+500*time.Millisecond {
			t.Errorf("group %d took %s, over its %s budget", g-1, took, scenarioBudgets[g-1])
		}
	}
	if released > 10*time.Second+time.Second {
		t.Errorf("lock released %s after the start, over the 10 s budget", released)
	}
	t.Logf("groups started at +%s, +%s, +%s; last pods gone at +%s, +%s, +%s; lock released at +%s",
		groupFirst[0].Round(time.Millisecond), groupFirst[1].Round(time.Millisecond), groupFirst[2].Round(time.Millisecond),
		groupLastGone[0].Round(time.Millisecond), groupLastGone[1].Round(time.Millisecond), groupLastGone[2].Round(time.Millisecond), released.Round(time.Millisecond))

	if got := testutil.ToFloat64(run.metrics.pods.WithLabelValues("overridden")); got != 7 {
		t.Errorf("overridden pods %v, want 7 (5 guarded + 2 of partial)", got)
	}
	if got := testutil.ToFloat64(run.metrics.pods.WithLabelValues("graceful")); got != 103 {
		t.Errorf("graceful pods %v, want 103", got)
	}
	if overridden != 2 {
		t.Errorf("%d partial pods were deleted at the margin, want 2 (its PDB allows 2 of 4)", overridden)
	}

	// Termination runs first: every covered pod got its drain call before
	// its eviction, from one run per policy and group.
	for _, name := range covered {
		at, n := drains.get(name)
		del, _, _, ok := tl.get(name)
		switch {
		case n == 0:
			t.Errorf("%s: no drain call", name)
		case n > 1:
			t.Errorf("%s: %d drain calls, want 1", name, n)
		case !ok || !at.Before(del):
			t.Errorf("%s: drain call at +%s, eviction at +%s: want the drain first", name, at.Sub(t0), del.Sub(t0))
		}
	}
	started := shutdownRuns(t, runs, env.Namespace)
	if len(started) != 2 {
		t.Errorf("%d shutdown runs, want 2 (one per policy; each policy covers one group)", len(started))
	}
	for _, r := range started {
		if r.Spec.Trigger.Source != v1alpha1.TriggerNodeShutdown || r.Spec.Trigger.Node != kwokNode || r.Status.Phase != v1alpha1.RunSucceeded {
			t.Errorf("run %s (policy %s): trigger %+v, phase %s; want NodeShutdown on %s, Succeeded",
				r.Name, r.Spec.PolicyRef.Name, r.Spec.Trigger, r.Status.Phase, kwokNode)
		}
		if want := map[string]int{"drain-mid": 30, "drain-high": 15}[r.Spec.PolicyRef.Name]; len(r.Spec.Pods) != want {
			t.Errorf("run %s of %s covers %d pods, want %d", r.Name, r.Spec.PolicyRef.Name, len(r.Spec.Pods), want)
		}
	}
	if got := testutil.ToFloat64(run.metrics.runs.WithLabelValues(runSucceeded)); got != 2 {
		t.Errorf("runs{succeeded} %v, want 2", got)
	}

	// Skipped pods still run; the node is cordoned and tainted by lastcall.
	ds, err := cs.CoreV1().Pods(env.Namespace).List(context.Background(), metav1.ListOptions{LabelSelector: "app=agent-like"})
	if err != nil || len(ds.Items) != 1 || ds.Items[0].DeletionTimestamp != nil {
		t.Errorf("DaemonSet pod: %v %v, want it left alone", ds, err)
	}
	if p, err := cs.CoreV1().Pods(env.Namespace).Get(context.Background(), "static-web", metav1.GetOptions{}); err != nil || p.DeletionTimestamp != nil {
		t.Errorf("mirror pod: %v, want it left alone", err)
	}
	n, err := cs.CoreV1().Nodes().Get(context.Background(), kwokNode, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rec, ok := Record(n); !n.Spec.Unschedulable || !hasTaint(n) || !ok || rec.BootID != n.Status.NodeInfo.BootID {
		t.Errorf("node unschedulable=%v taints=%v annotation=%q: want cordoned, tainted and recorded with the boot ID",
			n.Spec.Unschedulable, n.Spec.Taints, n.Annotations[AnnotationShutdown])
	}

	// Visibility: Events on the node and on every pod.
	clustertest.Eventually(t, 20*time.Second, func(context.Context) (bool, error) {
		evs := podEvents(t, cs, env.Namespace)
		return evs[ReasonPodEvicted] >= 103 && evs[ReasonPodOverridden] >= 7, nil
	}, "an Event for each pod")
	reasons := map[string]bool{}
	for _, e := range nodeEvents(t, cs) {
		reasons[e.Reason] = true
	}
	for _, r := range []string{ReasonInhibitDelay, ReasonShutdownStarted, ReasonRunsStarted, ReasonShutdownDone} {
		if !reasons[r] {
			t.Errorf("no %s Event on the node (have %v)", r, reasons)
		}
	}
}

func TestPDBBlockedPodsAreLeftRunningInRespectMode(t *testing.T) {
	env := clustertest.New(t)
	cs := fastClient(t, env)
	cleanNode(t, cs)
	cl := classes(t, cs, env.Namespace, 100, 10000)
	var specs []podSpec
	for i := range 5 {
		specs = append(specs, podSpec{name: fmt.Sprintf("quick-%d", i), class: cl[100], grace: 30, exitAfter: "300ms", app: "quick"})
	}
	for i := range 3 {
		specs = append(specs, podSpec{name: fmt.Sprintf("guarded-%d", i), class: cl[100], grace: 30, exitAfter: "300ms", app: "guarded"})
	}
	specs = append(specs, podSpec{name: "mid", class: cl[10000], grace: 30, exitAfter: "300ms", app: "mid"})
	createPods(t, cs, env.Namespace, specs)
	createPDB(t, cs, env.Namespace, "guarded", 3, 3)
	tl := watchTimeline(t, cs, env.Namespace)

	svc := logindtest.Start(t, logindtest.Options{})
	run := startAgent(t, svc, cs, scenarioConfig(PDBRespect))
	locks, _ := svc.WaitLocks(context.Background(), 1)
	t0 := time.Now()
	if err := svc.PrepareForShutdown(true); err != nil {
		t.Fatal(err)
	}
	select {
	case <-locks[0].Released():
	case <-time.After(30 * time.Second):
		t.Fatal("the agent never released the delay lock")
	}
	midDel, _, _, ok := tl.get("mid")
	if !ok {
		t.Fatal("the next group's pod was never evicted")
	}
	if at := midDel.Sub(t0); at > 4*time.Second {
		t.Errorf("next group started at +%s: left pods must not hold their group until its 4 s deadline", at)
	}
	for i := range 3 {
		p, err := cs.CoreV1().Pods(env.Namespace).Get(context.Background(), fmt.Sprintf("guarded-%d", i), metav1.GetOptions{})
		if err != nil || p.DeletionTimestamp != nil {
			t.Errorf("guarded-%d: %v (deleting: %v), want it left running", i, err, err == nil && p.DeletionTimestamp != nil)
		}
	}
	if got := testutil.ToFloat64(run.metrics.pods.WithLabelValues("left")); got != 3 {
		t.Errorf("left pods %v, want 3", got)
	}
	clustertest.Eventually(t, 20*time.Second, func(context.Context) (bool, error) {
		return podEvents(t, cs, env.Namespace)[ReasonPodLeft] >= 3, nil
	}, "a %s Event for each guarded pod", ReasonPodLeft)
}

func TestCancelledShutdownUncordonsAndRetakesTheLock(t *testing.T) {
	env := clustertest.New(t)
	cs := fastClient(t, env)
	cleanNode(t, cs)
	cl := classes(t, cs, env.Namespace, 100, 10000)
	createPods(t, cs, env.Namespace, []podSpec{
		{name: "slow", class: cl[100], grace: 30, app: "slow"},
		{name: "mid", class: cl[10000], grace: 30, app: "mid"},
	})
	svc := logindtest.Start(t, logindtest.Options{})
	startAgent(t, svc, cs, scenarioConfig(PDBOverride))
	locks, _ := svc.WaitLocks(context.Background(), 1)
	if err := svc.PrepareForShutdown(true); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 10*time.Second, func(ctx context.Context) (bool, error) {
		p, err := cs.CoreV1().Pods(env.Namespace).Get(ctx, "slow", metav1.GetOptions{})
		return err == nil && p.DeletionTimestamp != nil, nil
	}, "the first group's eviction")
	n, _ := cs.CoreV1().Nodes().Get(context.Background(), kwokNode, metav1.GetOptions{})
	if !n.Spec.Unschedulable || !hasTaint(n) {
		t.Fatalf("node not cordoned during the shutdown: %+v", n.Spec)
	}
	if err := svc.PrepareForShutdown(false); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 10*time.Second, func(ctx context.Context) (bool, error) {
		n, err := cs.CoreV1().Nodes().Get(ctx, kwokNode, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		_, annotated := n.Annotations[AnnotationShutdown]
		return !n.Spec.Unschedulable && !hasTaint(n) && !annotated, nil
	}, "the node to be uncordoned, untainted and unannotated")
	all, err := svc.WaitLocks(context.Background(), 2)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-locks[0].Released():
	case <-time.After(10 * time.Second):
		t.Fatal("the cancelled shutdown's lock was never released")
	}
	if all[1].IsReleased() {
		t.Error("the lock re-taken after the cancel is not held")
	}
	p, err := cs.CoreV1().Pods(env.Namespace).Get(context.Background(), "mid", metav1.GetOptions{})
	if err != nil || p.DeletionTimestamp != nil {
		t.Errorf("the next group's pod: %v, want it untouched after the cancel", err)
	}
}

func TestNodeUncordonedAfterReboot(t *testing.T) {
	env := clustertest.New(t)
	cs := fastClient(t, env)
	cleanNode(t, cs)
	createPods(t, cs, env.Namespace, []podSpec{{name: "quick", grace: 30, exitAfter: "200ms", app: "quick"}})
	svc := logindtest.Start(t, logindtest.Options{})
	run := startAgent(t, svc, cs, scenarioConfig(PDBOverride))
	locks, _ := svc.WaitLocks(context.Background(), 1)
	if err := svc.PrepareForShutdown(true); err != nil {
		t.Fatal(err)
	}
	select {
	case <-locks[0].Released():
	case <-time.After(20 * time.Second):
		t.Fatal("the agent never released the delay lock")
	}
	run.stop() // the node "powers off"

	// A restart with the same boot ID (the agent's pod restarted) keeps the cordon.
	svc2 := logindtest.Start(t, logindtest.Options{})
	startAgent(t, svc2, cs, scenarioConfig(PDBOverride)).stop()
	n, _ := cs.CoreV1().Nodes().Get(context.Background(), kwokNode, metav1.GetOptions{})
	if !n.Spec.Unschedulable || !hasTaint(n) {
		t.Fatalf("node uncordoned without a reboot: %+v", n.Spec)
	}

	// The node comes back with a new boot ID; the agent starts again.
	boot := "rebooted-" + env.Namespace
	patch := fmt.Appendf(nil, `{"status":{"nodeInfo":{"bootID":%q}}}`, boot)
	if _, err := cs.CoreV1().Nodes().PatchStatus(context.Background(), kwokNode, patch); err != nil {
		t.Fatal(err)
	}
	svc3 := logindtest.Start(t, logindtest.Options{})
	startAgent(t, svc3, cs, scenarioConfig(PDBOverride))
	n, err := cs.CoreV1().Nodes().Get(context.Background(), kwokNode, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, annotated := n.Annotations[AnnotationShutdown]; n.Spec.Unschedulable || hasTaint(n) || annotated || n.Status.NodeInfo.BootID != boot {
		t.Errorf("after the reboot: unschedulable=%v taints=%v annotations=%v bootID=%s; want uncordoned, untainted, unannotated",
			n.Spec.Unschedulable, n.Spec.Taints, n.Annotations, n.Status.NodeInfo.BootID)
	}
	reasons := map[string]bool{}
	for _, e := range nodeEvents(t, cs) {
		reasons[e.Reason] = true
	}
	if !reasons[ReasonUncordoned] {
		t.Errorf("no %s Event on the node", ReasonUncordoned)
	}
}
