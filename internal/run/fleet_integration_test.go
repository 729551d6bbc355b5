//go:build integration

package run_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
	"github.com/lastcall-dev/lastcall/internal/devcluster"
	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
	"github.com/lastcall-dev/lastcall/internal/run"
	"github.com/lastcall-dev/lastcall/internal/server"
)

func TestMain(m *testing.M) {
	clustertest.Main(m, devcluster.Options{Nodes: 2},
		clustertest.InstallCRDs("../../charts/lastcall/crds/lastcall.dev_terminationpolicies.yaml",
			"../../charts/lastcall/crds/lastcall.dev_terminationruns.yaml", "../../charts/lastcall/crds/lastcall.dev_gates.yaml", "testdata/argo-workflow-crd.yaml"))
}

// startController runs the server's manager in-process for the test.
func startController(t testing.TB) client.Client {
	t.Helper()
	return startControllerWith(t, func(*server.Config) {})
}

// startControllerWith is startController with the server's configuration
// changed by set first.
func startControllerWith(t testing.TB, set func(*server.Config)) client.Client {
	t.Helper()
	cfg := server.Defaults
	cfg.HTTPAddr, cfg.MetricsAddr, cfg.HealthAddr, cfg.LeaderElect = "127.0.0.1:0", "127.0.0.1:0", "0", false
	cfg.State.URL = "mem://"
	set(&cfg)
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
	c, err := client.New(clustertest.Cluster().Config(), client.Options{Scheme: run.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// request is one request a fake pod received.
type request struct {
	pod, method, path string
	at                time.Time
}

// fleet is n kwok pods, each served by a real HTTP server on its pod IP.
type fleet struct {
	mu       sync.Mutex
	requests []request
	pods     []corev1.Pod
}

func (f *fleet) record(r request) {
	f.mu.Lock()
	f.requests = append(f.requests, r)
	f.mu.Unlock()
}

func (f *fleet) byPod() map[string][]request {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string][]request{}
	for _, r := range f.requests {
		out[r.pod] = append(out[r.pod], r)
	}
	return out
}

// newFleet creates n pods labelled app=<name> and serves each with
// handler(pod name), recording every request.
func newFleet(t testing.TB, env *clustertest.Env, name string, n int, handler func(pod string) http.Handler) *fleet {
	t.Helper()
	ctx := context.Background()
	f := &fleet{}
	for i := 0; i < n; i++ {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{
				Name: fmt.Sprintf("%s-%d", name, i), Labels: map[string]string{"app": name},
				Annotations: map[string]string{devcluster.AnnotationExitAfter: "100ms"},
			},
			Spec: corev1.PodSpec{
				TerminationGracePeriodSeconds: ptr.To[int64](5),
				Containers:                    []corev1.Container{{Name: "app", Image: "example.invalid/app:1"}},
			},
		}
		if _, err := env.Client.CoreV1().Pods(env.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	clustertest.Eventually(t, 60*time.Second, func(ctx context.Context) (bool, error) {
		list, err := env.Client.CoreV1().Pods(env.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app=" + name})
		if err != nil {
			return false, err
		}
		for _, p := range list.Items {
			if p.Status.PodIP == "" || p.Status.Phase != corev1.PodRunning {
				return false, nil
			}
		}
		f.pods = list.Items
		return len(list.Items) == n, nil
	}, "%d pods of %s to run", n, name)
	for _, p := range f.pods {
		l := listenPodIP(t, p.Status.PodIP)
		h := handler(p.Name)
		podName := p.Name
		srv := &http.Server{ReadHeaderTimeout: time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			f.record(request{pod: podName, method: r.Method, path: r.URL.Path, at: time.Now()})
			h.ServeHTTP(w, r)
		})}
		go func() { _ = srv.Serve(l) }()
		t.Cleanup(func() { _ = srv.Close() })
	}
	return f
}

func createPolicy(t testing.TB, c client.Client, ns string, p *v1alpha1.TerminationPolicy) *v1alpha1.TerminationPolicy {
	t.Helper()
	p.Namespace = ns
	if err := c.Create(context.Background(), p); err != nil {
		t.Fatalf("create policy: %v", err)
	}
	return p
}

// waitComplete waits for the run's Complete condition and returns it.
func waitComplete(t testing.TB, c client.Client, ns, name string, timeout time.Duration) *v1alpha1.TerminationRun {
	t.Helper()
	var run v1alpha1.TerminationRun
	clustertest.Eventually(t, timeout, func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &run); err != nil {
			return false, err
		}
		for _, cond := range run.Status.Conditions {
			if cond.Type == v1alpha1.ConditionComplete && cond.Status == metav1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	}, "run %s to complete", name)
	return &run
}

func dur(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

// listenPodIP listens on a pod's IP. kwok hands a deleted pod's IP to the
// next pod at once, so a listener of the pod that had it may still be
// closing: an address in use is tried again for a few seconds.
func listenPodIP(t testing.TB, ip string) net.Listener {
	t.Helper()
	addr := net.JoinHostPort(ip, "8080")
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, err := net.Listen("tcp", addr)
		if err == nil {
			return l
		}
		if !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			t.Fatalf("listen on %s: %v", ip, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
