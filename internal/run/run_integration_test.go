//go:build integration

package run_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
	"github.com/lastcall-dev/lastcall/internal/run"
	"github.com/lastcall-dev/lastcall/internal/server"
)

// drainingApp answers POST /drain after a short while, reports in-flight
// work draining over three polls of GET /inflight, and tracks how many pods
// are being drained at once.
type drainingApp struct {
	mu          sync.Mutex
	polls       map[string]int
	active, max int
}

func (a *drainingApp) handler(pod string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /drain", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.active++
		a.max = max(a.max, a.active)
		a.mu.Unlock()
		time.Sleep(150 * time.Millisecond) // the app closing listeners
		a.mu.Lock()
		a.active--
		a.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("GET /inflight", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.polls[pod]++
		left := max(0, 3-a.polls[pod])
		a.mu.Unlock()
		fmt.Fprintf(w, `{"requests":{"inflight":%d}}`, left)
	})
	return mux
}

func drainPolicy(name, app string, concurrency int32) *v1alpha1.TerminationPolicy {
	return &v1alpha1.TerminationPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.TerminationPolicySpec{
			Selector:    &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}},
			Concurrency: concurrency,
			Steps: []v1alpha1.Step{
				{Name: "drain", HTTP: &v1alpha1.HTTPAction{Endpoint: v1alpha1.Endpoint{Port: 8080, Path: "/drain"}, Method: "POST",
					Body: `{"pod":"{{.Pod.Name}}","run":"{{.Run.Name}}"}`, ExpectedStatus: []int32{202}}},
				{Name: "wait", WaitDrained: &v1alpha1.WaitDrainedAction{Endpoint: v1alpha1.Endpoint{Port: 8080, Path: "/inflight"},
					Interval: dur(50 * time.Millisecond), JSONField: &v1alpha1.JSONFieldCondition{Path: "requests.inflight", AtMost: ptr.To(0.0)}}},
				{Name: "settle", Sleep: &v1alpha1.SleepAction{Duration: metav1.Duration{Duration: 100 * time.Millisecond}}},
			},
		},
	}
}

func startRun(t *testing.T, c client.Client, policy *v1alpha1.TerminationPolicy) *v1alpha1.TerminationRun {
	t.Helper()
	return startRunWith(t, c, policy, func(*v1alpha1.TerminationRun) {})
}

// startRunWith is startRun with the run changed by set before it is created.
func startRunWith(t *testing.T, c client.Client, policy *v1alpha1.TerminationPolicy, set func(*v1alpha1.TerminationRun)) *v1alpha1.TerminationRun {
	t.Helper()
	ctx := context.Background()
	pods, err := run.PolicyPods(ctx, c, policy)
	if err != nil {
		t.Fatal(err)
	}
	r := &v1alpha1.TerminationRun{
		ObjectMeta: metav1.ObjectMeta{Namespace: policy.Namespace, GenerateName: policy.Name + "-"},
		Spec:       v1alpha1.TerminationRunSpec{PolicyRef: v1alpha1.PolicyRef{Name: policy.Name}, Trigger: v1alpha1.Trigger{Source: v1alpha1.TriggerCLI, Reason: t.Name()}},
	}
	for _, p := range pods {
		r.Spec.Pods = append(r.Spec.Pods, v1alpha1.PodRef{Name: p.Name, UID: p.UID})
	}
	set(r)
	if err := c.Create(ctx, r); err != nil {
		t.Fatalf("create run: %v", err)
	}
	return r
}

