//go:build integration

package watch_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"

	"github.com/lastcall-dev/lastcall/internal/devcluster"
	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
	"github.com/lastcall-dev/lastcall/internal/watch"
)

func TestMain(m *testing.M) {
	clustertest.Main(m, devcluster.Options{}, clustertest.InstallCRDs(
		"../../charts/lastcall/crds/lastcall.dev_terminationpolicies.yaml", "../../charts/lastcall/crds/lastcall.dev_terminationruns.yaml",
		"../../charts/lastcall/crds/lastcall.dev_gates.yaml"))
}

func runsClient(t *testing.T) client.Client {
	t.Helper()
	s := runtime.NewScheme()
	if err := scheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(clustertest.Cluster().Config(), client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type counters struct {
	reg prometheus.Gatherer
}

func (c counters) value(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := c.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// startWatcher runs a Watcher against the real API server, with a pod
// informer of its own and Events recorded through the API.
func startWatcher(t *testing.T, cs kubernetes.Interface, runs client.Client) counters {
	t.Helper()
	reg := prometheus.NewRegistry()
	bc := record.NewBroadcaster()
	bc.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: cs.CoreV1().Events("")})
	t.Cleanup(bc.Shutdown)
	w, err := watch.New(cs, runs, bc.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "lastcall-watch"}), reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	factory := informers.NewSharedInformerFactory(cs, 0)
	pods := factory.Core().V1().Pods().Informer()
	done := make(chan error, 1)
	go func() { done <- w.Start(ctx, pods) }()
	factory.Start(ctx.Done())
	t.Cleanup(func() {
		cancel()
		factory.Shutdown()
		if err := <-done; err != nil {
			t.Errorf("watcher: %v", err)
		}
	})
	factory.WaitForCacheSync(ctx.Done())
	clustertest.Eventually(t, 20*time.Second, func(context.Context) (bool, error) { return w.Live(), nil }, "the watcher to be live")
	return counters{reg}
}

func kubeletEvent(ns, pod, reason string, count int32) *corev1.Event {
	return &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: pod + "."},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: pod, FieldPath: "spec.containers{app}"},
		Reason:         reason,
		Message:        "PreStopHook failed",
		Type:           corev1.EventTypeWarning,
		Source:         corev1.EventSource{Component: "kubelet", Host: devcluster.NodeName(0)},
		FirstTimestamp: metav1.Now(),
		LastTimestamp:  metav1.Now(),
		Count:          count,
	}
}

