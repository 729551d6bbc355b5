//go:build integration

package run_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
	"github.com/lastcall-dev/lastcall/internal/server"
)

// TestRunsBeyondTheCapWaitForASlot: with --max-concurrent-runs 1, two runs
// created together execute one after the other, never at once.
func TestRunsBeyondTheCapWaitForASlot(t *testing.T) {
	env := clustertest.New(t)
	c := startControllerWith(t, func(cfg *server.Config) { cfg.MaxConcurrentRuns = 1 })
	var mu sync.Mutex
	active, most := 0, 0
	newFleet(t, env, "capped", 1, func(string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			active++
			most = max(most, active)
			mu.Unlock()
			time.Sleep(300 * time.Millisecond) // the app draining
			mu.Lock()
			active--
			mu.Unlock()
		})
	})
	policy := createPolicy(t, c, env.Namespace, &v1alpha1.TerminationPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "drain-capped"},
		Spec: v1alpha1.TerminationPolicySpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "capped"}},
			Steps:    []v1alpha1.Step{{Name: "drain", HTTP: &v1alpha1.HTTPAction{Endpoint: v1alpha1.Endpoint{Port: 8080, Path: "/drain"}, Method: "POST"}}},
		},
	})
	a, b := startRun(t, c, policy), startRun(t, c, policy)
	ra := waitComplete(t, c, env.Namespace, a.Name, 30*time.Second)
	rb := waitComplete(t, c, env.Namespace, b.Name, 30*time.Second)
	if ra.Status.Phase != v1alpha1.RunSucceeded || rb.Status.Phase != v1alpha1.RunSucceeded {
		t.Fatalf("runs %s and %s, want both Succeeded", ra.Status.Phase, rb.Status.Phase)
	}
	first, second := ra, rb
	if second.Status.StartTime.Before(first.Status.StartTime) {
		first, second = second, first
	}
	if second.Status.StartTime.Before(first.Status.CompletionTime) || most != 1 {
		t.Fatalf("the second run started at %s, before the first ended at %s (%d drains at once): the cap did not hold it",
			second.Status.StartTime, first.Status.CompletionTime, most)
	}
}

// TestCompleteRunIsDeletedAfterItsTTL: spec.ttlSecondsAfterFinished, as
// for a Job; the gate sets it on its runs.
func TestCompleteRunIsDeletedAfterItsTTL(t *testing.T) {
	env := clustertest.New(t)
	c := startController(t)
	newFleet(t, env, "brief", 1, func(string) http.Handler { return http.NotFoundHandler() })
	policy := createPolicy(t, c, env.Namespace, &v1alpha1.TerminationPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "brief"},
		Spec: v1alpha1.TerminationPolicySpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "brief"}},
			Steps:    []v1alpha1.Step{{Name: "pause", Sleep: &v1alpha1.SleepAction{Duration: metav1.Duration{Duration: 10 * time.Millisecond}}}},
		},
	})
	r := startRunWith(t, c, policy, func(r *v1alpha1.TerminationRun) { r.Spec.TTLSecondsAfterFinished = ptr.To[int32](2) })
	done := waitComplete(t, c, env.Namespace, r.Name, 30*time.Second)
	clustertest.Eventually(t, 30*time.Second, func(ctx context.Context) (bool, error) {
		err := c.Get(ctx, client.ObjectKeyFromObject(r), &v1alpha1.TerminationRun{})
		return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	}, "the run to be deleted after its TTL")
	if gone := time.Since(done.Status.CompletionTime.Time); gone < 2*time.Second {
		t.Errorf("deleted %s after it completed, before its 2 s TTL", gone)
	}
}
