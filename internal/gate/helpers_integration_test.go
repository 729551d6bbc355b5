//go:build integration

package gate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
	"github.com/lastcall-dev/lastcall/internal/gate"
	"github.com/lastcall-dev/lastcall/internal/run"
	"github.com/lastcall-dev/lastcall/internal/server"
)

// adminToken is what the tests' --control-token-file holds.
const adminToken = "gate-test-admin-token"

// gateServer is one `lastcall server` run in-process, its API served on a
// loopback port.
type gateServer struct {
	URL  string
	srv  *server.Server
	stop func()
}

type serverOpts struct {
	// leaseNamespace turns leader election on (Lease in that namespace), so
	// that two servers execute each run once between them.
	leaseNamespace string
}

// startServer runs a server (gate, run controller) until the test ends or
// stop is called, and returns once its caches have synced.
func startServer(t testing.TB, o serverOpts) *gateServer {
	t.Helper()
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(adminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := server.Defaults
	// The API listens where a real server does, on its own listener (not
	// an httptest wrapper), which the benchmark measures.
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg.HTTPAddr, cfg.MetricsAddr, cfg.HealthAddr = addr, "127.0.0.1:0", "0"
	cfg.State.URL = "mem://"
	cfg.ControlTokenFile = tokenFile
	cfg.LeaderElect = o.leaseNamespace != ""
	if cfg.LeaderElect {
		cfg.LeaderElectionNamespace = o.leaseNamespace
		cfg.LeaseDuration, cfg.RenewDeadline, cfg.RetryPeriod = 3*time.Second, 2*time.Second, 250*time.Millisecond
	}
	srv, err := server.New(clustertest.Cluster().Config(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("server: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
	defer scancel()
	if !srv.Manager().GetCache().WaitForCacheSync(sctx) {
		t.Fatal("server caches did not sync")
	}
	clustertest.Eventually(t, 10*time.Second, func(context.Context) (bool, error) {
		conn, err := net.Dial("tcp", addr)
		if err == nil {
			conn.Close()
		}
		return err == nil, nil
	}, "the API to listen on %s", addr)
	return &gateServer{URL: "http://" + addr, srv: srv, stop: stop}
}

// waitCached waits until the server's cache holds obj, for a test whose next
// call must see it (the gate reads policies from the cache).
func (s *gateServer) waitCached(t testing.TB, obj client.Object) {
	t.Helper()
	into := obj.DeepCopyObject().(client.Object)
	clustertest.Eventually(t, 10*time.Second, func(ctx context.Context) (bool, error) {
		return s.srv.Manager().GetCache().Get(ctx, client.ObjectKeyFromObject(obj), into) == nil, nil
	}, "the server's cache to hold %s", obj.GetName())
}

// answer is one HTTP answer.
type answer struct {
	code        int
	body        string
	contentType string
	header      http.Header
	// close is the server's "Connection: close", which net/http's client
	// takes out of the header.
	close bool
}

func (a answer) String() string { return fmt.Sprintf("%d %q (%s)", a.code, a.body, a.contentType) }

// call sends method path with body (a string, or anything else as JSON) and
// an optional bearer token.
func call(t testing.TB, method, url, token string, body any) answer {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = bytes.NewBufferString(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return do(t, req)
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// do sends req and reads the whole answer.
func do(t testing.TB, req *http.Request) answer {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{code: resp.StatusCode, body: string(data), contentType: resp.Header.Get("Content-Type"), header: resp.Header, close: resp.Close}
}

func post(t testing.TB, url, token string, body any) answer {
	t.Helper()
	return call(t, http.MethodPost, url, token, body)
}

// gateAnswer decodes a /flagger/gate answer.
func gateAnswer(t testing.TB, a answer) gate.Answer {
	t.Helper()
	var g gate.Answer
	if err := json.Unmarshal([]byte(a.body), &g); err != nil {
		t.Fatalf("answer %s is not a gate answer: %v", a, err)
	}
	return g
}

func adminClient(t testing.TB) client.Client {
	t.Helper()
	c, err := client.New(clustertest.Cluster().Config(), client.Options{Scheme: run.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// drainApp serves the primary's pods: POST /drain is counted per pod and
// answered with status() once release is closed.
type drainApp struct {
	mu      sync.Mutex
	drains  map[string]int
	release chan struct{}
	status  atomic.Int32
}

func newDrainApp() *drainApp {
	a := &drainApp{drains: map[string]int{}, release: make(chan struct{})}
	a.status.Store(http.StatusOK)
	return a
}

func (a *drainApp) handler(pod string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/drain" {
			http.NotFound(w, r)
			return
		}
		select {
		case <-a.release:
		case <-r.Context().Done():
			return
		}
		a.mu.Lock()
		a.drains[pod]++
		a.mu.Unlock()
		w.WriteHeader(int(a.status.Load()))
	})
}

func (a *drainApp) counts() map[string]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[string]int{}
	for k, v := range a.drains {
		out[k] = v
	}
	return out
}

// canary creates what Flagger would have by the time it calls a
// confirm-promotion hook: the Canary, and the primary Deployment
// <target>-primary whose n pods (kwok) are served by app on their pod IPs.
func canary(t testing.TB, c client.Client, ns, name, target string, n int, app *drainApp) []corev1.Pod {
	t.Helper()
	ctx := context.Background()
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "flagger.app/v1beta1", "kind": "Canary",
		"metadata": map[string]any{"name": name, "namespace": ns},
		"spec": map[string]any{
			// A progressive canary through a mesh whose routes lastcall does
			// not read: the Canary's status says where the traffic is, and
			// promotion() puts it all on the canary, as at Flagger's
			// confirm-promotion call. (traffic_integration_test.go covers
			// the kubernetes provider.)
			"provider":  "istio",
			"targetRef": map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
			"service":   map[string]any{"port": int64(80)},
			"analysis":  map[string]any{"interval": "5s", "threshold": int64(2), "maxWeight": int64(100), "stepWeight": int64(50)},
		},
	}}
	if err := c.Create(ctx, u); err != nil {
		t.Fatalf("create canary: %v", err)
	}
	primary := target + "-primary"
	labels := map[string]string{"app": primary}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: primary, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(n)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: ptr.To[int64](5),
					Containers:                    []corev1.Container{{Name: "app", Image: "example.invalid/app:1"}},
				},
			},
		},
	}
	if err := c.Create(ctx, dep); err != nil {
		t.Fatalf("create primary: %v", err)
	}
	var pods []corev1.Pod
	clustertest.Eventually(t, 60*time.Second, func(ctx context.Context) (bool, error) {
		var list corev1.PodList
		if err := c.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels(labels)); err != nil {
			return false, err
		}
		for _, p := range list.Items {
			if p.Status.PodIP == "" || p.Status.Phase != corev1.PodRunning {
				return false, nil
			}
		}
		pods = list.Items
		return len(pods) == n, nil
	}, "%d pods of %s to run", n, primary)
	for _, p := range pods {
		l, err := net.Listen("tcp", net.JoinHostPort(p.Status.PodIP, "8080"))
		if err != nil {
			t.Fatalf("listen on %s: %v", p.Status.PodIP, err)
		}
		srv := &http.Server{ReadHeaderTimeout: time.Second, Handler: app.handler(p.Name)}
		go func() { _ = srv.Serve(l) }()
		t.Cleanup(func() { _ = srv.Close() })
	}
	return pods
}