func TestRunDrainsEveryPodInOrderWithinConcurrency(t *testing.T) {
	env := clustertest.New(t)
	c := startController(t)
	app := &drainingApp{polls: map[string]int{}}
	f := newFleet(t, env, "web", 10, app.handler)
	policy := createPolicy(t, c, env.Namespace, drainPolicy("drain-web", "web", 3))

	r := startRun(t, c, policy)
	got := waitComplete(t, c, env.Namespace, r.Name, 60*time.Second)
	if got.Status.Phase != v1alpha1.RunSucceeded || got.Status.PodsDone != 10 || got.Status.PodsTotal != 10 {
		t.Fatalf("run %s: phase %s, %d/%d done: %s", got.Name, got.Status.Phase, got.Status.PodsDone, got.Status.PodsTotal, got.Status.Message)
	}
	reqs := f.byPod()
	for _, p := range f.pods {
		rs := reqs[p.Name]
		if len(rs) < 4 || rs[0].path != "/drain" || rs[0].method != http.MethodPost {
			t.Errorf("pod %s: requests %v, want POST /drain first then GET /inflight polls", p.Name, rs)
			continue
		}
		for _, r := range rs[1:] {
			if r.path != "/inflight" {
				t.Errorf("pod %s: %s %s after the drain, want only /inflight polls", p.Name, r.method, r.path)
			}
		}
	}
	for _, p := range got.Status.Pods {
		if len(p.Steps) != 3 {
			t.Fatalf("pod %s has %d step records", p.Name, len(p.Steps))
		}
		for i, s := range p.Steps {
			if s.Phase != v1alpha1.StepSucceeded || s.Attempts != 1 || s.StartTime == nil || s.CompletionTime == nil {
				t.Errorf("pod %s step %s: %+v", p.Name, s.Name, s)
			}
			if i > 0 && s.StartTime.Before(p.Steps[i-1].CompletionTime) {
				t.Errorf("pod %s: step %s started before %s ended", p.Name, s.Name, p.Steps[i-1].Name)
			}
		}
	}
	if app.max > 3 || app.max < 2 {
		t.Errorf("at most %d pods were drained at once; want concurrency 3 used and respected", app.max)
	}
}

func TestFailingPodRetriesThenFailsNotifiesAndRetriesTheRun(t *testing.T) {
	env := clustertest.New(t)
	bodies := make(chan string, 10)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies <- string(b)
	}))
	defer hook.Close()
	// The operator allows the notify webhook's URL.
	c := startControllerWith(t, func(cfg *server.Config) { cfg.StepURLPrefixes = []string{hook.URL + "/"} })
	var drains atomic.Int32
	f := newFleet(t, env, "api", 3, func(pod string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// api-1 refuses its first three drains: two tries of attempt 1
			// and the first of attempt 2; the retry's second try succeeds.
			if pod == "api-1" && drains.Add(1) <= 3 {
				http.Error(w, "draining is broken", http.StatusInternalServerError)
				return
			}
			w.WriteHeader(http.StatusOK)
		})
	})
	policy := createPolicy(t, c, env.Namespace, &v1alpha1.TerminationPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "drain-api"},
		Spec: v1alpha1.TerminationPolicySpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "api"}},
			Steps: []v1alpha1.Step{{Name: "drain", StepPolicy: v1alpha1.StepPolicy{Retries: ptr.To[int32](1), Backoff: dur(50 * time.Millisecond)},
				HTTP: &v1alpha1.HTTPAction{Endpoint: v1alpha1.Endpoint{Port: 8080, Path: "/drain"}}}},
			ExitHandlers: []v1alpha1.ExitHandler{
				{Name: "tell-slack", When: v1alpha1.ExitFailed, Notify: &v1alpha1.NotifyAction{URL: hook.URL + "/",
					Body: `{"text": {{printf "run %s attempt %d %s: %s" .Run.Name .Attempt .Phase .Message | json}}}`}},
				{Name: "again", When: v1alpha1.ExitFailed, Retry: &v1alpha1.RetryAction{Scope: v1alpha1.RetryFailedPods, Limit: 2, Backoff: dur(200 * time.Millisecond)}},
			},
		},
	})
	r := startRun(t, c, policy)

	select {
	case body := <-bodies:
		var msg struct{ Text string }
		if err := json.Unmarshal([]byte(body), &msg); err != nil {
			t.Fatalf("notify body %q is not the templated JSON: %v", body, err)
		}
		want := fmt.Sprintf("run %s attempt 1 Failed: pod api-1: step drain:", r.Name)
		if !strings.HasPrefix(msg.Text, want) || !strings.Contains(msg.Text, "unexpected status 500") {
			t.Errorf("notify text %q, want it to start with %q and name the cause", msg.Text, want)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the Failed exit handler's notify never arrived")
	}

	got := waitComplete(t, c, env.Namespace, r.Name, 60*time.Second)
	if got.Status.Phase != v1alpha1.RunSucceeded || got.Status.Attempt != 2 {
		t.Fatalf("after the retry: phase %s attempt %d (%s), want Succeeded at attempt 2", got.Status.Phase, got.Status.Attempt, got.Status.Message)
	}
	reqs := f.byPod()
	if n := len(reqs["api-0"]); n != 1 {
		t.Errorf("api-0 drained %d times; a FailedPods retry must not repeat pods that succeeded", n)
	}
	if n := len(reqs["api-1"]); n != 4 {
		t.Errorf("api-1 got %d drain requests, want 4 (2 tries in each of 2 attempts)", n)
	}
	if len(got.Status.ExitHandlers) != 1 || got.Status.ExitHandlers[0].Attempt != 1 || got.Status.ExitHandlers[0].Phase != v1alpha1.StepSucceeded {
		t.Errorf("exit handler records: %+v", got.Status.ExitHandlers)
	}
}

