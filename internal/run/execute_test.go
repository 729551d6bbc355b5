package run

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
)

// Fast tests of the run logic: controller-runtime's fake client for the
// API, a fake clock for backoffs, fake actions for steps. The integration
// tests prove the same against the API server and real HTTP.

// fakeExec is a controller over a fake client, its fake clock, and the
// calls its one step kind (http) received.
type fakeExec struct {
	c     *Controller
	cl    client.Client
	clock *clocktesting.FakeClock
	mu    sync.Mutex
	calls map[string]int // per pod
}

// newFakeExec makes pods web-0..web-(n-1) and a controller whose http
// steps answer with do(pod, call number).
func newFakeExec(t *testing.T, n int, do func(pod string, call int) error) *fakeExec {
	t.Helper()
	var objs []client.Object
	for i := range n {
		name := "web-" + string(rune('0'+i))
		objs = append(objs, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", UID: types.UID("uid-" + name), Labels: map[string]string{"app": "web"}}})
	}
	cl := fake.NewClientBuilder().WithScheme(Scheme()).WithObjects(objs...).WithStatusSubresource(&v1alpha1.TerminationRun{}).Build()
	f := &fakeExec{cl: cl, clock: clocktesting.NewFakeClock(time.Now()), calls: map[string]int{}}
	f.c = &Controller{client: cl, reader: cl, recorder: record.NewFakeRecorder(100), clock: f.clock, http: http.DefaultClient,
		metrics: NewMetrics(nil), running: map[types.UID]bool{}, waiting: map[types.UID]bool{}, max: 10,
		actions: Actions{v1alpha1.StepHTTP: ActionFunc(func(_ context.Context, tg Target) (string, error) {
			f.mu.Lock()
			f.calls[tg.Pod.Name]++
			call := f.calls[tg.Pod.Name]
			f.mu.Unlock()
			if err := do(tg.Pod.Name, call); err != nil {
				return "", err
			}
			return "200 OK", nil
		})}}
	return f
}

func (f *fakeExec) policy(t *testing.T, mod func(*v1alpha1.TerminationPolicySpec)) *v1alpha1.TerminationPolicy {
	t.Helper()
	p := &v1alpha1.TerminationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "drain", Namespace: "shop"}, Spec: v1alpha1.TerminationPolicySpec{
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		Steps:    []v1alpha1.Step{{Name: "drain", HTTP: &v1alpha1.HTTPAction{Endpoint: v1alpha1.Endpoint{Port: 8080, Path: "/drain"}}}},
	}}
	mod(&p.Spec)
	if err := f.cl.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	return p
}

// execute runs the policy over every pod to the end, moving the fake
// clock whenever the run sleeps, and returns the run as stored and the
// time the clock moved.
func (f *fakeExec) execute(t *testing.T, p *v1alpha1.TerminationPolicy, pods int) (*v1alpha1.TerminationRun, time.Duration) {
	t.Helper()
	r := &v1alpha1.TerminationRun{ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "shop"},
		Spec: v1alpha1.TerminationRunSpec{PolicyRef: v1alpha1.PolicyRef{Name: p.Name}, Trigger: v1alpha1.Trigger{Source: v1alpha1.TriggerCLI}}}
	for i := range pods {
		name := "web-" + string(rune('0'+i))
		r.Spec.Pods = append(r.Spec.Pods, v1alpha1.PodRef{Name: name, UID: types.UID("uid-" + name)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := f.cl.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- f.c.execute(ctx, r) }()
	start := f.clock.Now()
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("execute: %v", err)
			}
			var got v1alpha1.TerminationRun
			if err := f.cl.Get(ctx, client.ObjectKeyFromObject(r), &got); err != nil {
				t.Fatal(err)
			}
			return &got, f.clock.Since(start)
		case <-ctx.Done():
			t.Fatal("the run did not end")
		case <-time.After(time.Millisecond):
			// A sleeping run waits on the fake clock: move it to the
			// next timer.
			if f.clock.HasWaiters() {
				f.clock.Step(time.Second)
			}
		}
	}
}

func TestStepIsRetriedWithDoublingBackoffUntilItSucceeds(t *testing.T) {
	f := newFakeExec(t, 1, func(_ string, call int) error {
		if call < 3 {
			return errors.New("503 Service Unavailable")
		}
		return nil
	})
	p := f.policy(t, func(s *v1alpha1.TerminationPolicySpec) {
		s.StepDefaults = v1alpha1.StepPolicy{Retries: ptr.To(int32(3)), Backoff: &metav1.Duration{Duration: 2 * time.Second}}
	})
	run, slept := f.execute(t, p, 1)
	if run.Status.Phase != v1alpha1.RunSucceeded || !meta.IsStatusConditionTrue(run.Status.Conditions, v1alpha1.ConditionComplete) {
		t.Fatalf("run %s: %s", run.Status.Phase, run.Status.Message)
	}
	step := run.Status.Pods[0].Steps[0]
	if step.Attempts != 3 || step.Phase != v1alpha1.StepSucceeded {
		t.Fatalf("step: %d attempts, %s; want 3, Succeeded", step.Attempts, step.Phase)
	}
	// Backoffs of 2 s then 4 s; the clock moves in 1 s steps.
	if slept < 6*time.Second || slept > 8*time.Second {
		t.Errorf("slept %s in backoffs, want 2 s + 4 s", slept)
	}
}

