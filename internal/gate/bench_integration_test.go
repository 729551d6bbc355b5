//go:build integration

package gate_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
	"github.com/lastcall-dev/lastcall/internal/gate"
)

// BenchmarkGate1000CanariesAt100RPS is issue 12's gate target: with 1,000
// canaries, each with its gate run (half still running, half done), the
// gate answers Flagger's checks sent at 100 req/s, open loop (each request
// at its scheduled time, latency counted from then), with p99 under 10 ms.
// flagger-loadtester's /gate/check for the same 1,000 canaries is measured
// at the same rate in the same run. Run with -benchtime 1x;
// LASTCALL_BENCH_DURATION sets each round's length (default 30 s).
func BenchmarkGate1000CanariesAt100RPS(b *testing.B) {
	const canaries, rate = 1000, 100
	length := 30 * time.Second
	if v := os.Getenv("LASTCALL_BENCH_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatal(err)
		}
		length = d
	}
	env := clustertest.New(b)
	c := adminClient(b)
	lcURL, _ := startServerProcess(b)
	lt, _ := startLoadtester(b)
	ctx := context.Background()

	bodies := make([][]byte, canaries)
	for i := range canaries {
		p := gate.Payload{Name: fmt.Sprintf("app-%d", i), Namespace: env.Namespace, Checksum: "rev1"}
		bodies[i] = []byte(fmt.Sprintf(`{"name":%q,"namespace":%q,"phase":"Promoting","checksum":"rev1","metadata":{"type":"confirm-promotion"}}`, p.Name, p.Namespace))
		r := &v1alpha1.TerminationRun{
			ObjectMeta: metav1.ObjectMeta{Name: gate.RunName(p, gate.HookConfirmPromotion), Namespace: env.Namespace},
			Spec: v1alpha1.TerminationRunSpec{PolicyRef: v1alpha1.PolicyRef{Name: "drain"}, Pods: []v1alpha1.PodRef{{Name: p.Name + "-0"}},
				Trigger: v1alpha1.Trigger{Source: v1alpha1.TriggerGate, Canary: &v1alpha1.CanaryRef{Name: p.Name, Namespace: p.Namespace, Checksum: "rev1", HookType: string(gate.HookConfirmPromotion)}}},
		}
		if err := c.Create(ctx, r); err != nil {
			b.Fatal(err)
		}
		r.Status.Phase, r.Status.PodsTotal = v1alpha1.RunRunning, 1
		if i%2 == 0 {
			r.Status.Phase, r.Status.PodsDone = v1alpha1.RunSucceeded, 1
			meta.SetStatusCondition(&r.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionComplete, Status: metav1.ConditionTrue, Reason: "Succeeded"})
		}
		if err := c.Status().Update(ctx, r); err != nil {
			b.Fatal(err)
		}
		if got := post(b, lt+"/gate/open", "", bodies[i]); got.code != http.StatusAccepted {
			b.Fatalf("open the loadtester's gate: %v", got)
		}
	}
	until(b, 30*time.Second, "the server's cache to hold every run", func() answer {
		return post(b, lcURL+"/flagger/gate", "", bodies[canaries-2])
	}, func(a answer) bool { return a.code == http.StatusOK })

	var report bytes.Buffer
	results := map[string][]time.Duration{}
	b.ResetTimer()
	for round := range 2 {
		for _, tg := range []struct{ name, url string }{
			{"lastcall_flagger_gate", lcURL + "/flagger/gate"},
			{"loadtester_gate_check", lt + "/gate/check"},
		} {
			lat, failed := openLoop(tg.url, bodies, rate, length)
			if failed > 0 {
				b.Fatalf("%s: %d requests failed or got an unexpected status", tg.name, failed)
			}
			results[tg.name] = append(results[tg.name], lat...)
			fmt.Fprintf(&report, "round %d %-22s %d requests at %d/s: p50 %s p99 %s max %s\n", round+1, tg.name, len(lat), rate,
				pct(lat, 50), pct(lat, 99), slices.Max(lat))
		}
	}
	b.StopTimer()
	fmt.Print(report.String())
	for name, lat := range results {
		b.ReportMetric(float64(pct(lat, 50).Microseconds())/1e3, name+"_p50_ms")
		b.ReportMetric(float64(pct(lat, 99).Microseconds())/1e3, name+"_p99_ms")
	}
	if p99 := pct(results["lastcall_flagger_gate"], 99); p99 >= 10*time.Millisecond {
		b.Errorf("lastcall /flagger/gate p99 %s, target under 10 ms", p99)
	}
}

// openLoop sends POSTs of random bodies at rate per second for length, each
// at its scheduled time whatever the ones before it are doing, and returns
// each request's latency from its scheduled time to the end of its answer,
// and how many failed (no answer, or neither 200 nor 403).
func openLoop(url string, bodies [][]byte, rate int, length time.Duration) ([]time.Duration, int) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	n := int(length.Seconds()) * rate
	lat := make([]time.Duration, n)
	var failed sync.Map
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		at := start.Add(time.Duration(i) * time.Second / time.Duration(rate))
		time.Sleep(time.Until(at))
		body := bodies[rand.IntN(len(bodies))]
		wg.Go(func() {
			resp, err := client.Post(url, "application/json", bytes.NewReader(body))
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			lat[i] = time.Since(at)
			if err != nil || (resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusForbidden) {
				failed.Store(i, true)
			}
		})
	}
	wg.Wait()
	count := 0
	failed.Range(func(any, any) bool { count++; return true })
	return lat, count
}

func pct(xs []time.Duration, p int) time.Duration {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}
