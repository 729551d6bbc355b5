//go:build integration

package run_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
)

// BenchmarkRun100PodsSlowDrain: 100 pods whose drain endpoint takes 1 s,
// concurrency 100; the time from creating the run to its Complete condition.
func BenchmarkRun100PodsSlowDrain(b *testing.B) {
	env := clustertest.New(b)
	c := startController(b)
	newFleet(b, env, "bench", 100, func(string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(time.Second)
			w.WriteHeader(http.StatusOK)
		})
	})
	policy := createPolicy(b, c, env.Namespace, &v1alpha1.TerminationPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "bench"},
		Spec: v1alpha1.TerminationPolicySpec{
			Selector:    &metav1.LabelSelector{MatchLabels: map[string]string{"app": "bench"}},
			Concurrency: 100,
			Steps:       []v1alpha1.Step{{Name: "drain", HTTP: &v1alpha1.HTTPAction{Endpoint: v1alpha1.Endpoint{Port: 8080, Path: "/drain"}}}},
		},
	})
	b.ResetTimer()
	var total time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		r := startRunB(b, c, policy)
		got := waitComplete(b, c, env.Namespace, r.Name, time.Minute)
		total += time.Since(start)
		if got.Status.Phase != v1alpha1.RunSucceeded {
			b.Fatalf("run %s: %s", got.Status.Phase, got.Status.Message)
		}
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/run")
}

// BenchmarkRunStartLatency: create a run of one pod → first step request
// received by the pod.
func BenchmarkRunStartLatency(b *testing.B) {
	env := clustertest.New(b)
	c := startController(b)
	hit := make(chan time.Time, 1)
	newFleet(b, env, "lat", 1, func(string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case hit <- time.Now():
			default:
			}
		})
	})
	policy := createPolicy(b, c, env.Namespace, &v1alpha1.TerminationPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "lat"},
		Spec: v1alpha1.TerminationPolicySpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "lat"}},
			Steps:    []v1alpha1.Step{{Name: "drain", HTTP: &v1alpha1.HTTPAction{Endpoint: v1alpha1.Endpoint{Port: 8080, Path: "/drain"}}}},
		},
	})
	// The pods are resolved before the clock starts: a LIST through a
	// direct client is a consistent read, which the API server serves from
	// its watch cache only once the cache has caught up with etcd, and it
	// checks that every 100 ms. Right after the previous run's status
	// writes that wait is most of the 100 ms once measured here.
	pods := runPods(b, c, policy)
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		createRunB(b, c, policy, pods)
		select {
		case at := <-hit:
			lat = append(lat, at.Sub(start))
		case <-time.After(30 * time.Second):
			b.Fatal("no step request within 30 s")
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkControllerRSS10kPods1kPolicies measures a real `lastcall server`
// process's resident memory once its caches hold 10k pods and 1k policies.
func BenchmarkControllerRSS10kPods1kPolicies(b *testing.B) {
	env := clustertest.New(b)
	c, err := client.New(clustertest.Cluster().Config(), client.Options{Scheme: schemeForTests()})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	sem := make(chan struct{}, 32)
	errs := make(chan error, 11000)
	for i := 0; i < 11000; i++ {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			var obj client.Object
			if i < 1000 {
				obj = drainPolicy(fmt.Sprintf("p-%d", i), fmt.Sprintf("app-%d", i), 10)
			} else {
				obj = &corev1.Pod{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("pod-%d", i), Labels: map[string]string{"app": fmt.Sprintf("app-%d", i%1000)}},
					Spec: corev1.PodSpec{NodeName: "kwok-node-0", Containers: []corev1.Container{{Name: "app", Image: "example.invalid/app:1",
						Env: []corev1.EnvVar{{Name: "A", Value: strings.Repeat("x", 64)}}}}},
				}
			}
			obj.SetNamespace(env.Namespace)
			if err := c.Create(ctx, obj); err != nil {
				errs <- err
			}
		}()
	}
	for i := 0; i < cap(sem); i++ {
		sem <- struct{}{}
	}
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	health := freePort(b)
	bin, err := buildLastcall()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "server", "--kubeconfig", clustertest.Cluster().KubeconfigPath(), "--state-url", "mem://", "--leader-elect=false",
		"--http-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--health-addr", "127.0.0.1:"+strconv.Itoa(health), "--log-level", "error")
	// LASTCALL_BENCH_SERVER_ARGS adds server flags.
	cmd.Args = append(cmd.Args, strings.Fields(os.Getenv("LASTCALL_BENCH_SERVER_ARGS"))...)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	clustertest.Eventually(b, 2*time.Minute, func(ctx context.Context) (bool, error) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", health))
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	}, "the server's caches to sync")
	time.Sleep(5 * time.Second) // let the process settle after the initial lists
	rss, hwm := procMemory(b, cmd.Process.Pid)
	b.ReportMetric(rss, "RSS-MiB")
	b.ReportMetric(hwm, "peakRSS-MiB")
}

func startRunB(b *testing.B, c client.Client, policy *v1alpha1.TerminationPolicy) *v1alpha1.TerminationRun {
	b.Helper()
	return createRunB(b, c, policy, runPods(b, c, policy))
}

func runPods(b *testing.B, c client.Client, policy *v1alpha1.TerminationPolicy) []v1alpha1.PodRef {
	b.Helper()
	var pods corev1.PodList
	if err := c.List(context.Background(), &pods, client.InNamespace(policy.Namespace), client.MatchingLabels(policy.Spec.Selector.MatchLabels)); err != nil {
		b.Fatal(err)
	}
	refs := make([]v1alpha1.PodRef, 0, len(pods.Items))
	for _, p := range pods.Items {
		refs = append(refs, v1alpha1.PodRef{Name: p.Name, UID: p.UID})
	}
	return refs
}

func createRunB(b *testing.B, c client.Client, policy *v1alpha1.TerminationPolicy, pods []v1alpha1.PodRef) *v1alpha1.TerminationRun {
	b.Helper()
	r := &v1alpha1.TerminationRun{ObjectMeta: metav1.ObjectMeta{GenerateName: policy.Name + "-", Namespace: policy.Namespace},
		Spec: v1alpha1.TerminationRunSpec{PolicyRef: v1alpha1.PolicyRef{Name: policy.Name}, Pods: pods}}
	if err := c.Create(context.Background(), r); err != nil {
		b.Fatal(err)
	}
	return r
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func procMemory(t testing.TB, pid int) (rss, hwm float64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb / 1024
		case "VmHWM:":
			hwm = kb / 1024
		}
	}
	return rss, hwm
}
