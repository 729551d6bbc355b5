//go:build integration

package run_test

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
	"github.com/lastcall-dev/lastcall/internal/devcluster"
	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
)

// buildLastcall builds the real binary once per test binary.
var buildLastcall = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "lastcall-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "lastcall")
	if err := devcluster.GoBuild(context.Background(), "", bin, "../../cmd/lastcall"); err != nil {
		return "", err
	}
	return bin, nil
})

// startServerProcess runs `lastcall server` as its own process, with leader
// election on a short Lease so a restarted server takes over quickly.
func startServerProcess(t *testing.T, ns string) *exec.Cmd {
	t.Helper()
	bin, err := buildLastcall()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "server", "--kubeconfig", clustertest.Cluster().KubeconfigPath(), "--state-url", "mem://",
		"--http-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--health-addr", "127.0.0.1:0",
		"--leader-elect", "--leader-election-namespace", ns,
		"--leader-elect-lease-duration", "2s", "--leader-elect-renew-deadline", "1500ms", "--leader-elect-retry-period", "250ms")
	logf, err := os.Create(filepath.Join(t.TempDir(), "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("server log:\n%s", b)
		}
	})
	return cmd
}

func TestKilledServerResumesRunWithoutRepeatingFinishedSteps(t *testing.T) {
	env := clustertest.New(t)
	c, err := client.New(clustertest.Cluster().Config(), client.Options{Scheme: schemeForTests()})
	if err != nil {
		t.Fatal(err)
	}
	f := newFleet(t, env, "crash", 6, func(string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(200 * time.Millisecond)
			w.WriteHeader(http.StatusOK)
		})
	})
	policy := createPolicy(t, c, env.Namespace, &v1alpha1.TerminationPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "crash"},
		Spec: v1alpha1.TerminationPolicySpec{
			Selector:    &metav1.LabelSelector{MatchLabels: map[string]string{"app": "crash"}},
			Concurrency: 2,
			Steps: []v1alpha1.Step{
				{Name: "drain", HTTP: &v1alpha1.HTTPAction{Endpoint: v1alpha1.Endpoint{Port: 8080, Path: "/drain"}}},
				{Name: "wait", Sleep: &v1alpha1.SleepAction{Duration: metav1.Duration{Duration: 700 * time.Millisecond}}},
				{Name: "done", HTTP: &v1alpha1.HTTPAction{Endpoint: v1alpha1.Endpoint{Port: 8080, Path: "/done"}}},
			},
		},
	})
	first := startServerProcess(t, env.Namespace)
	r := startRun(t, c, policy)

	// Kill the server once some pods are done and others are mid-way.
	var atKill v1alpha1.TerminationRun
	clustertest.Eventually(t, 60*time.Second, func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(r), &atKill); err != nil {
			return false, err
		}
		return atKill.Status.PodsDone >= 2, nil
	}, "two pods to be done")
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(r), &atKill); err != nil {
		t.Fatal(err)
	}
	if atKill.Status.PodsDone == 6 {
		t.Fatal("the run finished before the kill; the test proves nothing")
	}
	finished := map[string]bool{} // "pod/path" of http steps recorded Succeeded at the kill
	for _, p := range atKill.Status.Pods {
		for _, s := range p.Steps {
			if s.Phase == v1alpha1.StepSucceeded && s.Name != "wait" {
				finished[p.Name+"/"+s.Name] = true
			}
		}
	}

	startServerProcess(t, env.Namespace)
	got := waitComplete(t, c, env.Namespace, r.Name, 60*time.Second)
	if got.Status.Phase != v1alpha1.RunSucceeded || got.Status.PodsDone != 6 {
		t.Fatalf("after restart: phase %s, %d/6 done: %s", got.Status.Phase, got.Status.PodsDone, got.Status.Message)
	}
	counts := map[string]int{}
	for pod, reqs := range f.byPod() {
		for _, rq := range reqs {
			counts[pod+rq.path]++
		}
	}
	repeated := 0
	for _, p := range f.pods {
		for _, step := range []string{"drain", "done"} {
			n := counts[p.Name+"/"+step]
			if n == 0 {
				t.Errorf("pod %s never got /%s", p.Name, step)
			}
			if finished[p.Name+"/"+step] && n != 1 {
				t.Errorf("pod %s: step %s was recorded Succeeded before the kill but ran %d times", p.Name, step, n)
			}
			if n > 1 {
				repeated++
			}
		}
	}
	t.Logf("at the kill %d/6 pods were done and %d http steps recorded; %d in-flight steps ran again after the restart (at-least-once)",
		atKill.Status.PodsDone, len(finished), repeated)
}

// TestKilledServerResumesASleepWithTheTimeAlreadySlept: a sleep step cut
// short by a SIGKILL resumes on the next leader with what is left of it,
// not from the start (issue 16: an outage must not lengthen a drain).
func TestKilledServerResumesASleepWithTheTimeAlreadySlept(t *testing.T) {
	const pause, slept = 8 * time.Second, 3 * time.Second
	env := clustertest.New(t)
	c, err := client.New(clustertest.Cluster().Config(), client.Options{Scheme: schemeForTests()})
	if err != nil {
		t.Fatal(err)
	}
	newFleet(t, env, "sleepy", 1, func(string) http.Handler { return http.NotFoundHandler() })
	policy := createPolicy(t, c, env.Namespace, &v1alpha1.TerminationPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "sleepy"},
		Spec: v1alpha1.TerminationPolicySpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "sleepy"}},
			Steps:    []v1alpha1.Step{{Name: "pause", Sleep: &v1alpha1.SleepAction{Duration: metav1.Duration{Duration: pause}}}},
		},
	})
	first := startServerProcess(t, env.Namespace)
	r := startRun(t, c, policy)
	var started time.Time
	clustertest.Eventually(t, 60*time.Second, func(ctx context.Context) (bool, error) {
		var cur v1alpha1.TerminationRun
		if err := c.Get(ctx, client.ObjectKeyFromObject(r), &cur); err != nil {
			return false, err
		}
		if len(cur.Status.Pods) == 0 || len(cur.Status.Pods[0].Steps) == 0 || cur.Status.Pods[0].Steps[0].StartTime == nil {
			return false, nil
		}
		started = cur.Status.Pods[0].Steps[0].StartTime.Time
		return time.Since(started) >= slept, nil
	}, "the sleep to have run %s", slept)
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	startServerProcess(t, env.Namespace)
	got := waitComplete(t, c, env.Namespace, r.Name, 60*time.Second)
	if got.Status.Phase != v1alpha1.RunSucceeded {
		t.Fatalf("after restart: %s %s", got.Status.Phase, got.Status.Message)
	}
	step := got.Status.Pods[0].Steps[0]
	// Second precision on the API's timestamps; the new leader takes up to
	// the 2 s lease to start. Starting over would end after slept + pause.
	took := step.CompletionTime.Sub(started)
	if !step.StartTime.Time.Equal(started.Truncate(time.Second)) && !step.StartTime.Time.Equal(started) {
		t.Errorf("the step's start moved from %s to %s on resume", started, step.StartTime.Time)
	}
	if took >= slept+pause {
		t.Fatalf("the sleep ended %s after it first started: it started over instead of resuming (%s + %s)", took, slept, pause)
	}
	t.Logf("an %s sleep killed after %s ended %s after it first started", pause, slept, took)
}
