//go:build integration

package gate_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
	"github.com/lastcall-dev/lastcall/internal/gate"
)

func TestFlaggerGateHoldsWhileTheRunDrainsAndOpensWhenItSucceeded(t *testing.T) {
	env := clustertest.New(t)
	c := adminClient(t)
	s := startServer(t, serverOpts{})
	app := newDrainApp()
	pods := canary(t, c, env.Namespace, "web", "web", 3, app)
	s.waitCached(t, drainPolicy(t, c, env.Namespace, "drain-web", "web", ""))
	payload := s.promotion(t, c, env.Namespace, "web", "rev-1")

	first := post(t, s.URL+"/flagger/gate", "", payload)
	if first.code != http.StatusForbidden || first.contentType != "application/json" {
		t.Fatalf("first call: %v, want 403 JSON while the run has not run", first)
	}
	a := gateAnswer(t, first)
	if a.Run == "" || a.PodsTotal != 3 || a.PodsDone != 0 || (a.Phase != "Pending" && a.Phase != "Running") {
		t.Fatalf("first answer %+v: want the new run, 0/3 pods done", a)
	}
	running := until(t, 30*time.Second, "the run to be Running", func() answer {
		return post(t, s.URL+"/flagger/gate", "", payload)
	}, func(a answer) bool { return strings.Contains(a.body, `"phase":"Running"`) })
	if running.code != http.StatusForbidden || !strings.Contains(gateAnswer(t, running).Message, "waiting for run "+a.Run) {
		t.Fatalf("while Running: %v, want 403 naming the run", running)
	}

	close(app.release)
	done := until(t, 30*time.Second, "the gate to open", func() answer {
		return post(t, s.URL+"/flagger/gate", "", payload)
	}, func(a answer) bool { return a.code == http.StatusOK })
	if got := gateAnswer(t, done); got.Phase != "Succeeded" || got.PodsDone != 3 || got.Run != a.Run {
		t.Fatalf("open answer %+v: want run %s Succeeded with 3/3 pods", got, a.Run)
	}
	for _, p := range pods {
		if n := app.counts()[p.Name]; n != 1 {
			t.Errorf("pod %s drained %d times, want once", p.Name, n)
		}
	}
	runs := gateRuns(t, c, env.Namespace)
	if len(runs) != 1 {
		t.Fatalf("%d gate runs, want 1", len(runs))
	}
	r := runs[0]
	want := v1alpha1.CanaryRef{Name: "web", Namespace: env.Namespace, Checksum: gate.FlaggerChecksum(nil, "rev-1"), HookType: "confirm-promotion"}
	if r.Spec.Trigger.Source != v1alpha1.TriggerGate || r.Spec.Trigger.Canary == nil || *r.Spec.Trigger.Canary != want ||
		r.Labels[gate.LabelCanary] != "web" || r.Spec.PolicyRef.Name != "drain-web" {
		t.Errorf("run trigger %+v labels %v policy %s: want the canary revision and drain-web", r.Spec.Trigger, r.Labels, r.Spec.PolicyRef.Name)
	}

	// A new revision is a new run; the old one keeps its answer.
	next := post(t, s.URL+"/flagger/gate", "", s.promotion(t, c, env.Namespace, "web", "rev-2"))
	if next.code != http.StatusForbidden || gateAnswer(t, next).Run == a.Run {
		t.Errorf("revision 2: %v, want 403 for a new run", next)
	}
	if n := counter(t, s, "lastcall_gate_decisions_total", map[string]string{"endpoint": "/flagger/gate", "result": "open", "hook": "confirm-promotion"}); n < 1 {
		t.Errorf("lastcall_gate_decisions_total{result=open} = %v", n)
	}
	if n := counter(t, s, "lastcall_gate_runs_created_total", map[string]string{"hook": "confirm-promotion"}); n != 2 {
		t.Errorf("lastcall_gate_runs_created_total = %v, want 2", n)
	}
}

