//go:build integration

package server_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
	"github.com/lastcall-dev/lastcall/internal/devcluster"
	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
	"github.com/lastcall-dev/lastcall/internal/run"
)

// Issue 16, high 6 and the fault tests: an API server that stops answering
// (SIGSTOP for 30 s, longer than the controller Lease's renew deadline) and
// an etcd that is killed and restarted, both in the middle of a run. The
// server process stays up, the gate answers from its cache, a state GET with
// a recently used ServiceAccount token succeeds, and once the control plane
// is back the run finishes without repeating the steps it had finished.

func TestAPIServerPausedMidRun(t *testing.T) {
	c := clustertest.Cluster()
	faultMidRun(t, 30*time.Second,
		func() error { return c.Pause(devcluster.BinKubeAPIServer) },
		func() error { return c.Resume(devcluster.BinKubeAPIServer) })
}

func TestEtcdKilledMidRun(t *testing.T) {
	c := clustertest.Cluster()
	faultMidRun(t, 15*time.Second,
		func() error { return c.Kill(devcluster.BinEtcd) },
		func() error { return c.Restart(context.Background(), devcluster.BinEtcd) })
}

func faultMidRun(t *testing.T, hold time.Duration, inject, heal func() error) {
	env := clustertest.New(t)
	ctx := context.Background()
	// Each pod counts the calls of each step.
	var mu sync.Mutex
	calls := map[string]int{}
	count := func(path string) int {
		mu.Lock()
		defer mu.Unlock()
		return calls[path]
	}
	pods := []*corev1.Pod{}
	for _, name := range []string{"web-0", "web-1"} {
		pods = append(pods, servedPodWith(t, env, name, map[string]string{"app": "web"}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			calls[r.URL.Path]++
			mu.Unlock()
			fmt.Fprintln(w, "ok")
		})))
	}
	p := startServerProcess(t, "--leader-elect=true", "--leader-election-namespace", env.Namespace,
		"--leader-elect-lease-duration=6s", "--leader-elect-renew-deadline=4s", "--leader-elect-retry-period=1s")
	admin, err := client.New(clustertest.Cluster().Config(), client.Options{Scheme: run.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	// The sleep outlasts the fault: the run is cut in the middle of it.
	policy := &v1alpha1.TerminationPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "drain", Namespace: env.Namespace},
		Spec: v1alpha1.TerminationPolicySpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Steps: []v1alpha1.Step{
				{Name: "drain", HTTP: &v1alpha1.HTTPAction{Endpoint: v1alpha1.Endpoint{Port: 8080, Path: "/drain"}, Method: http.MethodPost}},
				{Name: "settle", Sleep: &v1alpha1.SleepAction{Duration: metav1.Duration{Duration: hold + 5*time.Second}}},
				{Name: "after", HTTP: &v1alpha1.HTTPAction{Endpoint: v1alpha1.Endpoint{Port: 8080, Path: "/after"}, Method: http.MethodPost}},
			},
		},
	}
	if err := admin.Create(ctx, policy); err != nil {
		t.Fatal(err)
	}

	// Before the fault: a pod saves state with its token, and a manual
	// gate is opened, so both are in the server's caches.
	token := readFile(t, tokenFile(t, env, "default", "lastcall"))
	stateURL := fmt.Sprintf("http://%s/v1/state/%s/web-0", p.state, env.Namespace)
	saved := []byte("offset=4711")
	if code := do(t, http.MethodPut, stateURL, token, saved); code != http.StatusCreated {
		t.Fatalf("PUT state: %d", code)
	}
	gateBody := []byte(fmt.Sprintf(`{"name":"web","namespace":%q}`, env.Namespace))
	if code := do(t, http.MethodPost, "http://"+p.gate+"/gate/open", controlToken, gateBody); code != http.StatusAccepted && code != http.StatusOK {
		t.Fatalf("open gate: %d", code)
	}
	clustertest.Eventually(t, 10*time.Second, func(context.Context) (bool, error) {
		return do(t, http.MethodPost, "http://"+p.gate+"/gate/check", "", gateBody) == http.StatusOK, nil
	}, "the opened gate to be seen")
	clustertest.Eventually(t, 30*time.Second, func(context.Context) (bool, error) {
		return metric(t, p, "lastcall_leader") == 1, nil
	}, "the server to lead")

	run := &v1alpha1.TerminationRun{
		ObjectMeta: metav1.ObjectMeta{Name: "rollout", Namespace: env.Namespace},
		Spec:       v1alpha1.TerminationRunSpec{PolicyRef: v1alpha1.PolicyRef{Name: policy.Name}, Trigger: v1alpha1.Trigger{Source: v1alpha1.TriggerCLI, Reason: t.Name()}},
	}
	for _, pod := range pods {
		run.Spec.Pods = append(run.Spec.Pods, v1alpha1.PodRef{Name: pod.Name, UID: pod.UID})
	}
	if err := admin.Create(ctx, run); err != nil {
		t.Fatal(err)
	}
	// Wait until the sleep has begun and its start is in the run's status,
	// which is what the resumed run goes by.
	clustertest.Eventually(t, 30*time.Second, func(ctx context.Context) (bool, error) {
		if err := admin.Get(ctx, client.ObjectKeyFromObject(run), run); err != nil {
			return false, err
		}
		sleeping := 0
		for _, ps := range run.Status.Pods {
			if len(ps.Steps) == 2 && ps.Steps[1].Name == "settle" {
				sleeping++
			}
		}
		return count("/drain") == len(pods) && sleeping == len(pods), nil
	}, "both pods to be drained and settling")

	if err := inject(); err != nil {
		t.Fatal(err)
	}
	healed := false
	defer func() {
		if !healed {
			_ = heal()
		}
	}()
	start := time.Now()
	probes := 0
	for time.Since(start) < hold {
		select {
		case err := <-p.exited:
			t.Fatalf("lastcall server exited during the fault: %v", err)
		default:
		}
		if code := p.ready(); code != http.StatusOK {
			t.Fatalf("/readyz during the fault: %d", code)
		}
		began := time.Now()
		if code := do(t, http.MethodPost, "http://"+p.gate+"/gate/check", "", gateBody); code != http.StatusOK {
			t.Fatalf("gate check during the fault: %d, want 200 from the cache", code)
		}
		if d := time.Since(began); d > time.Second {
			t.Fatalf("gate check during the fault took %s", d)
		}
		if code, body := get(t, stateURL, token); code != http.StatusOK || !bytes.Equal(body, saved) {
			t.Fatalf("state GET during the fault: %d %q", code, body)
		}
		probes++
		time.Sleep(time.Second)
	}
	healed = true
	if err := heal(); err != nil {
		t.Fatal(err)
	}
	t.Logf("fault held %s; %d rounds of probes (readyz, gate check, state GET) all answered", time.Since(start).Round(time.Second), probes)

	clustertest.Eventually(t, 90*time.Second, func(ctx context.Context) (bool, error) {
		if err := admin.Get(ctx, client.ObjectKeyFromObject(run), run); err != nil {
			return false, nil // the API server may still be catching up
		}
		return run.Status.Phase == v1alpha1.RunSucceeded || run.Status.Phase == v1alpha1.RunFailed, nil
	}, "the run to end after the fault")
	if run.Status.Phase != v1alpha1.RunSucceeded {
		t.Fatalf("run %s: %s", run.Status.Phase, run.Status.Message)
	}
	if d, a := count("/drain"), count("/after"); d != len(pods) || a != len(pods) {
		t.Fatalf("drain called %d times and after %d times, want %d each: a finished step ran again", d, a, len(pods))
	}
	if lost := metric(t, p, "lastcall_leader_terms_lost_total"); lost < 1 {
		t.Fatalf("lastcall_leader_terms_lost_total %v: the fault should have cost the Lease", lost)
	}
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// do sends body with the bearer token (none if "") and returns the status;
// 0 when no answer came within 15 s.
func do(t *testing.T, method, url, token string, body []byte) int {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		t.Logf("%s %s: %v", method, url, err)
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func get(t testing.TB, url, token string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		t.Logf("GET %s: %v", url, err)
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// metric reads one unlabelled sample from the server's /metrics; -1 when
// it is not there.
func metric(t *testing.T, p *serverProcess, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + p.metrics + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}
