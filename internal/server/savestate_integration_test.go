//go:build integration

package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
	"github.com/lastcall-dev/lastcall/internal/run"
	"github.com/lastcall-dev/lastcall/internal/server"
)

const controlToken = "control-secret-for-test"

// stateServer runs `lastcall server` in-process with a file:// state store
// and a control token, and returns the base URL of its API. The CRDs go in
// first: the run controller watches them.
func stateServer(t *testing.T) string {
	t.Helper()
	base, _, stop := startStateServer(t)
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("server: %v", err)
		}
	})
	return base
}

// startStateServer is stateServer with the store's directory and a stop
// that ends the server and returns what its Run returned; it may be called
// more than once.
func startStateServer(t *testing.T) (base, stateDir string, stop func() error) {
	t.Helper()
	applyCRDs(t)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "control-token")
	if err := os.WriteFile(tokenFile, []byte(controlToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	cfg := server.Defaults
	cfg.HTTPAddr, cfg.MetricsAddr, cfg.HealthAddr, cfg.LeaderElect = addr, "127.0.0.1:0", "0", false
	cfg.State.URL = "file://" + filepath.Join(dir, "state")
	cfg.ControlTokenFile = tokenFile
	srv, err := server.New(clustertest.Cluster().Config(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	var stopped bool
	var runErr error
	stop = func() error {
		if !stopped {
			cancel()
			runErr, stopped = <-done, true
		}
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	base = "http://" + addr
	clustertest.Eventually(t, 30*time.Second, func(ctx context.Context) (bool, error) {
		resp, err := http.Get(base + "/v1/state/x/")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusUnauthorized, nil
	}, "the server's API to listen")
	return base, filepath.Join(dir, "state"), stop
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// getState reads a key through the API with the control token.
func getState(t *testing.T, base, ns, key string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/v1/state/"+ns+"/"+key, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+controlToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b, resp.Header
}

// saveRun starts a run of policy over pods and waits for it to end.
func saveRun(t *testing.T, c client.Client, name string, policy *v1alpha1.TerminationPolicy, pods ...*corev1.Pod) *v1alpha1.TerminationRun {
	t.Helper()
	run := &v1alpha1.TerminationRun{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: policy.Namespace},
		Spec:       v1alpha1.TerminationRunSpec{PolicyRef: v1alpha1.PolicyRef{Name: policy.Name}, Trigger: v1alpha1.Trigger{Source: v1alpha1.TriggerCLI, Reason: t.Name()}},
	}
	for _, p := range pods {
		run.Spec.Pods = append(run.Spec.Pods, v1alpha1.PodRef{Name: p.Name, UID: p.UID})
	}
	if err := c.Create(context.Background(), run); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, time.Minute, func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(run), run); err != nil {
			return false, err
		}
		return run.Status.Phase == v1alpha1.RunSucceeded || run.Status.Phase == v1alpha1.RunFailed, nil
	}, "run %s to end", name)
	return run
}

func stepMessage(run *v1alpha1.TerminationRun, pod string) string {
	for _, p := range run.Status.Pods {
		if p.Name == pod && len(p.Steps) > 0 {
			return p.Steps[len(p.Steps)-1].Message
		}
	}
	return ""
}

// TestSaveStateStepStoresEachPodsStateThroughTheServer runs `lastcall
// server` with a file:// store: a run's saveState step GETs each pod's
// state from an HTTP server on the pod's own IP and streams it into the
// store; the state API then serves it byte for byte with the pod recorded.
// A pod whose endpoint fails, and one whose answer is cut short, leave no
// new version behind.
func TestSaveStateStepStoresEachPodsStateThroughTheServer(t *testing.T) {
	env := clustertest.New(t)
	ctx := context.Background()
	base := stateServer(t)

	// db-0's state spans several of the store's copy buffers; db-1 also
	// announces its checksum; db-2's endpoint is down.
	states := map[string][]byte{
		"db-0": bytes.Repeat([]byte("record db-0;"), 300_000),
		"db-1": []byte(`{"offset":4711}`),
	}
	var truncate atomic.Bool
	state := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, ok := states[name]
			switch {
			case r.URL.Path != "/state":
				http.NotFound(w, r)
			case !ok:
				http.Error(w, "the app's state store is down", http.StatusInternalServerError)
			case truncate.Load():
				// Promise the whole body, send half, hang up.
				w.Header().Set("Content-Length", strconv.Itoa(len(body)))
				_, _ = w.Write(body[:len(body)/2])
				panic(http.ErrAbortHandler)
			default:
				sum := sha256.Sum256(body)
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("X-Content-SHA256", hex.EncodeToString(sum[:]))
				_, _ = w.Write(body)
			}
		})
	}
	var pods []*corev1.Pod
	for _, name := range []string{"db-0", "db-1", "db-2"} {
		pods = append(pods, servedPodWith(t, env, name, map[string]string{"app": "db"}, state(name)))
	}
	admin, err := client.New(clustertest.Cluster().Config(), client.Options{Scheme: run.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	policy := &v1alpha1.TerminationPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "save", Namespace: env.Namespace},
		Spec: v1alpha1.TerminationPolicySpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			Steps: []v1alpha1.Step{{
				Name:       "save",
				StepPolicy: v1alpha1.StepPolicy{Retries: ptrTo(int32(0))},
				SaveState:  &v1alpha1.SaveStateAction{Endpoint: v1alpha1.Endpoint{Port: 8080, Path: "/state"}, Key: "db/{{.Pod.Name}}"},
			}},
		},
	}
	if err := admin.Create(ctx, policy); err != nil {
		t.Fatal(err)
	}

	run := saveRun(t, admin, "save", policy, pods...)
	if run.Status.Phase != v1alpha1.RunFailed || run.Status.PodsFailed != 1 {
		t.Fatalf("run %s with %d failed pods, want Failed with only db-2 failed: %+v", run.Status.Phase, run.Status.PodsFailed, run.Status.Pods)
	}
	versions := map[string]string{}
	for name, want := range states {
		code, body, h := getState(t, base, env.Namespace, "db/"+name)
		sum := sha256.Sum256(want)
		if code != http.StatusOK || !bytes.Equal(body, want) || h.Get("X-Content-SHA256") != hex.EncodeToString(sum[:]) ||
			h.Get("X-Lastcall-Pod") != name || h.Get("Content-Type") != "application/json" {
			t.Errorf("state of %s: %d, %d bytes, headers %v; want 200 with the pod's %d bytes", name, code, len(body), h, len(want))
		}
		versions[name] = h.Get("X-Lastcall-Version")
		msg := stepMessage(run, name)
		for _, part := range []string{"pod " + name, fmt.Sprintf("%d bytes", len(want)), hex.EncodeToString(sum[:]), versions[name]} {
			if !strings.Contains(msg, part) {
				t.Errorf("step message of %s %q lacks %q", name, msg, part)
			}
		}
	}
	if code, _, _ := getState(t, base, env.Namespace, "db/db-2"); code != http.StatusNotFound {
		t.Errorf("state of db-2, whose endpoint failed: %d, want 404", code)
	}
	if msg := stepMessage(run, "db-2"); !strings.Contains(msg, "500") {
		t.Errorf("step message of db-2 %q: want the pod's 500", msg)
	}

	// A second run whose answers are cut short stores nothing: the first
	// versions stay the newest.
	truncate.Store(true)
	run = saveRun(t, admin, "save-cut", policy, pods[0], pods[1])
	if run.Status.Phase != v1alpha1.RunFailed || run.Status.PodsFailed != 2 {
		t.Fatalf("run with cut answers: %s, %d failed pods: %+v", run.Status.Phase, run.Status.PodsFailed, run.Status.Pods)
	}
	for name, want := range states {
		code, body, h := getState(t, base, env.Namespace, "db/"+name)
		if code != http.StatusOK || !bytes.Equal(body, want) || h.Get("X-Lastcall-Version") != versions[name] {
			t.Errorf("after a cut answer, %s reads %d, %d bytes, version %s; want the first version %s", name, code, len(body), h.Get("X-Lastcall-Version"), versions[name])
		}
	}
}