func TestStepOutOfRetriesFailsThePodAndTheRunSaysWhy(t *testing.T) {
	f := newFakeExec(t, 2, func(pod string, _ int) error {
		if pod == "web-1" {
			return errors.New("connection refused")
		}
		return nil
	})
	p := f.policy(t, func(s *v1alpha1.TerminationPolicySpec) {
		s.StepDefaults = v1alpha1.StepPolicy{Retries: ptr.To(int32(1)), Backoff: &metav1.Duration{Duration: time.Second}}
	})
	run, _ := f.execute(t, p, 2)
	if run.Status.Phase != v1alpha1.RunFailed || run.Status.Reason != "PodsFailed" || run.Status.PodsDone != 1 || run.Status.PodsFailed != 1 {
		t.Fatalf("run %s/%s, %d done, %d failed", run.Status.Phase, run.Status.Reason, run.Status.PodsDone, run.Status.PodsFailed)
	}
	if !strings.Contains(run.Status.Message, "web-1") || !strings.Contains(run.Status.Message, "connection refused") {
		t.Errorf("message %q does not name the pod and the cause", run.Status.Message)
	}
	if f.calls["web-1"] != 2 {
		t.Errorf("web-1 called %d times, want 1 + 1 retry", f.calls["web-1"])
	}
}

func TestPermanentStepErrorIsNotRetried(t *testing.T) {
	f := newFakeExec(t, 1, func(string, int) error { return permanent("template: no such field") })
	p := f.policy(t, func(s *v1alpha1.TerminationPolicySpec) {
		s.StepDefaults = v1alpha1.StepPolicy{Retries: ptr.To(int32(5))}
	})
	run, _ := f.execute(t, p, 1)
	if run.Status.Phase != v1alpha1.RunFailed || f.calls["web-0"] != 1 {
		t.Fatalf("run %s after %d calls; want Failed after 1", run.Status.Phase, f.calls["web-0"])
	}
}

func TestRetryExitHandlerStartsANewAttemptAfterItsBackoff(t *testing.T) {
	f := newFakeExec(t, 2, func(pod string, call int) error {
		if pod == "web-1" && call == 1 {
			return errors.New("still busy")
		}
		return nil
	})
	p := f.policy(t, func(s *v1alpha1.TerminationPolicySpec) {
		s.StepDefaults = v1alpha1.StepPolicy{Retries: ptr.To(int32(0))}
		s.ExitHandlers = []v1alpha1.ExitHandler{{Name: "again", When: v1alpha1.ExitFailed,
			Retry: &v1alpha1.RetryAction{Limit: 2, Backoff: &metav1.Duration{Duration: 30 * time.Second}, Scope: v1alpha1.RetryFailedPods}}}
	})
	run, slept := f.execute(t, p, 2)
	if run.Status.Phase != v1alpha1.RunSucceeded || run.Status.Attempt != 2 {
		t.Fatalf("run %s at attempt %d, want Succeeded at attempt 2: %s", run.Status.Phase, run.Status.Attempt, run.Status.Message)
	}
	// Only the failed pod ran again (scope FailedPods).
	if f.calls["web-0"] != 1 || f.calls["web-1"] != 2 {
		t.Errorf("calls %v, want web-0 once and web-1 twice", f.calls)
	}
	if slept < 30*time.Second || slept > 32*time.Second {
		t.Errorf("attempt 2 began after %s, want the 30 s backoff", slept)
	}
}

// TestRunRefusesPodsItsPolicyDoesNotCover: whoever may create a
// TerminationRun can name any pod; the policy's steps run only for the
// pods the policy covers, and the others fail with the reason, unreached.
func TestRunRefusesPodsItsPolicyDoesNotCover(t *testing.T) {
	f := newFakeExec(t, 1, func(string, int) error { return nil })
	other := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "shop", UID: "uid-web-1", Labels: map[string]string{"app": "db"}}}
	if err := f.cl.Create(context.Background(), other); err != nil {
		t.Fatal(err)
	}
	p := f.policy(t, func(*v1alpha1.TerminationPolicySpec) {})
	run, _ := f.execute(t, p, 2)
	if f.calls["web-1"] != 0 || f.calls["web-0"] != 1 {
		t.Fatalf("calls %v: the uncovered pod was reached", f.calls)
	}
	st := run.Status.Pods[1]
	if st.Phase != v1alpha1.PodFailed || !strings.Contains(st.Message, "not selected by policy drain") {
		t.Fatalf("uncovered pod: %s %q", st.Phase, st.Message)
	}
}
