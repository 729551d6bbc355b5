//go:build integration

package realnode

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
)

// TestTheSeedsFailureCasesOnTheRealKubelet is issue 17 item 2. Three pods,
// each deleted with 6 s of grace, on the real kubelet, with `lastcall
// server`'s watcher on:
//   - a preStop hook that exits 1: the kubelet's FailedPreStopHook Event,
//     counted by the watcher;
//   - the seed's overrun (a hook longer than the grace, an app that needs
//     time after SIGTERM): the kubelet SIGKILLs it and the watcher reports
//     KilledAtDeadline;
//   - the same app with `lastcall-prestop --budget --reserve` as its hook
//     and a drain that hangs: the helper gives up in time, the app gets its
//     SIGTERM with the reserve left and exits by itself.
func TestTheSeedsFailureCasesOnTheRealKubelet(t *testing.T) {
	env := clustertest.New(t)
	ctx := context.Background()
	stateURL, metricsURL, rec := seedSetup(t, env)
	const grace, reserve = 6, 3
	hooked := func(name string, hook []string, extra ...corev1.EnvVar) *corev1.Pod {
		p := appPod(env.Namespace, name, stateURL, rec.url, grace, reserve)
		c := &p.Spec.Containers[0]
		c.Lifecycle.PreStop.Exec.Command = hook
		c.Env = append(c.Env, extra...)
		return p
	}
	failing := hooked("hook-fails", []string{"/usr/local/bin/testapp", "hook", "fail"})
	overrun := hooked("hook-overruns", []string{"/usr/local/bin/testapp", "hook", "sleep", "30s"},
		corev1.EnvVar{Name: "SHUTDOWN_DELAY", Value: "10s"})
	budgeted := hooked("helper-budgeted", []string{"/lastcall/lastcall-prestop",
		"--budget=" + strconv.Itoa(grace) + "s", "--reserve=" + strconv.Itoa(reserve) + "s",
		"--drain-url=http://127.0.0.1:8080/drain", "--port=8080"},
		corev1.EnvVar{Name: "SHUTDOWN_DELAY", Value: "2s"}, corev1.EnvVar{Name: "DRAIN_DELAY", Value: "30s"})
	pods := env.Client.CoreV1().Pods(env.Namespace)
	for _, p := range []*corev1.Pod{failing, overrun, budgeted} {
		if _, err := pods.Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	deleted := map[string]time.Time{}
	for _, p := range []*corev1.Pod{failing, overrun, budgeted} {
		waitPodReady(t, env, p.Name)
	}
	for _, p := range []*corev1.Pod{failing, overrun, budgeted} {
		deleted[p.Name] = time.Now()
		if err := pods.Delete(ctx, p.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []*corev1.Pod{failing, overrun, budgeted} {
		clustertest.Eventually(t, time.Duration(grace+20)*time.Second, func(ctx context.Context) (bool, error) {
			_, err := pods.Get(ctx, p.Name, metav1.GetOptions{})
			return err != nil, nil
		}, "pod %s gone", p.Name)
	}

	events := func(pod, reason string) []corev1.Event {
		list, err := env.Client.CoreV1().Events(env.Namespace).List(ctx, metav1.ListOptions{FieldSelector: fields.AndSelectors(
			fields.OneTermEqualSelector("involvedObject.name", pod), fields.OneTermEqualSelector("reason", reason)).String()})
		if err != nil {
			t.Fatal(err)
		}
		return list.Items
	}
	// Hook exits 1: the kubelet's Event at once, counted by the watcher.
	clustertest.Eventually(t, 20*time.Second, func(context.Context) (bool, error) {
		return len(events(failing.Name, "FailedPreStopHook")) > 0 && metric(t, metricsURL, `lastcall_watch_hook_failures_total{hook="preStop",namespace="`+env.Namespace+`"}`) >= 1, nil
	}, "FailedPreStopHook for %s, counted by the watcher", failing.Name)
	if s := rec.first(failing.Name, "sigterm"); s == nil || s.at.Sub(deleted[failing.Name]) > 3*time.Second {
		t.Errorf("after a failed hook the app should get SIGTERM at once: %v", s)
	}

	// The overrun: SIGKILL at the deadline, reported by the watcher.
	clustertest.Eventually(t, 20*time.Second, func(context.Context) (bool, error) {
		return len(events(overrun.Name, "KilledAtDeadline")) > 0, nil
	}, "KilledAtDeadline for %s", overrun.Name)
	if rec.first(overrun.Name, "exit") != nil {
		t.Errorf("%s exited by itself; it should have been SIGKILLed", overrun.Name)
	}
	if s := rec.first(overrun.Name, "sigterm"); s != nil {
		t.Logf("overrun: SIGTERM %s after the delete (grace %ds), then SIGKILL", s.at.Sub(deleted[overrun.Name]).Round(time.Millisecond), grace)
	} else {
		t.Logf("overrun: no SIGTERM reached the app before the SIGKILL")
	}
	hookEvents := events(overrun.Name, "FailedPreStopHook")
	t.Logf("overrun: %d FailedPreStopHook Events (the kubelet reports the overrun hook when the SIGKILL ends it)", len(hookEvents))

	// The helper with a budget: the app is never SIGKILLed.
	if ev := events(budgeted.Name, "KilledAtDeadline"); len(ev) > 0 {
		t.Errorf("%s was SIGKILLed although the helper kept a reserve: %s", budgeted.Name, ev[0].Message)
	}
	sig, exit := rec.first(budgeted.Name, "sigterm"), rec.first(budgeted.Name, "exit")
	if sig == nil || exit == nil {
		t.Fatalf("%s: SIGTERM %v, exit %v: the app should have exited by itself", budgeted.Name, sig, exit)
	}
	t.Logf("budgeted helper: SIGTERM %s after the delete, exit %s after it (grace %ds, reserve %ds)",
		sig.at.Sub(deleted[budgeted.Name]).Round(time.Millisecond), exit.at.Sub(sig.at).Round(time.Millisecond), grace, reserve)
	if left := time.Duration(grace)*time.Second - sig.at.Sub(deleted[budgeted.Name]); left < time.Duration(reserve-1)*time.Second {
		t.Errorf("the app got SIGTERM with %s of grace left, want about the reserve (%ds)", left, reserve)
	}
}

// metric reads one sample's value from a Prometheus text endpoint (0 when
// absent).
func metric(t *testing.T, url, series string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, series+" ") {
			v, _ := strconv.ParseFloat(strings.TrimPrefix(line, series+" "), 64)
			return v
		}
	}
	return 0
}
