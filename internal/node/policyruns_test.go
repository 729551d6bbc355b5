package node

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
	"github.com/lastcall-dev/lastcall/internal/run"
)

func labelPolicy(ns, name, app string) *v1alpha1.TerminationPolicy {
	return &v1alpha1.TerminationPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.TerminationPolicySpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}}}
}

func appPod(ns, name, app string) corev1.Pod {
	return corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name), Labels: map[string]string{"app": app}}}
}

// policyFixture is a fake API with policies in namespaces a and b, and a
// group of pods in a and c.
func policyFixture(t *testing.T) (client.WithWatch, RunRequest) {
	t.Helper()
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "api"},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "api"}}}}
	byTarget := &v1alpha1.TerminationPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "by-target"},
		Spec: v1alpha1.TerminationPolicySpec{TargetRef: &v1alpha1.TargetRef{Kind: "Deployment", Name: "api"}}}
	gone := &v1alpha1.TerminationPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "workload-gone"},
		Spec: v1alpha1.TerminationPolicySpec{TargetRef: &v1alpha1.TargetRef{Kind: "StatefulSet", Name: "db"}}}
	c := fake.NewClientBuilder().WithScheme(run.Scheme()).WithObjects(dep, byTarget, gone,
		labelPolicy("a", "by-label", "web"), labelPolicy("a", "nothing", "none"), labelPolicy("b", "other-ns", "web")).Build()
	req := RunRequest{
		Shutdown: ShutdownID{Node: "node-a", BootID: "boot-1", Since: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)},
		Group:    Group{Priority: 100, Budget: 10 * time.Second},
		Pods:     []corev1.Pod{appPod("a", "web-1", "web"), appPod("a", "web-2", "web"), appPod("a", "api-1", "api"), appPod("a", "free", "free"), appPod("c", "web-3", "web")},
		Deadline: time.Now().Add(time.Hour),
	}
	return c, req
}

func listRuns(t *testing.T, c client.Client) []v1alpha1.TerminationRun {
	t.Helper()
	var list v1alpha1.TerminationRunList
	if err := c.List(context.Background(), &list); err != nil {
		t.Fatal(err)
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Spec.PolicyRef.Name < list.Items[j].Spec.PolicyRef.Name })
	return list.Items
}

func TestRunsArePlannedPerPolicyForTheGroupsPodsAndCreatedOnce(t *testing.T) {
	c, req := policyFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := NewPolicyRuns(c, quiet(PolicyRunsOptions{})).StartRuns(ctx, req); err != nil {
		t.Fatal(err)
	}
	runs := listRuns(t, c)
	got := map[string][]string{}
	for _, r := range runs {
		for _, p := range r.Spec.Pods {
			got[r.Spec.PolicyRef.Name] = append(got[r.Spec.PolicyRef.Name], p.Name)
		}
		if r.Spec.Trigger.Source != v1alpha1.TriggerNodeShutdown || r.Spec.Trigger.Node != "node-a" || r.Labels[LabelShutdown] != groupKey(req) {
			t.Errorf("run %s: trigger %+v labels %v, want NodeShutdown on node-a and the group's label", r.Name, r.Spec.Trigger, r.Labels)
		}
		if !strings.HasPrefix(r.Name, r.Spec.PolicyRef.Name+"-shutdown-") {
			t.Errorf("run name %s, want <policy>-shutdown-<hash>", r.Name)
		}
	}
	if len(runs) != 2 || strings.Join(got["by-label"], ",") != "web-1,web-2" || strings.Join(got["by-target"], ",") != "api-1" {
		t.Errorf("runs cover %v, want by-label: web-1,web-2 and by-target: api-1 (nothing for other namespaces, unmatched or unresolvable policies)", got)
	}

	// An agent restarted during the same shutdown asks again: same names,
	// no second run; a pod that appeared since is not covered by the
	// existing run, so it does not wait for it.
	restarted := req
	restarted.Pods = append(slices.Clone(req.Pods), appPod("a", "web-new", "web"))
	w, err := NewPolicyRuns(c, quiet(PolicyRunsOptions{})).StartRuns(ctx, restarted)
	if err != nil || w == nil {
		t.Fatalf("second StartRuns: %v, %v", w, err)
	}
	again := listRuns(t, c)
	if len(again) != 2 || again[0].Name != runs[0].Name || again[1].Name != runs[1].Name {
		t.Errorf("after a restart: %d runs, want the same 2", len(again))
	}
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Second)
	defer wcancel()
	if err := w.Wait(wctx, &restarted.Pods[len(restarted.Pods)-1]); err != nil {
		t.Errorf("a pod the existing run does not cover waits for it: %v", err)
	}

	// The next group, or a later shutdown, gets runs of its own.
	next := req
	next.Group = Group{Priority: 1000, Budget: time.Second}
	next.Pods = req.Pods[:1]
	if _, err := NewPolicyRuns(c, quiet(PolicyRunsOptions{})).StartRuns(ctx, next); err != nil {
		t.Fatal(err)
	}
	if n := len(listRuns(t, c)); n != 3 {
		t.Errorf("%d runs after the next group, want 3", n)
	}
}