func TestPodDeletedDuringRunIsRecordedAsGone(t *testing.T) {
	env := clustertest.New(t)
	c := startController(t)
	release := make(chan struct{})
	newFleet(t, env, "job", 2, func(pod string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if pod == "job-1" {
				<-release // hold the drain until the pod has been deleted
				http.Error(w, "gone", http.StatusServiceUnavailable)
				return
			}
			w.WriteHeader(http.StatusOK)
		})
	})
	policy := createPolicy(t, c, env.Namespace, &v1alpha1.TerminationPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "drain-job"},
		Spec: v1alpha1.TerminationPolicySpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "job"}},
			Steps: []v1alpha1.Step{{Name: "drain", StepPolicy: v1alpha1.StepPolicy{Retries: ptr.To[int32](5), Backoff: dur(100 * time.Millisecond)},
				HTTP: &v1alpha1.HTTPAction{Endpoint: v1alpha1.Endpoint{Port: 8080, Path: "/drain"}}}},
		},
	})
	r := startRun(t, c, policy)
	ctx := context.Background()
	if err := env.Client.CoreV1().Pods(env.Namespace).Delete(ctx, "job-1", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Fatal(err)
	}
	close(release)
	got := waitComplete(t, c, env.Namespace, r.Name, 30*time.Second)
	if got.Status.Phase != v1alpha1.RunSucceeded {
		t.Fatalf("phase %s: %s", got.Status.Phase, got.Status.Message)
	}
	for _, p := range got.Status.Pods {
		want := v1alpha1.PodSucceeded
		if p.Name == "job-1" {
			want = v1alpha1.PodGone
		}
		if p.Phase != want {
			t.Errorf("pod %s: %s, want %s", p.Name, p.Phase, want)
		}
	}
}

