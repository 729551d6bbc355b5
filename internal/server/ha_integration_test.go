//go:build integration

package server_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
	"github.com/lastcall-dev/lastcall/internal/devcluster/miniotest"
	"github.com/lastcall-dev/lastcall/internal/run"
)

// TestTwoReplicasOnS3ShareSavesAndTakeOverRuns is issue 16's HA proof: two
// `lastcall server` replicas with leader election on one S3 bucket (a real
// MinIO). A save acknowledged by one replica is read back from the other at
// once (50 of 50); SIGKILL of the leader in the middle of a run: the other
// replica takes the Lease within the lease duration and finishes the run
// without repeating its finished steps.
func TestTwoReplicasOnS3ShareSavesAndTakeOverRuns(t *testing.T) {
	env := clustertest.New(t)
	ctx := context.Background()
	m := miniotest.Start(t)
	const lease, retry = 4 * time.Second, 500 * time.Millisecond
	args := []string{"--state-url", m.URL, "--leader-elect=true", "--leader-election-namespace", env.Namespace,
		"--leader-elect-lease-duration=" + lease.String(), "--leader-elect-renew-deadline=3s", "--leader-elect-retry-period=" + retry.String()}
	a := startServerProcess(t, args...)
	b := startServerProcess(t, args...)
	token := readFile(t, tokenFile(t, env, "default", "lastcall"))

	// Saves through one replica, reads through the other.
	var slowest time.Duration
	for i := range 50 {
		writer, reader := a, b
		if i%2 == 1 {
			writer, reader = b, a
		}
		body := []byte(fmt.Sprintf("state %d", i))
		key := fmt.Sprintf("http://%s/v1/state/%s/pod-%d", writer.state, env.Namespace, i)
		if code := do(t, http.MethodPut, key, token, body); code != http.StatusCreated {
			t.Fatalf("save %d: %d", i, code)
		}
		acked := time.Now()
		code, got := get(t, fmt.Sprintf("http://%s/v1/state/%s/pod-%d", reader.state, env.Namespace, i), token)
		slowest = max(slowest, time.Since(acked))
		if code != http.StatusOK || !bytes.Equal(got, body) {
			t.Fatalf("save %d acknowledged by one replica, read from the other: %d %q", i, code, got)
		}
	}
	if slowest > 100*time.Millisecond {
		t.Errorf("the slowest cross-replica read took %s, want under 100 ms", slowest)
	}
	t.Logf("50 of 50 saves read back from the other replica; slowest %s", slowest.Round(time.Millisecond))

	// A run in the middle of a sleep when its leader dies.
	var mu sync.Mutex
	calls := map[string]int{}
	pod := servedPodWith(t, env, "web-0", map[string]string{"app": "web"}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls[r.URL.Path]++
		mu.Unlock()
	}))
	admin, err := client.New(clustertest.Cluster().Config(), client.Options{Scheme: run.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	policy := &v1alpha1.TerminationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "drain", Namespace: env.Namespace},
		Spec: v1alpha1.TerminationPolicySpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Steps: []v1alpha1.Step{
				{Name: "drain", HTTP: &v1alpha1.HTTPAction{Endpoint: v1alpha1.Endpoint{Port: 8080, Path: "/drain"}, Method: http.MethodPost}},
				{Name: "settle", Sleep: &v1alpha1.SleepAction{Duration: metav1.Duration{Duration: 10 * time.Second}}},
				{Name: "after", HTTP: &v1alpha1.HTTPAction{Endpoint: v1alpha1.Endpoint{Port: 8080, Path: "/after"}, Method: http.MethodPost}},
			}}}
	if err := admin.Create(ctx, policy); err != nil {
		t.Fatal(err)
	}
	r := &v1alpha1.TerminationRun{ObjectMeta: metav1.ObjectMeta{Name: "rollout", Namespace: env.Namespace},
		Spec: v1alpha1.TerminationRunSpec{PolicyRef: v1alpha1.PolicyRef{Name: policy.Name}, Trigger: v1alpha1.Trigger{Source: v1alpha1.TriggerCLI},
			Pods: []v1alpha1.PodRef{{Name: pod.Name, UID: pod.UID}}}}
	if err := admin.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 30*time.Second, func(ctx context.Context) (bool, error) {
		if err := admin.Get(ctx, client.ObjectKeyFromObject(r), r); err != nil {
			return false, err
		}
		ps := r.Status.Pods
		return len(ps) == 1 && len(ps[0].Steps) == 2, nil
	}, "the run to be settling")
	leader, standby := a, b
	if metric(t, b, "lastcall_leader") == 1 {
		leader, standby = b, a
	}
	if metric(t, leader, "lastcall_leader") != 1 {
		t.Fatal("neither replica says it leads")
	}
	if err := leader.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	clustertest.Eventually(t, 3*lease, func(context.Context) (bool, error) {
		return metric(t, standby, "lastcall_leader") == 1, nil
	}, "the other replica to take the Lease")
	took := time.Since(killed)
	// client-go counts the lease from when the standby last saw the record
	// change, and tries again every retry period with up to 1.2× jitter:
	// the lease duration plus two jittered retry periods, and a margin.
	if limit := lease + 2*retry*22/10 + 500*time.Millisecond; took > limit {
		t.Errorf("take-over after %s, want within %s (the lease duration and two jittered retry periods)", took.Round(100*time.Millisecond), limit)
	}
	clustertest.Eventually(t, 60*time.Second, func(ctx context.Context) (bool, error) {
		if err := admin.Get(ctx, client.ObjectKeyFromObject(r), r); err != nil {
			return false, err
		}
		return r.Status.Phase == v1alpha1.RunSucceeded || r.Status.Phase == v1alpha1.RunFailed, nil
	}, "the run to end on the new leader")
	mu.Lock()
	defer mu.Unlock()
	if r.Status.Phase != v1alpha1.RunSucceeded || calls["/drain"] != 1 || calls["/after"] != 1 {
		t.Fatalf("run %s, calls %v: want Succeeded, each step once", r.Status.Phase, calls)
	}
	t.Logf("leader SIGKILLed; the other replica led after %s and finished the run", took.Round(100*time.Millisecond))
}

