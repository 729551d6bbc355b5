//go:build integration

package node

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
	"github.com/lastcall-dev/lastcall/internal/node/logind/logindtest"
)

// TestFailedAndOverdueRunsDoNotHoldEvictions: a run that fails lets its pod
// go at once, a run still going when the group's share for runs (2 s of
// 4 s) ends lets it go then, a pod no policy covers goes without waiting,
// and the failed and overdue runs are reported on the run objects.
func TestFailedAndOverdueRunsDoNotHoldEvictions(t *testing.T) {
	env := clustertest.New(t)
	cs := fastClient(t, env)
	cleanNode(t, cs)
	c := startController(t)
	ns := env.Namespace
	createPods(t, cs, ns, []podSpec{
		{name: "fails", grace: 30, exitAfter: "200ms", app: "fails"},
		{name: "slow", grace: 30, exitAfter: "200ms", app: "slow"},
		{name: "free", grace: 30, exitAfter: "200ms", app: "free"},
	})
	failing := serveDrains(t, cs, ns, []string{"fails"}, http.StatusInternalServerError)
	slowDrains := serveDrains(t, cs, ns, []string{"slow"}, http.StatusOK)
	sleep := v1alpha1.Step{Name: "linger", Sleep: &v1alpha1.SleepAction{Duration: metav1.Duration{Duration: 20 * time.Second}},
		StepPolicy: v1alpha1.StepPolicy{Timeout: &metav1.Duration{Duration: time.Minute}}}
	for _, p := range []*v1alpha1.TerminationPolicy{
		drainPolicy(ns, "fails", &metav1.LabelSelector{MatchLabels: map[string]string{"app": "fails"}}, nil),
		drainPolicy(ns, "slow", &metav1.LabelSelector{MatchLabels: map[string]string{"app": "slow"}}, nil, sleep),
	} {
		if err := c.Create(context.Background(), p); err != nil {
			t.Fatal(err)
		}
	}
	tl := watchTimeline(t, cs, ns)

	svc := logindtest.Start(t, logindtest.Options{})
	run := startAgent(t, svc, cs, scenarioConfig(PDBOverride))
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
	at := func(pod string) time.Duration {
		del, _, _, ok := tl.get(pod)
		if !ok {
			t.Fatalf("%s was never evicted", pod)
		}
		return del.Sub(t0)
	}
	if d := at("free"); d > time.Second {
		t.Errorf("free (no policy) evicted at +%s: it waited for other pods' runs", d)
	}
	if first, n := failing.get("fails"); n != 1 || at("fails") > 1900*time.Millisecond || first.Sub(t0) > at("fails") {
		t.Errorf("fails: %d drain calls (first at +%s), evicted at +%s; want the call, then the eviction once the run failed (before the 2 s run share)",
			n, first.Sub(t0), at("fails"))
	}
	if _, n := slowDrains.get("slow"); n != 1 {
		t.Errorf("slow: %d drain calls, want 1", n)
	}
	if d := at("slow"); d < 1900*time.Millisecond || d > 3*time.Second {
		t.Errorf("slow evicted at +%s, want when the 2 s run share ended although its run still sleeps", d)
	}
	if got := testutil.ToFloat64(run.metrics.runs.WithLabelValues(runFailed)); got != 1 {
		t.Errorf("runs{failed} %v, want 1", got)
	}
	if got := testutil.ToFloat64(run.metrics.runs.WithLabelValues(runTimeout)); got != 1 {
		t.Errorf("runs{timeout} %v, want 1", got)
	}
	clustertest.Eventually(t, 20*time.Second, func(ctx context.Context) (bool, error) {
		byPolicy := map[string]string{}
		for _, r := range shutdownRuns(t, c, ns) {
			for _, e := range runEvents(t, c, ns, r.Name) {
				byPolicy[r.Spec.PolicyRef.Name] = e.Reason
			}
		}
		return byPolicy["fails"] == ReasonRunFailed && byPolicy["slow"] == ReasonRunTimedOut, nil
	}, "a %s Event on the failed run and a %s Event on the overdue one", ReasonRunFailed, ReasonRunTimedOut)
}

// runEvents lists the agent's Events about the run called name.
func runEvents(t *testing.T, cs client.Reader, ns, name string) []corev1.Event {
	t.Helper()
	var list corev1.EventList
	err := cs.List(context.Background(), &list, client.InNamespace(ns), client.MatchingFields{
		"involvedObject.kind": "TerminationRun", "involvedObject.name": name, "source": EventComponent,
	})
	if err != nil {
		t.Fatal(err)
	}
	return list.Items
}
