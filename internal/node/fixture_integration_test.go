//go:build integration

package node

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/lastcall-dev/lastcall/internal/devcluster"
	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
	"github.com/lastcall-dev/lastcall/internal/node/logind"
	"github.com/lastcall-dev/lastcall/internal/node/logind/logindtest"
)

const kwokNode = "kwok-node-0"

// fastClient is a clientset with the agent's client settings (ClientConfig),
// as `lastcall node-agent run` makes it.
func fastClient(t *testing.T, env *clustertest.Env) kubernetes.Interface {
	t.Helper()
	cs, err := kubernetes.NewForConfig(ClientConfig(env.Config))
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// classes creates three PriorityClasses for the test and returns their names
// by value; they are deleted when the test ends.
func classes(t *testing.T, cs kubernetes.Interface, suffix string, values ...int32) map[int32]string {
	t.Helper()
	out := map[int32]string{}
	for _, v := range values {
		pc := &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("lc-%d-%s", v, suffix)}, Value: v}
		if _, err := cs.SchedulingV1().PriorityClasses().Create(context.Background(), pc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		name := pc.Name
		t.Cleanup(func() {
			_ = cs.SchedulingV1().PriorityClasses().Delete(context.Background(), name, metav1.DeleteOptions{})
		})
		out[v] = name
	}
	return out
}

// podSpec is one test pod on the kwok node.
type podSpec struct {
	name      string
	class     string
	priority  int32
	grace     int64  // terminationGracePeriodSeconds
	exitAfter string // how soon after SIGTERM it goes; "" uses its whole grace
	app       string // label app=, for PDBs
}

func (s podSpec) pod(ns string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: s.name, Namespace: ns, Labels: map[string]string{"app": s.app}},
		Spec: corev1.PodSpec{
			NodeName:                      kwokNode,
			PriorityClassName:             s.class,
			TerminationGracePeriodSeconds: ptr.To(s.grace),
			Containers:                    []corev1.Container{{Name: "app", Image: "registry.invalid/app"}},
		},
	}
	if s.exitAfter != "" {
		p.Annotations = map[string]string{devcluster.AnnotationExitAfter: s.exitAfter}
	}
	return p
}

// createPods creates the pods in parallel and waits until all run.
func createPods(t *testing.T, cs kubernetes.Interface, ns string, specs []podSpec) {
	t.Helper()
	var g errgroup.Group
	g.SetLimit(16)
	for _, s := range specs {
		g.Go(func() error {
			_, err := cs.CoreV1().Pods(ns).Create(context.Background(), s.pod(ns), metav1.CreateOptions{})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("create pods: %v", err)
	}
	clustertest.Eventually(t, 90*time.Second, func(ctx context.Context) (bool, error) {
		list, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		running := 0
		for _, p := range list.Items {
			if p.Status.Phase == corev1.PodRunning {
				running++
			}
		}
		return running >= len(specs), nil
	}, "%d pods to run", len(specs))
}

// createPDB protects app=name with minAvailable and waits until the
// disruption controller has observed its pods.
func createPDB(t *testing.T, cs kubernetes.Interface, ns, app string, pods, minAvailable int32) {
	t.Helper()
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: app},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable: ptr.To(intstr.FromInt32(minAvailable)),
			Selector:     &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}},
		},
	}
	if _, err := cs.PolicyV1().PodDisruptionBudgets(ns).Create(context.Background(), pdb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPDB(t, cs, ns, app, pods, pods-minAvailable)
}

func waitPDB(t *testing.T, cs kubernetes.Interface, ns, name string, healthy, allowed int32) {
	t.Helper()
	clustertest.Eventually(t, 60*time.Second, func(ctx context.Context) (bool, error) {
		p, err := cs.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return p.Status.ObservedGeneration == p.Generation && p.Status.CurrentHealthy == healthy && p.Status.DisruptionsAllowed == allowed, nil
	}, "PDB %s to see %d healthy pods and allow %d disruptions", name, healthy, allowed)
}

// daemonSet runs one DaemonSet pod on the kwok node.
func daemonSet(t *testing.T, cs kubernetes.Interface, ns string) {
	t.Helper()
	labels := map[string]string{"app": "agent-like"}
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "agent-like"},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					NodeSelector: map[string]string{corev1.LabelHostname: kwokNode},
					Containers:   []corev1.Container{{Name: "a", Image: "registry.invalid/agent"}},
				},
			},
		},
	}
	if _, err := cs.AppsV1().DaemonSets(ns).Create(context.Background(), ds, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 60*time.Second, func(ctx context.Context) (bool, error) {
		list, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=agent-like"})
		if err != nil {
			return false, err
		}
		return len(list.Items) == 1 && list.Items[0].Status.Phase == corev1.PodRunning, nil
	}, "the DaemonSet's pod to run")
}

// timeline records, from a watch, when each pod's deletion was first seen,
// with what grace, and when the pod was gone.
type timeline struct {
	mu    sync.Mutex
	del   map[string]time.Time
	grace map[string]int64
	gone  map[string]time.Time
}

