//go:build integration

package run_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
	"github.com/lastcall-dev/lastcall/internal/run"
)

// TestStepThatPanicsFailsItsRunAndNothingElse: a step kind whose code
// panics (here a sleep step replaced by one that does) fails its pod and
// its run with a reason saying so; the process lives on and executes the
// next run.
func TestStepThatPanicsFailsItsRunAndNothingElse(t *testing.T) {
	env := clustertest.New(t)
	mgr, err := ctrl.NewManager(clustertest.Cluster().Config(), ctrl.Options{
		Scheme: run.Scheme(), Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
	})
	if err != nil {
		t.Fatal(err)
	}
	actions := run.DefaultActions(mgr, http.DefaultClient, clock.RealClock{})
	actions[v1alpha1.StepSleep] = run.ActionFunc(func(_ context.Context, t run.Target) (string, error) {
		var pods []string
		return pods[len(t.Pod.Name)], nil // an index out of range: a bug
	})
	if _, err := run.NewController(mgr, run.Options{Actions: actions}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	c, err := client.New(clustertest.Cluster().Config(), client.Options{Scheme: run.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	newFleet(t, env, "buggy", 1, func(string) http.Handler { return http.NotFoundHandler() })
	policy := func(name string, step v1alpha1.Step) *v1alpha1.TerminationPolicy {
		return createPolicy(t, c, env.Namespace, &v1alpha1.TerminationPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: v1alpha1.TerminationPolicySpec{
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "buggy"}},
				Steps:    []v1alpha1.Step{step},
			},
		})
	}
	bad := startRun(t, c, policy("panics", v1alpha1.Step{Name: "pause", Sleep: &v1alpha1.SleepAction{Duration: metav1.Duration{Duration: time.Millisecond}}}))
	got := waitComplete(t, c, env.Namespace, bad.Name, 30*time.Second)
	if got.Status.Phase != v1alpha1.RunFailed || !strings.Contains(got.Status.Message+podMessages(got), "panicked") {
		t.Fatalf("run %s: %s %q (pods: %s), want Failed saying the step panicked", got.Name, got.Status.Phase, got.Status.Message, podMessages(got))
	}
	good := startRun(t, c, policy("labels", v1alpha1.Step{Name: "mark", Label: &v1alpha1.MetadataAction{Set: map[string]string{"drained": "true"}}}))
	if r := waitComplete(t, c, env.Namespace, good.Name, 30*time.Second); r.Status.Phase != v1alpha1.RunSucceeded {
		t.Fatalf("the next run after the panic: %s %q", r.Status.Phase, r.Status.Message)
	}
}

func podMessages(r *v1alpha1.TerminationRun) string {
	var b strings.Builder
	for _, p := range r.Status.Pods {
		for _, s := range p.Steps {
			b.WriteString(s.Message + "; ")
		}
	}
	return b.String()
}