// drainPolicy covers target-primary with one drain step per pod.
func drainPolicy(t testing.TB, c client.Client, ns, name, target string, onFailure v1alpha1.GateFailureAction) *v1alpha1.TerminationPolicy {
	t.Helper()
	p := &v1alpha1.TerminationPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.TerminationPolicySpec{
			TargetRef: &v1alpha1.TargetRef{Kind: "Deployment", Name: target + "-primary"},
			Steps: []v1alpha1.Step{{Name: "drain", StepPolicy: v1alpha1.StepPolicy{Retries: ptr.To[int32](0)},
				HTTP: &v1alpha1.HTTPAction{Endpoint: v1alpha1.Endpoint{Port: 8080, Path: "/drain"}, Method: "POST"}}},
			Gate: v1alpha1.GatePolicy{OnFailure: onFailure},
		},
	}
	if err := c.Create(context.Background(), p); err != nil {
		t.Fatalf("create policy: %v", err)
	}
	return p
}

// gateRuns lists the gate runs in ns straight from the API server.
func gateRuns(t testing.TB, c client.Client, ns string) []v1alpha1.TerminationRun {
	t.Helper()
	runs, err := gate.GateRuns(context.Background(), c, ns, "")
	if err != nil {
		t.Fatal(err)
	}
	return runs
}

// until polls f (an HTTP call) until ok says so, and returns the last answer.
func until(t testing.TB, timeout time.Duration, what string, f func() answer, ok func(answer) bool) answer {
	t.Helper()
	var last answer
	clustertest.Eventually(t, timeout, func(context.Context) (bool, error) {
		last = f()
		return ok(last), nil
	}, "%s (last answer %v)", what, &last)
	return last
}

// counter reads a counter of the server's registry.
func counter(t testing.TB, s *gateServer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := s.srv.Registry().(prometheus.Gatherer).Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// promotion is what Flagger v1.36 POSTs to a confirm-promotion hook while it
// rolls out revision rev of the canary: first it sets the Canary's status as
// Flagger does then (phase Progressing, rev as status.lastAppliedSpec), when
// the Canary exists, and waits for the server's cache to see it, so that the
// checksum is the one the gate recomputes.
func (s *gateServer) promotion(t testing.TB, c client.Client, ns, name, rev string) map[string]any {
	t.Helper()
	ctx := context.Background()
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gate.CanaryGVK)
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, u); err == nil {
		applied, _, _ := unstructured.NestedString(u.Object, "status", "lastAppliedSpec")
		if applied != rev {
			_ = unstructured.SetNestedField(u.Object, "Progressing", "status", "phase")
			_ = unstructured.SetNestedField(u.Object, rev, "status", "lastAppliedSpec")
			_ = unstructured.SetNestedField(u.Object, int64(100), "status", "canaryWeight")
			if err := c.Status().Update(ctx, u); err != nil {
				t.Fatalf("set canary %s status: %v", name, err)
			}
		}
		{
			clustertest.Eventually(t, 10*time.Second, func(ctx context.Context) (bool, error) {
				got := &unstructured.Unstructured{}
				got.SetGroupVersionKind(gate.CanaryGVK)
				if err := s.srv.Manager().GetCache().Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, got); err != nil {
					return false, nil
				}
				a, _, _ := unstructured.NestedString(got.Object, "status", "lastAppliedSpec")
				return a == rev, nil
			}, "the server's cache to see canary %s at %s", name, rev)
		}
	}
	return map[string]any{"name": name, "namespace": ns, "phase": "Progressing", "checksum": gate.FlaggerChecksum(nil, rev)}
}