func watchTimeline(t *testing.T, cs kubernetes.Interface, ns string) *timeline {
	t.Helper()
	list, err := cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := cs.CoreV1().Pods(ns).Watch(context.Background(), metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	tl := &timeline{del: map[string]time.Time{}, grace: map[string]int64{}, gone: map[string]time.Time{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			now := time.Now()
			tl.mu.Lock()
			if _, seen := tl.del[p.Name]; !seen && p.DeletionTimestamp != nil {
				tl.del[p.Name] = now
				if p.DeletionGracePeriodSeconds != nil {
					tl.grace[p.Name] = *p.DeletionGracePeriodSeconds
				}
			}
			if ev.Type == watch.Deleted {
				tl.gone[p.Name] = now
			}
			tl.mu.Unlock()
		}
	}()
	t.Cleanup(func() { w.Stop(); <-done })
	return tl
}

func (tl *timeline) get(name string) (del time.Time, grace int64, gone time.Time, deleted bool) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	del, deleted = tl.del[name]
	return del, tl.grace[name], tl.gone[name], deleted
}

func (tl *timeline) goneCount() int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return len(tl.gone)
}

// agentRun is a node agent on the real control plane and a logindtest bus.
type agentRun struct {
	client  *logind.Client
	agent   *Agent
	metrics *Metrics
	reg     *prometheus.Registry
	logs    *syncBuffer
	stop    func()
}

// startAgent runs an agent for the kwok node, as `lastcall node-agent run`
// does (termination runs on, through the admin's config), until stop or the
// test's end, and waits until it holds the delay lock and watches the
// node's pods.
func startAgent(t *testing.T, svc *logindtest.Service, cs kubernetes.Interface, cfg Config) *agentRun {
	t.Helper()
	return startAgentAs(t, svc, cs, clustertest.Cluster().Config(), cfg)
}

// startAgentAs is startAgent with runs started through restCfg (nil: no
// RunStarter).
func startAgentAs(t *testing.T, svc *logindtest.Service, cs kubernetes.Interface, restCfg *rest.Config, cfg Config) *agentRun {
	t.Helper()
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	lc, err := logind.Connect(context.Background(), logind.Options{
		Address: svc.Address, DropInPath: filepath.Join(svc.DropInDir(), "99-lastcall.conf"), Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	rec, stopEvents := NewRecorder(cs, kwokNode)
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	var runs RunStarter
	if restCfg != nil {
		rc, err := NewRunsClient(ClientConfig(restCfg))
		if err != nil {
			t.Fatal(err)
		}
		runs = NewPolicyRuns(rc, PolicyRunsOptions{Recorder: rec, Metrics: m, Logger: log})
	}
	cfg.NodeName = kwokNode
	a, err := NewAgent(cfg, cs, lc, Options{Runs: runs, Recorder: rec, Metrics: m, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return lc.Run(gctx) })
	g.Go(func() error { return a.Run(gctx) })
	var once sync.Once
	r := &agentRun{client: lc, agent: a, metrics: m, reg: reg, logs: logs}
	r.stop = func() {
		once.Do(func() {
			cancel()
			if err := g.Wait(); err != nil {
				t.Errorf("agent: %v", err)
			}
			lc.Close()
			stopEvents()
		})
	}
	t.Cleanup(func() {
		r.stop()
		if t.Failed() {
			t.Logf("agent log:\n%s", logs.String())
		}
	})
	clustertest.Eventually(t, 30*time.Second, func(context.Context) (bool, error) {
		return lc.Held() && logs.contains("logind inhibit delay"), nil
	}, "the agent to hold the delay lock and be ready")
	return r
}

// cleanNode undoes lastcall's cordon when the test ends, whatever happened.
func cleanNode(t *testing.T, cs kubernetes.Interface) {
	t.Helper()
	undo := func() {
		if _, err := (nodes{client: cs, name: kwokNode}).uncordon(context.Background(), always); err != nil {
			t.Errorf("clean node: %v", err)
		}
	}
	undo()
	t.Cleanup(undo)
}

// nodeEvents lists the Events about the kwok node from the agent.
func nodeEvents(t *testing.T, cs kubernetes.Interface) []corev1.Event {
	t.Helper()
	list, err := cs.CoreV1().Events(metav1.NamespaceDefault).List(context.Background(), metav1.ListOptions{
		FieldSelector: "involvedObject.kind=Node,involvedObject.name=" + kwokNode + ",source=" + EventComponent,
	})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	return list.Items
}

// podEvents counts the agent's Events in ns by reason.
func podEvents(t *testing.T, cs kubernetes.Interface, ns string) map[string]int {
	t.Helper()
	list, err := cs.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{FieldSelector: "source=" + EventComponent})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, e := range list.Items {
		out[e.Reason] += int(max(e.Count, 1))
	}
	return out
}