func TestHookFailuresAreCounted(t *testing.T) {
	env := clustertest.New(t)
	ctx := context.Background()
	events := env.Client.CoreV1().Events(env.Namespace)
	// A failure from before the watcher started (another leader's time) is
	// not counted again: a leader change shows no burst.
	if _, err := events.Create(ctx, kubeletEvent(env.Namespace, "old-0", watch.ReasonFailedPreStopHook, 7), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c := startWatcher(t, env.Client, nil)
	pre, err := events.Create(ctx, kubeletEvent(env.Namespace, "web-0", watch.ReasonFailedPreStopHook, 1), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range []*corev1.Event{
		kubeletEvent(env.Namespace, "web-1", watch.ReasonFailedPostStartHook, 1),
		kubeletEvent(env.Namespace, "web-2", "BackOff", 4), // not a hook failure
	} {
		if _, err := events.Create(ctx, ev, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// The kubelet counts repeats on the same Event.
	pre.Count = 3
	if _, err := events.Update(ctx, pre, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	preStop := map[string]string{"namespace": env.Namespace, "hook": "preStop"}
	postStart := map[string]string{"namespace": env.Namespace, "hook": "postStart"}
	clustertest.Eventually(t, 20*time.Second, func(context.Context) (bool, error) {
		return c.value(t, "lastcall_watch_hook_failures_total", preStop) == 3 &&
			c.value(t, "lastcall_watch_hook_failures_total", postStart) == 1, nil
	}, "3 preStop and 1 postStart failures counted")
	// A sentinel failure after the others: the watcher handles Events in
	// order, so once it is counted anything counted twice would show.
	if _, err := events.Create(ctx, kubeletEvent(env.Namespace, "sentinel", watch.ReasonFailedPostStartHook, 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 20*time.Second, func(context.Context) (bool, error) {
		return c.value(t, "lastcall_watch_hook_failures_total", postStart) == 2, nil
	}, "the sentinel failure counted")
	if got := c.value(t, "lastcall_watch_hook_failures_total", preStop); got != 3 {
		t.Errorf("preStop failures %v, want 3 (one Event whose count went 1 → 3)", got)
	}
}

func TestContainersKilledAtTheDeadlineGetAnEvent(t *testing.T) {
	env := clustertest.New(t)
	c := startWatcher(t, env.Client, nil)
	ctx := context.Background()
	pods := env.Client.CoreV1().Pods(env.Namespace)
	// Bound to a node that kwok does not manage, and held by a finalizer,
	// so that the test plays the kubelet's part in its status.
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "db-0", Finalizers: []string{"lastcall.dev/test"}},
		Spec: corev1.PodSpec{
			NodeName:                      "unmanaged-node",
			TerminationGracePeriodSeconds: ptr.To[int64](30),
			Containers: []corev1.Container{
				{Name: "db", Image: "db"}, {Name: "crashed", Image: "c"}, {Name: "oom", Image: "o"}, {Name: "clean", Image: "c"},
			},
		},
	}
	pod, err := pods.Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = pods.Patch(context.Background(), "db-0", types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{})
	})
	if err := pods.Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](20)}); err != nil {
		t.Fatal(err)
	}
	pod, err = pods.Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil || pod.DeletionTimestamp == nil {
		t.Fatalf("pod after delete: %v %v, want it terminating", pod, err)
	}
	deadline := *pod.DeletionTimestamp
	early := metav1.NewTime(deadline.Add(-15 * time.Second))
	term := func(code int32, reason string, at metav1.Time) corev1.ContainerState {
		return corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Reason: reason, FinishedAt: at}}
	}
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{
		{Name: "db", State: term(137, "Error", deadline)},      // SIGKILLed at the deadline
		{Name: "crashed", State: term(137, "Error", early)},    // killed long before it
		{Name: "oom", State: term(137, "OOMKilled", deadline)}, // the OOM killer, not the deadline
		{Name: "clean", State: term(0, "Completed", deadline)}, // shut down in time
	}
	for range 2 { // a second, identical status update must not report twice
		if pod, err = pods.UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var got []corev1.Event
	clustertest.Eventually(t, 20*time.Second, func(ctx context.Context) (bool, error) {
		list, err := env.Client.CoreV1().Events(env.Namespace).List(ctx, metav1.ListOptions{FieldSelector: "reason=" + watch.ReasonKilledAtDeadline})
		if err != nil {
			return false, err
		}
		got = list.Items
		return len(got) > 0, nil
	}, "a KilledAtDeadline Event")
	time.Sleep(time.Second)
	ev := got[0]
	if len(got) != 1 || ev.Count != 1 || ev.InvolvedObject.Name != "db-0" || ev.Type != corev1.EventTypeWarning ||
		ev.Message != "Container db was SIGKILLed at the end of its 20 s grace period: its preStop hook and shutdown did not finish in time (see lastcall lint)" {
		t.Errorf("Events %+v: want one Warning on db-0 about container db", got)
	}
	if n := c.value(t, "lastcall_watch_killed_at_deadline_total", map[string]string{"namespace": env.Namespace}); n != 1 {
		t.Errorf("killed-at-deadline counter %v, want 1 (only db)", n)
	}
}