func TestFlaggerGateStartsOneRunForConcurrentCallsOnTwoReplicasAndAfterARestart(t *testing.T) {
	env := clustertest.New(t)
	c := adminClient(t)
	a := startServer(t, serverOpts{leaseNamespace: env.Namespace})
	b := startServer(t, serverOpts{leaseNamespace: env.Namespace})
	app := newDrainApp()
	canary(t, c, env.Namespace, "api", "api", 2, app)
	policy := drainPolicy(t, c, env.Namespace, "drain-api", "api", "")
	a.waitCached(t, policy)
	b.waitCached(t, policy)
	payload := a.promotion(t, c, env.Namespace, "api", "rev-7")
	b.promotion(t, c, env.Namespace, "api", "rev-7")

	var wg sync.WaitGroup
	names := make(chan string, 40)
	for i := 0; i < 40; i++ {
		url := a.URL
		if i%2 == 1 {
			url = b.URL
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			got := post(t, url+"/flagger/gate", "", payload)
			if got.code != http.StatusForbidden {
				t.Errorf("concurrent call: %v, want 403", got)
				return
			}
			names <- gateAnswer(t, got).Run
		}()
	}
	wg.Wait()
	close(names)
	var name string
	for n := range names {
		if name == "" {
			name = n
		}
		if n != name {
			t.Fatalf("answers name runs %s and %s", name, n)
		}
	}
	if runs := gateRuns(t, c, env.Namespace); len(runs) != 1 || runs[0].Name != name {
		t.Fatalf("%d gate runs after 40 concurrent calls on 2 replicas, want just %s", len(runs), name)
	}

	// Both replicas stop; a fresh one finds the run, and the leader that
	// takes over finishes it once.
	a.stop()
	b.stop()
	fresh := startServer(t, serverOpts{leaseNamespace: env.Namespace})
	if got := post(t, fresh.URL+"/flagger/gate", "", payload); got.code != http.StatusForbidden || gateAnswer(t, got).Run != name {
		t.Fatalf("after the restart: %v, want 403 for run %s", got, name)
	}
	close(app.release)
	until(t, 60*time.Second, "the gate to open after the restart", func() answer {
		return post(t, fresh.URL+"/flagger/gate", "", payload)
	}, func(a answer) bool { return a.code == http.StatusOK })
	if runs := gateRuns(t, c, env.Namespace); len(runs) != 1 {
		t.Fatalf("%d gate runs, want 1", len(runs))
	}
	for pod, n := range app.counts() {
		if n != 1 {
			t.Errorf("pod %s drained %d times, want once", pod, n)
		}
	}
}

func TestFailedRunHoldsTheGateUnlessThePolicySaysOpen(t *testing.T) {
	env := clustertest.New(t)
	c := adminClient(t)
	s := startServer(t, serverOpts{})
	for _, tc := range []struct {
		canary    string
		onFailure v1alpha1.GateFailureAction
		code      int
		msg       string
	}{
		{"held", v1alpha1.GateHold, http.StatusForbidden, "holding (gate.onFailure: hold)"},
		{"opened", v1alpha1.GateOpen, http.StatusOK, "passing as its policy says"},
	} {
		app := newDrainApp()
		app.status.Store(http.StatusInternalServerError)
		close(app.release)
		canary(t, c, env.Namespace, tc.canary, tc.canary, 1, app)
		drainPolicy(t, c, env.Namespace, "drain-"+tc.canary, tc.canary, tc.onFailure)
		payload := s.promotion(t, c, env.Namespace, tc.canary, "rev-1")
		got := until(t, 30*time.Second, "the run of "+tc.canary+" to fail", func() answer {
			return post(t, s.URL+"/flagger/gate", "", payload)
		}, func(a answer) bool { return strings.Contains(a.body, tc.msg) })
		if got.code != tc.code || gateAnswer(t, got).Phase != "Failed" {
			t.Errorf("%s: %v, want %d for the Failed run", tc.canary, got, tc.code)
		}
	}
}

func TestManualOverrideIsRecordedOnTheRunAndWins(t *testing.T) {
	env := clustertest.New(t)
	c := adminClient(t)
	s := startServer(t, serverOpts{})
	app := newDrainApp()
	canary(t, c, env.Namespace, "web", "web", 1, app)
	s.waitCached(t, drainPolicy(t, c, env.Namespace, "drain-web", "web", ""))
	payload := s.promotion(t, c, env.Namespace, "web", "rev-1")
	if got := post(t, s.URL+"/flagger/gate", "", payload); got.code != http.StatusForbidden {
		t.Fatalf("before the override: %v", got)
	}

	// Open by hand while the run is still draining: no checksum means the
	// canary's newest gate run.
	opened := post(t, s.URL+"/flagger/gate/open", adminToken, map[string]any{"name": "web", "namespace": env.Namespace})
	if opened.code != http.StatusOK || !strings.Contains(gateAnswer(t, opened).Message, "opened by lastcall:admin") {
		t.Fatalf("open: %v", opened)
	}
	// The same replica answers from its cache, which the open waited for.
	if got := post(t, s.URL+"/flagger/gate", "", payload); got.code != http.StatusOK {
		t.Fatalf("after the override: %v, want 200", got)
	}
	runs := gateRuns(t, c, env.Namespace)
	if len(runs) != 1 || runs[0].Spec.Gate == nil || runs[0].Spec.Gate.Action != v1alpha1.GateOverrideOpen ||
		runs[0].Spec.Gate.By != "lastcall:admin" || time.Since(runs[0].Spec.Gate.At.Time) > time.Minute {
		t.Fatalf("runs %+v: want one run with spec.gate Open by lastcall:admin, just now", runs)
	}

	// Closing wins over a run that has since succeeded.
	close(app.release)
	waitPhase(t, c, env.Namespace, runs[0].Name, v1alpha1.RunSucceeded)
	closed := post(t, s.URL+"/flagger/gate/close", adminToken, map[string]any{"name": "web", "namespace": env.Namespace, "checksum": gate.FlaggerChecksum(nil, "rev-1")})
	if closed.code != http.StatusOK {
		t.Fatalf("close: %v", closed)
	}
	if got := post(t, s.URL+"/flagger/gate", "", payload); got.code != http.StatusForbidden || !strings.Contains(got.body, "closed by lastcall:admin") {
		t.Fatalf("after close: %v, want 403 saying who closed it", got)
	}
	if got := post(t, s.URL+"/flagger/gate/open", adminToken, map[string]any{"name": "web", "namespace": env.Namespace, "checksum": "rev-9"}); got.code != http.StatusNotFound {
		t.Errorf("override of a revision without a run: %v, want 404", got)
	}
	// Authorised for canary "api", naming web's run in metadata.run: the
	// run acted on is web's, so it is refused, and web's gate stays closed.
	cross := post(t, s.URL+"/flagger/gate/open", adminToken, map[string]any{"name": "api", "namespace": env.Namespace,
		"metadata": map[string]string{"run": runs[0].Name}})
	if cross.code != http.StatusForbidden || !strings.Contains(cross.body, "is not a gate run of canary") {
		t.Errorf("an override of another canary's run through metadata.run: %v, want 403", cross)
	}
	if got := post(t, s.URL+"/flagger/gate", "", payload); got.code != http.StatusForbidden {
		t.Errorf("web's gate after the refused cross-canary override: %v, want still 403", got)
	}
}