func TestExecAndLabelSteps(t *testing.T) {
	env := clustertest.New(t)
	c := startController(t)
	newFleet(t, env, "db", 1, func(string) http.Handler { return http.NotFoundHandler() })
	policy := createPolicy(t, c, env.Namespace, &v1alpha1.TerminationPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "flush-db"},
		Spec: v1alpha1.TerminationPolicySpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			Steps: []v1alpha1.Step{
				{Name: "unready", Label: &v1alpha1.MetadataAction{Set: map[string]string{"serving": "false"}}},
				{Name: "flush", Exec: &v1alpha1.ExecAction{Command: []string{"sh", "-c", "echo flushed $((40+2)) tables"}}},
				{Name: "note", Annotate: &v1alpha1.MetadataAction{Set: map[string]string{"lastcall.dev/flushed": "true"}}},
			},
		},
	})
	r := startRun(t, c, policy)
	got := waitComplete(t, c, env.Namespace, r.Name, 30*time.Second)
	if got.Status.Phase != v1alpha1.RunSucceeded {
		t.Fatalf("phase %s: %s", got.Status.Phase, got.Status.Message)
	}
	if msg := got.Status.Pods[0].Steps[1].Message; msg != "flushed 42 tables" {
		t.Errorf("exec output in status: %q", msg)
	}
	pod, err := env.Client.CoreV1().Pods(env.Namespace).Get(context.Background(), "db-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pod.Labels["serving"] != "false" || pod.Annotations["lastcall.dev/flushed"] != "true" {
		t.Errorf("labels %v annotations %v", pod.Labels, pod.Annotations)
	}
}