// TestMinioOutageDuringSaves is issue 16's S3 outage: MinIO stopped for
// 20 s while pods save. A preStop helper whose budget outlasts the outage
// retries until MinIO is back and saves; one whose budget ends first exits
// 1 saying the save was not done; every save acknowledged before the
// outage is still there after it.
func TestMinioOutageDuringSaves(t *testing.T) {
	env := clustertest.New(t)
	m := miniotest.Start(t)
	p := startServerProcess(t, "--state-url", m.URL)
	token := tokenFile(t, env, "default", "lastcall")
	bin := buildPrestop(t)
	before := []byte("saved before the outage")
	url := fmt.Sprintf("http://%s/v1/state/%s/", p.state, env.Namespace)
	if code := do(t, http.MethodPut, url+"before", readFile(t, token), before); code != http.StatusCreated {
		t.Fatalf("save before the outage: %d", code)
	}
	file := filepath.Join(t.TempDir(), "state")
	if err := os.WriteFile(file, []byte("saved during the outage"), 0o644); err != nil {
		t.Fatal(err)
	}
	save := func(key, budget string) (int, string, time.Duration) {
		start := time.Now()
		code, out := helper(t, bin, "--budget="+budget, "--reserve=1s", "--save", file, "--state-url", "http://"+p.state, "--key", key,
			"--namespace", env.Namespace, "--pod", key, "--token-file", token, "--termination-message-path=none", "--console=none")
		return code, out, time.Since(start)
	}
	m.Stop()
	stopped := time.Now()
	type result struct {
		code int
		out  string
		took time.Duration
	}
	long, short := make(chan result, 1), make(chan result, 1)
	go func() { c, o, d := save("long", "40s"); long <- result{c, o, d} }()
	go func() { c, o, d := save("short", "8s"); short <- result{c, o, d} }()
	s := <-short
	if s.code != 1 || !strings.Contains(s.out, "save") {
		t.Fatalf("a budget shorter than the outage: exit %d\n%s\nwant exit 1 saying the save was not done", s.code, s.out)
	}
	time.Sleep(time.Until(stopped.Add(20 * time.Second))) // the outage lasts 20 s, whatever the helpers do
	m.Resume()
	l := <-long
	if l.code != 0 {
		t.Fatalf("a budget longer than the outage: exit %d after %s\n%s", l.code, l.took, l.out)
	}
	t.Logf("MinIO down 20 s: the 8 s budget failed after %s; the 40 s budget saved after %s", s.took.Round(100*time.Millisecond), l.took.Round(100*time.Millisecond))
	tok := readFile(t, token)
	for key, want := range map[string]string{"before": string(before), "long": "saved during the outage"} {
		code, got := get(t, url+key, tok)
		if code != http.StatusOK || !strings.Contains(string(got), want) {
			t.Errorf("%s after the outage: %d %q", key, code, got)
		}
	}
	if code, _ := get(t, url+"short", tok); code != http.StatusNotFound {
		t.Errorf("the save that ran out of budget: %d, want 404 (nothing half-saved)", code)
	}
}
