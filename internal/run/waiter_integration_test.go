//go:build integration

package run_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
	"github.com/lastcall-dev/lastcall/internal/run"
)

// TestWaiterFollowsRunsToTheirEnd: run.Waiter against the real API server
// reports the current state first, then each change, including a deletion,
// and selects by label or by name. No controller runs here: the test
// writes the status itself.
func TestWaiterFollowsRunsToTheirEnd(t *testing.T) {
	env := clustertest.New(t)
	c, err := client.NewWithWatch(clustertest.Cluster().Config(), client.Options{Scheme: run.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mk := func(name, group string) *v1alpha1.TerminationRun {
		r := &v1alpha1.TerminationRun{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: env.Namespace, Labels: map[string]string{"group": group}},
			Spec: v1alpha1.TerminationRunSpec{PolicyRef: v1alpha1.PolicyRef{Name: "p"}, Trigger: v1alpha1.Trigger{Source: v1alpha1.TriggerCLI},
				Pods: []v1alpha1.PodRef{{Name: "web-0", UID: "u0"}}},
		}
		if err := c.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	a, b := mk("a", "g1"), mk("b", "g1")
	mk("other", "g2")
	// a already ended before anyone follows it.
	meta.SetStatusCondition(&a.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionComplete, Status: metav1.ConditionTrue, Reason: "Succeeded"})
	a.Status.Phase = v1alpha1.RunSucceeded
	if err := c.Status().Update(ctx, a); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	seen := map[string]string{}
	done := make(chan error, 1)
	go func() {
		done <- (&run.Waiter{Client: c}).Follow(ctx, run.Selection{Namespace: env.Namespace, Labels: labels.SelectorFromSet(labels.Set{"group": "g1"})},
			func(r *v1alpha1.TerminationRun, deleted bool) bool {
				mu.Lock()
				defer mu.Unlock()
				switch {
				case deleted:
					seen[r.Name] = "deleted"
				case meta.IsStatusConditionTrue(r.Status.Conditions, v1alpha1.ConditionComplete):
					seen[r.Name] = "complete"
				default:
					seen[r.Name] = "running"
				}
				return seen["a"] == "complete" && seen["b"] == "deleted"
			})
	}()
	clustertest.Eventually(t, 10*time.Second, func(context.Context) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		return seen["a"] == "complete" && seen["b"] == "running", nil
	}, "the current state of both runs")
	if err := c.Delete(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Follow: %v", err)
	}
	if _, ok := seen["other"]; ok {
		t.Fatalf("a run outside the selection was reported: %v", seen)
	}

	// By name: only that run, and ctx ending ends Follow with its error.
	short, stop := context.WithTimeout(context.Background(), 2*time.Second)
	defer stop()
	var names []string
	err = (&run.Waiter{Client: c}).Follow(short, run.Selection{Namespace: env.Namespace, Name: "other"}, func(r *v1alpha1.TerminationRun, _ bool) bool {
		names = append(names, r.Name)
		return false
	})
	if err != context.DeadlineExceeded || len(names) != 1 || names[0] != "other" {
		t.Fatalf("by name: %v, saw %v; want DeadlineExceeded after seeing only other", err, names)
	}
}
