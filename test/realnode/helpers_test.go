//go:build integration

package realnode

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lastcall-dev/lastcall/internal/devcluster"
	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
)

// seedSetup is what the seed's preStop tests share: the test app and the
// helper's images on the node, lastcall server's state API, the recorder
// the app reports to, and the app's ServiceAccount.
func seedSetup(t *testing.T, env *clustertest.Env) (stateURL, metricsURL string, rec *recorder) {
	t.Helper()
	importImage(t, "testapp", "./test/realnode/testapp", testAppImage)
	importImage(t, "lastcall-prestop", "./cmd/lastcall-prestop", prestopImage)
	stateURL, metricsURL = startStateServer(t)
	rec = startRecorder(t)
	if _, err := env.Client.CoreV1().ServiceAccounts(env.Namespace).Create(context.Background(),
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "app"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return stateURL, metricsURL, rec
}

// importImage builds a package of the checkout into an image named ref and
// imports it into the real node, once per test binary.
func importImage(t *testing.T, name, pkg, ref string) {
	t.Helper()
	if imported[ref] {
		return
	}
	archive, err := devcluster.LocalImage(context.Background(), devcluster.BuildOptions{}, name, pkg, ref, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := clustertest.Cluster().ImportImages(context.Background(), archive); err != nil {
		t.Fatal(err)
	}
	imported[ref] = true
}

// startStateServer runs `lastcall server` as a process on the node IP, where
// pods reach it, with a file:// store and the watcher on; it returns the
// state API's URL and its /metrics URL.
func startStateServer(t *testing.T) (stateURL, metricsURL string) {
	t.Helper()
	ctx := context.Background()
	c := clustertest.Cluster()
	ours, _ := filepath.Glob(chartDir + "/crds/*.yaml")
	if err := devcluster.InstallCRDs(ctx, c.Config(), ours...); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "lastcall")
	if err := devcluster.GoBuild(ctx, "../..", bin, "./cmd/lastcall"); err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort(devcluster.NodeIP, strconv.Itoa(freePort(t, devcluster.NodeIP)))
	health := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t, "127.0.0.1")))
	metrics := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t, "127.0.0.1")))
	p, err := devcluster.StartProcess("lastcall-server", bin, []string{"server", "--kubeconfig", c.KubeconfigPath(),
		"--http-addr", addr, "--health-addr", health, "--metrics-addr", metrics,
		"--state-url", "file://" + t.TempDir(), "--leader-elect=false"}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("lastcall server log:\n%s", p.LogTail(40))
		}
		p.Stop(10 * time.Second)
	})
	clustertest.Eventually(t, time.Minute, func(ctx context.Context) (bool, error) {
		resp, err := http.Get("http://" + health + "/readyz")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	}, "lastcall server ready")
	return "http://" + addr, "http://" + metrics + "/metrics"
}

func freePort(t *testing.T, host string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitPodReady(t *testing.T, env *clustertest.Env, name string) (ip string) {
	t.Helper()
	clustertest.Eventually(t, time.Minute, func(ctx context.Context) (bool, error) {
		p, err := env.Client.CoreV1().Pods(env.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		ip = p.Status.PodIP
		return ready(p), nil
	}, "pod %s Ready", name)
	return ip
}

// recorder collects what the test app reports.
type recorder struct {
	url    string
	mu     sync.Mutex
	events []appEvent
}

type appEvent struct {
	pod, event, detail string
	at                 time.Time
}

func startRecorder(t *testing.T) *recorder {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(devcluster.NodeIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{url: "http://" + l.Addr().String()}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(req.Body, 64<<10))
		at, err := time.Parse(time.RFC3339Nano, req.URL.Query().Get("at"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.events = append(r.events, appEvent{pod: req.URL.Query().Get("pod"), event: req.URL.Query().Get("event"), detail: string(body), at: at})
		r.mu.Unlock()
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return r
}

func (r *recorder) all(pod, event string) []appEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []appEvent
	for _, e := range r.events {
		if e.pod == pod && e.event == event {
			out = append(out, e)
		}
	}
	return out
}

func (r *recorder) first(pod, event string) *appEvent {
	if all := r.all(pod, event); len(all) > 0 {
		return &all[0]
	}
	return nil
}

func (e appEvent) String() string {
	return fmt.Sprintf("%s %s %q", e.at.Format(time.RFC3339Nano), e.event, e.detail)
}

func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