// terminatingPod creates a pod bound to a node kwok does not manage, held by
// a finalizer, and deletes it, so that it stays terminating for the test.
func terminatingPod(t *testing.T, cs kubernetes.Interface, ns, name string, lbl map[string]string, del bool) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	pods := cs.CoreV1().Pods(ns)
	pod, err := pods.Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbl, Finalizers: []string{"lastcall.dev/test"}},
		Spec:       corev1.PodSpec{NodeName: "unmanaged-node", Containers: []corev1.Container{{Name: "app", Image: "app"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = pods.Patch(context.Background(), name, types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{})
	})
	if del {
		if err := pods.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return pod
}

func TestFailedPreStopStartsTheRunsOfPoliciesThatAskForIt(t *testing.T) {
	env := clustertest.New(t)
	rc := runsClient(t)
	c := startWatcher(t, env.Client, rc)
	ctx := context.Background()
	policy := func(name, app string, optIn bool) *v1alpha1.TerminationPolicy {
		return &v1alpha1.TerminationPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: env.Namespace, Name: name},
			Spec: v1alpha1.TerminationPolicySpec{
				Selector:           &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}},
				Steps:              []v1alpha1.Step{{Name: "drain", Sleep: &v1alpha1.SleepAction{Duration: metav1.Duration{Duration: time.Second}}}},
				RunOnFailedPreStop: optIn,
			},
		}
	}
	for _, p := range []*v1alpha1.TerminationPolicy{policy("save-db", "db", true), policy("audit-db", "db", false), policy("drain-web", "web", true)} {
		if err := rc.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	db := terminatingPod(t, env.Client, env.Namespace, "db-0", map[string]string{"app": "db"}, true)
	web := terminatingPod(t, env.Client, env.Namespace, "web-0", map[string]string{"app": "web"}, false) // running, not terminating

	events := env.Client.CoreV1().Events(env.Namespace)
	dbEvent := kubeletEvent(env.Namespace, "db-0", watch.ReasonFailedPreStopHook, 1)
	dbEvent.InvolvedObject.UID = db.UID
	dbEvent, err := events.Create(ctx, dbEvent, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	webEvent := kubeletEvent(env.Namespace, "web-0", watch.ReasonFailedPreStopHook, 1)
	webEvent.InvolvedObject.UID = web.UID
	if _, err := events.Create(ctx, webEvent, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var runs v1alpha1.TerminationRunList
	clustertest.Eventually(t, 20*time.Second, func(ctx context.Context) (bool, error) {
		err := rc.List(ctx, &runs, client.InNamespace(env.Namespace))
		return len(runs.Items) > 0, err
	}, "a termination run")
	dbEvent.Count = 2 // the kubelet retried and failed again
	if _, err := events.Update(ctx, dbEvent, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 20*time.Second, func(context.Context) (bool, error) {
		return c.value(t, "lastcall_watch_hook_failures_total", map[string]string{"namespace": env.Namespace, "hook": "preStop"}) == 3, nil
	}, "all three failures counted")
	time.Sleep(time.Second)
	if err := rc.List(ctx, &runs, client.InNamespace(env.Namespace)); err != nil {
		t.Fatal(err)
	}
	if len(runs.Items) != 1 {
		t.Fatalf("%d runs, want 1 (save-db for db-0 only): %+v", len(runs.Items), runs.Items)
	}
	r := runs.Items[0]
	if r.Spec.PolicyRef.Name != "save-db" || len(r.Spec.Pods) != 1 || r.Spec.Pods[0].UID != db.UID ||
		r.Spec.Trigger.Source != v1alpha1.TriggerWatcher || r.Spec.Trigger.Node != "unmanaged-node" {
		t.Errorf("run %s: policy %s pods %+v trigger %+v; want save-db for db-0, started by the watcher", r.Name, r.Spec.PolicyRef.Name, r.Spec.Pods, r.Spec.Trigger)
	}
	if n := c.value(t, "lastcall_watch_runs_started_total", map[string]string{"namespace": env.Namespace}); n != 1 {
		t.Errorf("runs started %v, want 1", n)
	}
	clustertest.Eventually(t, 20*time.Second, func(ctx context.Context) (bool, error) {
		list, err := events.List(ctx, metav1.ListOptions{FieldSelector: "reason=" + watch.ReasonRunStarted + ",involvedObject.name=db-0"})
		return err == nil && len(list.Items) == 1, err
	}, "a TerminationRunStarted Event on db-0")
}