func TestNoRunsAndNoWaiterWhenNoPolicyCoversTheGroup(t *testing.T) {
	c, req := policyFixture(t)
	req.Pods = []corev1.Pod{appPod("a", "free", "free")}
	w, err := NewPolicyRuns(c, quiet(PolicyRunsOptions{})).StartRuns(context.Background(), req)
	if err != nil || w != nil {
		t.Fatalf("got waiter %v, err %v; want neither", w, err)
	}
	if n := len(listRuns(t, c)); n != 0 {
		t.Errorf("%d runs created, want none", n)
	}
}

func TestWaitEndsWhenTheRunIsDoneWithThePodOrEnds(t *testing.T) {
	c, req := policyFixture(t)
	rec := record.NewFakeRecorder(10)
	m := NewMetrics(nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := NewPolicyRuns(c, quiet(PolicyRunsOptions{Recorder: rec, Metrics: m})).StartRuns(ctx, req)
	if err != nil || w == nil {
		t.Fatalf("StartRuns: %v, %v", w, err)
	}
	waitFor := func(pod *corev1.Pod) <-chan error {
		ch := make(chan error, 1)
		go func() { ch <- w.Wait(ctx, pod) }()
		return ch
	}
	pods := req.Pods
	if err := <-waitFor(&pods[3]); err != nil {
		t.Fatalf("pod no run covers: %v", err)
	}
	web1, web2 := waitFor(&pods[0]), waitFor(&pods[1])
	var run v1alpha1.TerminationRun
	for _, r := range listRuns(t, c) {
		if r.Spec.PolicyRef.Name == "by-label" {
			run = r
		}
	}
	if err := updateUntil(t, c, &run, func(r *v1alpha1.TerminationRun) {
		r.Status.Phase = v1alpha1.RunRunning
		r.Status.Pods = []v1alpha1.PodStatus{{Name: "web-1", UID: "uid-web-1", Phase: v1alpha1.PodSucceeded}, {Name: "web-2", UID: "uid-web-2", Phase: v1alpha1.PodFailed}}
	}, web1, "web-1 still waits although its run succeeded for it"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-web2:
		t.Fatal("web-2 stopped waiting on a Failed pod before the run ended (a retry may come)")
	case <-time.After(100 * time.Millisecond):
	}
	if err := updateUntil(t, c, &run, func(r *v1alpha1.TerminationRun) {
		r.Status.Phase = v1alpha1.RunFailed
		r.Status.Reason = "PodsFailed"
		meta.SetStatusCondition(&r.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionComplete, Status: metav1.ConditionTrue, Reason: "Failed"})
	}, web2, "web-2 still waits after its run ended Failed"); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(m.runs.WithLabelValues(runFailed)); got != 1 {
		t.Errorf("runs{failed} %v, want 1", got)
	}
	var events []string
	for len(rec.Events) > 0 {
		events = append(events, <-rec.Events)
	}
	if all := strings.Join(events, "\n"); !strings.Contains(all, ReasonRunFailed+" Termination run for the shutdown of node node-a ended Failed") {
		t.Errorf("events:\n%s\nwant %s for the failed run", all, ReasonRunFailed)
	}
}

// quiet is PolicyRunsOptions with a discarded log.
func quiet(o PolicyRunsOptions) PolicyRunsOptions {
	o.Logger = slog.New(slog.DiscardHandler)
	return o
}

// updateUntil writes change to run until done delivers, within 5 s. The
// fake client's watch does not replay what happened between the waiter's
// list and its watch (the API server's does, from the list's
// resourceVersion), so a write can fall in that gap: writing again (with
// a new annotation, so that it is a change) reaches the watch once it is
// open.
func updateUntil(t *testing.T, c client.Client, run *v1alpha1.TerminationRun, change func(*v1alpha1.TerminationRun), done <-chan error, why string) error {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for i := 0; ; i++ {
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(run), run); err != nil {
			return err
		}
		change(run)
		if run.Annotations == nil {
			run.Annotations = map[string]string{}
		}
		run.Annotations["test/write"] = strconv.Itoa(i)
		if err := c.Update(context.Background(), run); err != nil {
			return err
		}
		select {
		case err := <-done:
			return err
		case <-deadline:
			return errors.New(why)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