func TestFlaggerGateFindsThePolicyOrSaysWhyNot(t *testing.T) {
	env := clustertest.New(t)
	c := adminClient(t)
	s := startServer(t, serverOpts{})
	app := newDrainApp()
	close(app.release)
	// The canary "shop" targets Deployment "store": its primary is store-primary.
	canary(t, c, env.Namespace, "shop", "store", 1, app)
	hold := func(body map[string]any, want string) {
		t.Helper()
		got := post(t, s.URL+"/flagger/gate", "", body)
		if got.code != http.StatusForbidden || gateAnswer(t, got).Phase != gate.PhaseNoRun || !strings.Contains(got.body, want) {
			t.Fatalf("%v: got %v, want 403 NoRun saying %q", body, got, want)
		}
	}
	hold(s.promotion(t, c, env.Namespace, "shop", "r1"), "no TerminationPolicy in "+env.Namespace+" covers store-primary")
	// A policy for something else: now the canary is looked at.
	s.waitCached(t, drainPolicy(t, c, env.Namespace, "other", "other", ""))
	hold(s.promotion(t, c, env.Namespace, "shop", "r1"), "no TerminationPolicy in "+env.Namespace+" covers store-primary")
	hold(s.promotion(t, c, env.Namespace, "nocanary", "r1"), "canary not found")
	withPolicy := s.promotion(t, c, env.Namespace, "shop", "r1")
	withPolicy["metadata"] = map[string]string{"policy": "missing"}
	hold(withPolicy, "TerminationPolicy missing, which does not cover")

	// A selector policy matching the primary's pod labels is found...
	sel := &v1alpha1.TerminationPolicy{}
	sel.Name, sel.Namespace = "by-selector", env.Namespace
	sel.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "store-primary"}}
	sel.Spec.Steps = []v1alpha1.Step{{Name: "drain", HTTP: &v1alpha1.HTTPAction{Endpoint: v1alpha1.Endpoint{Port: 8080, Path: "/drain"}}}}
	if err := c.Create(context.Background(), sel); err != nil {
		t.Fatal(err)
	}
	until(t, 30*time.Second, "the selector policy's run to succeed", func() answer {
		return post(t, s.URL+"/flagger/gate", "", s.promotion(t, c, env.Namespace, "shop", "r1"))
	}, func(a answer) bool { return a.code == http.StatusOK })
	// ...and a second one covering the same pods makes it ambiguous.
	s.waitCached(t, drainPolicy(t, c, env.Namespace, "by-target", "store", ""))
	hold(s.promotion(t, c, env.Namespace, "shop", "r2"), "policies by-selector, by-target all cover store-primary: set metadata.policy")
	explicit := s.promotion(t, c, env.Namespace, "shop", "r2")
	explicit["metadata"] = map[string]string{"policy": "by-target", "type": "confirm-rollout"}
	got := post(t, s.URL+"/flagger/gate", "", explicit)
	if got.code != http.StatusForbidden {
		t.Fatalf("explicit policy: %v", got)
	}
	var r v1alpha1.TerminationRun
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: env.Namespace, Name: gateAnswer(t, got).Run}, &r); err != nil {
		t.Fatal(err)
	}
	if r.Spec.PolicyRef.Name != "by-target" || r.Spec.Trigger.Canary.HookType != "confirm-rollout" || r.Labels[gate.LabelHook] != "confirm-rollout" {
		t.Errorf("run %s: policy %s hook %s, want by-target and confirm-rollout", r.Name, r.Spec.PolicyRef.Name, r.Spec.Trigger.Canary.HookType)
	}
}

func waitPhase(t testing.TB, c client.Client, ns, name string, phase v1alpha1.RunPhase) {
	t.Helper()
	clustertest.Eventually(t, 30*time.Second, func(ctx context.Context) (bool, error) {
		var r v1alpha1.TerminationRun
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &r); err != nil {
			return false, err
		}
		return r.Status.Phase == phase, nil
	}, "run %s to be %s", name, phase)
}
