//go:build integration

package node

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
	"github.com/lastcall-dev/lastcall/internal/run"
	"github.com/lastcall-dev/lastcall/internal/server"
)

// startController runs `lastcall server` (the run controller) in-process,
// as an admin, until the test ends; it returns an admin client for
// lastcall's kinds.
func startController(t *testing.T) client.Client {
	t.Helper()
	cfg := server.Defaults
	cfg.HTTPAddr, cfg.MetricsAddr, cfg.HealthAddr, cfg.LeaderElect = "127.0.0.1:0", "127.0.0.1:0", "0", false
	cfg.State.URL = "mem://"
	srv, err := server.New(clustertest.Cluster().Config(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	return adminClient(t)
}

func adminClient(t *testing.T) client.Client {
	t.Helper()
	c, err := client.New(clustertest.Cluster().Config(), client.Options{Scheme: run.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// drainCalls records the /drain requests the test's pods receive.
type drainCalls struct {
	mu    sync.Mutex
	first map[string]time.Time // by pod name
	count map[string]int
}

func (d *drainCalls) get(pod string) (time.Time, int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.first[pod], d.count[pod]
}

// serveDrains serves POST /drain on port 8080 of each named pod's IP (a
// loopback address of the cluster's pod CIDR), answering status, and
// records every call.
func serveDrains(t *testing.T, cs kubernetes.Interface, ns string, pods []string, status int) *drainCalls {
	t.Helper()
	d := &drainCalls{first: map[string]time.Time{}, count: map[string]int{}}
	for _, name := range pods {
		p, err := cs.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p.Status.PodIP == "" {
			t.Fatalf("pod %s has no IP", name)
		}
		l, err := net.Listen("tcp", net.JoinHostPort(p.Status.PodIP, "8080"))
		if err != nil {
			t.Fatal(err)
		}
		hs := &http.Server{ReadHeaderTimeout: time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && r.URL.Path == "/drain" {
				d.mu.Lock()
				if _, seen := d.first[name]; !seen {
					d.first[name] = time.Now()
				}
				d.count[name]++
				d.mu.Unlock()
			}
			w.WriteHeader(status)
		})}
		go func() { _ = hs.Serve(l) }()
		t.Cleanup(func() { _ = hs.Close() })
	}
	return d
}

// drainPolicy is a policy with one http step, POST :8080/drain, no retries.
func drainPolicy(ns, name string, sel *metav1.LabelSelector, target *v1alpha1.TargetRef, extra ...v1alpha1.Step) *v1alpha1.TerminationPolicy {
	steps := append([]v1alpha1.Step{{
		Name: "drain",
		HTTP: &v1alpha1.HTTPAction{Endpoint: v1alpha1.Endpoint{Port: 8080, Path: "/drain"}, Method: http.MethodPost},
	}}, extra...)
	return &v1alpha1.TerminationPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.TerminationPolicySpec{
			Selector: sel, TargetRef: target, Steps: steps, Concurrency: 100,
			StepDefaults: v1alpha1.StepPolicy{Retries: ptr.To[int32](0), Timeout: &metav1.Duration{Duration: 5 * time.Second}},
		},
	}
}

// emptyDeployment is a workload for a targetRef: no replicas, its selector
// app=app matches the test's bare pods.
func emptyDeployment(ns, name, app string) *appsv1.Deployment {
	labels := map[string]string{"app": app}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](0),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.invalid/app"}}},
			},
		},
	}
}

// shutdownRuns lists the runs node shutdowns started in ns.
func shutdownRuns(t *testing.T, c client.Client, ns string) []v1alpha1.TerminationRun {
	t.Helper()
	var list v1alpha1.TerminationRunList
	if err := c.List(context.Background(), &list, client.InNamespace(ns), client.HasLabels{LabelShutdown}); err != nil {
		t.Fatal(err)
	}
	return list.Items
}