func TestRunDeadlineFailsUnfinishedPods(t *testing.T) {
	env := clustertest.New(t)
	c := startController(t)
	newFleet(t, env, "slow", 2, func(string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"inflight": 5}`) })
	})
	policy := createPolicy(t, c, env.Namespace, &v1alpha1.TerminationPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "never-drains"},
		Spec: v1alpha1.TerminationPolicySpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "slow"}},
			Deadline: dur(time.Second),
			Steps: []v1alpha1.Step{{Name: "wait", StepPolicy: v1alpha1.StepPolicy{Timeout: dur(time.Minute)},
				WaitDrained: &v1alpha1.WaitDrainedAction{Endpoint: v1alpha1.Endpoint{Port: 8080, Path: "/"}, Interval: dur(100 * time.Millisecond),
					JSONField: &v1alpha1.JSONFieldCondition{Path: "inflight", AtMost: ptr.To(0.0)}}}},
		},
	})
	r := startRun(t, c, policy)
	got := waitComplete(t, c, env.Namespace, r.Name, 30*time.Second)
	if got.Status.Phase != v1alpha1.RunFailed || got.Status.Reason != "DeadlineExceeded" || got.Status.PodsFailed != 2 {
		t.Fatalf("phase %s reason %s failed %d: %s", got.Status.Phase, got.Status.Reason, got.Status.PodsFailed, got.Status.Message)
	}
	if elapsed := got.Status.CompletionTime.Sub(got.Status.StartTime.Time); elapsed > 3*time.Second {
		t.Errorf("run took %s with a 1 s deadline", elapsed)
	}
}

func TestArgoRunnerMirrorsWorkflowPhase(t *testing.T) {
	env := clustertest.New(t)
	c := startController(t)
	newFleet(t, env, "argo", 2, func(string) http.Handler { return http.NotFoundHandler() })
	policy := createPolicy(t, c, env.Namespace, &v1alpha1.TerminationPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "via-argo"},
		Spec: v1alpha1.TerminationPolicySpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "argo"}},
			Runner:   v1alpha1.Runner{Type: v1alpha1.RunnerArgo, Argo: &v1alpha1.ArgoRunner{WorkflowTemplateRef: v1alpha1.WorkflowTemplateRef{Name: "save-my-data"}}},
		},
	})
	r := startRun(t, c, policy)
	wf := newWorkflowObject()
	clustertest.Eventually(t, 30*time.Second, func(ctx context.Context) (bool, error) {
		err := c.Get(ctx, client.ObjectKey{Namespace: env.Namespace, Name: r.Name + "-a1"}, wf)
		return err == nil, nil
	}, "the Workflow to be created")
	ref, _, _ := unstructuredString(wf, "spec", "workflowTemplateRef", "name")
	params := workflowParams(wf)
	if ref != "save-my-data" || params["run-name"] != r.Name || params["namespace"] != env.Namespace || !strings.Contains(params["pods"], `"name":"argo-0"`) {
		t.Fatalf("workflow spec: template %q params %v", ref, params)
	}
	if owner := metav1.GetControllerOf(wf); owner == nil || owner.Name != r.Name {
		t.Errorf("workflow is not owned by the run: %v", wf.GetOwnerReferences())
	}
	setWorkflowPhase(t, c, wf, "Running")
	clustertest.Eventually(t, 10*time.Second, func(ctx context.Context) (bool, error) {
		var got v1alpha1.TerminationRun
		if err := c.Get(ctx, client.ObjectKeyFromObject(r), &got); err != nil {
			return false, err
		}
		return got.Status.Workflow != nil && got.Status.Workflow.Phase == "Running", nil
	}, "the run to mirror Running")
	setWorkflowPhase(t, c, wf, "Succeeded")
	got := waitComplete(t, c, env.Namespace, r.Name, 30*time.Second)
	if got.Status.Phase != v1alpha1.RunSucceeded || got.Status.PodsDone != 2 {
		t.Fatalf("phase %s, %d done: %s", got.Status.Phase, got.Status.PodsDone, got.Status.Message)
	}

	// A Workflow deleted under a running run fails it, with the reason.
	r2 := startRun(t, c, policy)
	wf2 := newWorkflowObject()
	clustertest.Eventually(t, 30*time.Second, func(ctx context.Context) (bool, error) {
		return c.Get(ctx, client.ObjectKey{Namespace: env.Namespace, Name: r2.Name + "-a1"}, wf2) == nil, nil
	}, "the second Workflow to be created")
	if err := c.Delete(context.Background(), wf2); err != nil {
		t.Fatal(err)
	}
	got = waitComplete(t, c, env.Namespace, r2.Name, 30*time.Second)
	if got.Status.Phase != v1alpha1.RunFailed || got.Status.Workflow == nil || got.Status.Workflow.Phase != "Deleted" {
		t.Fatalf("run whose Workflow was deleted: phase %s, workflow %+v", got.Status.Phase, got.Status.Workflow)
	}
}

func TestInvalidPoliciesAreRefusedByTheAPIServer(t *testing.T) {
	env := clustertest.New(t)
	c, err := client.New(clustertest.Cluster().Config(), client.Options{Scheme: schemeForTests()})
	if err != nil {
		t.Fatal(err)
	}
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}}
	sleep := &v1alpha1.SleepAction{Duration: metav1.Duration{Duration: time.Second}}
	for _, tc := range []struct {
		name string
		spec v1alpha1.TerminationPolicySpec
		want string
	}{
		{"no selector", v1alpha1.TerminationPolicySpec{Steps: []v1alpha1.Step{{Name: "a", Sleep: sleep}}}, "set exactly one of selector or targetRef"},
		{"no steps", v1alpha1.TerminationPolicySpec{Selector: sel}, "the builtin runner needs at least one step"},
		{"two actions", v1alpha1.TerminationPolicySpec{Selector: sel, Steps: []v1alpha1.Step{{Name: "a", Sleep: sleep,
			Exec: &v1alpha1.ExecAction{Command: []string{"true"}}}}}, "a step sets exactly one of"},
		{"duplicate names", v1alpha1.TerminationPolicySpec{Selector: sel, Steps: []v1alpha1.Step{{Name: "a", Sleep: sleep}, {Name: "a", Sleep: sleep}}}, "step names must be unique"},
		{"http without target", v1alpha1.TerminationPolicySpec{Selector: sel, Steps: []v1alpha1.Step{{Name: "a", HTTP: &v1alpha1.HTTPAction{}}}}, "set url, or port"},
		{"bad step name", v1alpha1.TerminationPolicySpec{Selector: sel, Steps: []v1alpha1.Step{{Name: "Drain Now", Sleep: sleep}}}, "should match"},
		{"argo without template", v1alpha1.TerminationPolicySpec{Selector: sel, Runner: v1alpha1.Runner{Type: v1alpha1.RunnerArgo}}, "runner.type argo needs"},
		{"retry on success", v1alpha1.TerminationPolicySpec{Selector: sel, Steps: []v1alpha1.Step{{Name: "a", Sleep: sleep}},
			ExitHandlers: []v1alpha1.ExitHandler{{Name: "r", When: v1alpha1.ExitSucceeded, Retry: &v1alpha1.RetryAction{Limit: 1}}}}, "retry runs only when: Failed"},
		{"zero concurrency", v1alpha1.TerminationPolicySpec{Selector: sel, Concurrency: -1, Steps: []v1alpha1.Step{{Name: "a", Sleep: sleep}}}, "should be greater than or equal to 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &v1alpha1.TerminationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "bad", Namespace: env.Namespace}, Spec: tc.spec}
			err := c.Create(context.Background(), p)
			if err == nil {
				_ = c.Delete(context.Background(), p)
				t.Fatalf("the API server accepted the policy")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

// TestArgoRunsOnlyAsServiceAccountsTheNamespaceAllows: a policy may name
// the ServiceAccount its Workflows run as only if the namespace's owner
// annotated it lastcall.dev/workflow-runner=true; otherwise the run fails
// saying so and no Workflow is created.
func TestArgoRunsOnlyAsServiceAccountsTheNamespaceAllows(t *testing.T) {
	env := clustertest.New(t)
	c := startController(t)
	ctx := context.Background()
	newFleet(t, env, "job", 1, func(string) http.Handler { return http.NotFoundHandler() })
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "builder", Namespace: env.Namespace}}
	if err := c.Create(ctx, sa); err != nil {
		t.Fatal(err)
	}
	policy := createPolicy(t, c, env.Namespace, &v1alpha1.TerminationPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "as-builder"},
		Spec: v1alpha1.TerminationPolicySpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "job"}},
			Runner: v1alpha1.Runner{Type: v1alpha1.RunnerArgo, Argo: &v1alpha1.ArgoRunner{
				WorkflowTemplateRef: v1alpha1.WorkflowTemplateRef{Name: "save-my-data"}, ServiceAccountName: "builder"}},
		},
	})
	refused := waitComplete(t, c, env.Namespace, startRun(t, c, policy).Name, 30*time.Second)
	if refused.Status.Phase != v1alpha1.RunFailed || refused.Status.Workflow == nil || refused.Status.Workflow.Phase != "NotAllowed" ||
		!strings.Contains(refused.Status.Workflow.Message, run.AnnotationWorkflowRunner) {
		t.Fatalf("run as an unannotated ServiceAccount: %s %+v", refused.Status.Phase, refused.Status.Workflow)
	}
	wf := newWorkflowObject()
	if err := c.Get(ctx, client.ObjectKey{Namespace: env.Namespace, Name: refused.Name + "-a1"}, wf); !apierrors.IsNotFound(err) {
		t.Fatalf("a Workflow was created for the refused run: %v", err)
	}
	sa.Annotations = map[string]string{run.AnnotationWorkflowRunner: "true"}
	if err := c.Update(ctx, sa); err != nil {
		t.Fatal(err)
	}
	allowed := startRun(t, c, policy)
	clustertest.Eventually(t, 30*time.Second, func(ctx context.Context) (bool, error) {
		return c.Get(ctx, client.ObjectKey{Namespace: env.Namespace, Name: allowed.Name + "-a1"}, wf) == nil, nil
	}, "the Workflow of the allowed ServiceAccount")
	if got, _, _ := unstructuredString(wf, "spec", "serviceAccountName"); got != "builder" {
		t.Fatalf("workflow serviceAccountName %q, want builder", got)
	}
}
