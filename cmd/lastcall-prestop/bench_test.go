package main

import (
	"debug/elf"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"
)

// latencyRuns: 50 for the test, more for the numbers in docs/benchmarks.md
// (go test -run Latency -v ./cmd/lastcall-prestop/ -args -latency-runs=300).
var latencyRuns = flag.Int("latency-runs", 50, "start-to-first-request runs of the hook and of the baseline")

// Targets for the helper copied into app images.
const (
	maxBinaryBytes     = 15 << 20
	targetFirstRequest = 20 * time.Millisecond
)

func TestBinaryIsSmallAndStatic(t *testing.T) {
	fi, err := os.Stat(bins.prestop)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("lastcall-prestop: %.1f MiB (CGO_ENABLED=0, -trimpath -ldflags '-s -w'; target ≤ %d MiB)", float64(fi.Size())/(1<<20), maxBinaryBytes>>20)
	if fi.Size() > maxBinaryBytes {
		t.Errorf("%d bytes, over the %d MiB target", fi.Size(), maxBinaryBytes>>20)
	}
	// Static: no program interpreter (ld.so) requested.
	f, err := elf.Open(bins.prestop)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary is dynamically linked (PT_INTERP)")
		}
	}
}

// startToFirstRequest runs argv (with the URL appended) and returns how long
// until the server saw its first request (what the hook costs before it does
// anything useful) and the CPU time the whole process used.
func startToFirstRequest(tb testing.TB, argv []string, url string, arrived <-chan time.Time) (latency, cpu time.Duration) {
	tb.Helper()
	cmd := exec.Command(argv[0], append(argv[1:], url)...)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	var at time.Time
	select {
	case at = <-arrived:
	case <-time.After(10 * time.Second):
		tb.Fatalf("no request from %s", argv[0])
	}
	if err := cmd.Wait(); err != nil {
		tb.Fatalf("%s: %v", argv[0], err)
	}
	return at.Sub(start), cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
}

// hookArgv is the hook with only a drain step; the drain URL goes last.
func hookArgv() []string {
	return []string{bins.prestop, "--budget=5s", "--reserve=1s", "--console=none",
		"--termination-message-path=none", "--pod=p", "--namespace=n", "--drain-url"}
}

func drainServer(tb testing.TB) (string, <-chan time.Time) {
	arrived := make(chan time.Time, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- time.Now()
		w.WriteHeader(http.StatusNoContent)
	}))
	tb.Cleanup(srv.Close)
	return srv.URL + "/drain", arrived
}

// The hook's start-to-first-request is measured next to a baseline, the
// smallest static Go binary that POSTs once, run alternately so both see
// the same machine load. Wall-clock latency on a loaded 2-core machine is
// mostly the machine's (reported against the target); CPU time is the
// process's own and is what the assertion compares.
func TestStartToFirstRequestLatency(t *testing.T) {
	url, arrived := drainServer(t)
	runs := *latencyRuns
	hook, base := make([]time.Duration, runs), make([]time.Duration, runs)
	hookCPU, baseCPU := make([]time.Duration, runs), make([]time.Duration, runs)
	for i := range runs {
		hook[i], hookCPU[i] = startToFirstRequest(t, hookArgv(), url, arrived)
		base[i], baseCPU[i] = startToFirstRequest(t, []string{bins.firstrequest}, url, arrived)
	}
	hm, h90, h99 := percentiles(hook)
	bm, b90, b99 := percentiles(base)
	hc, _, _ := percentiles(hookCPU)
	bc, _, _ := percentiles(baseCPU)
	t.Logf("start → first request, %d runs each: lastcall-prestop median %s p90 %s p99 %s (min %s, CPU %s); baseline Go binary median %s p90 %s p99 %s (min %s, CPU %s); target median ≤ %s",
		runs, hm, h90, h99, slices.Min(hook).Round(10*time.Microsecond), hc, bm, b90, b99, slices.Min(base).Round(10*time.Microsecond), bc, targetFirstRequest)
	// Heavy imports (client-go's init, a cloud SDK) would show here.
	if hc > bc*3/2+2*time.Millisecond {
		t.Errorf("the hook used %s of CPU per run, the baseline %s", hc, bc)
	}
}

func percentiles(d []time.Duration) (median, p90, p99 time.Duration) {
	s := slices.Sorted(slices.Values(d))
	at := func(q int) time.Duration { return s[len(s)*q/100].Round(10 * time.Microsecond) }
	return at(50), at(90), at(99)
}

func BenchmarkStartToFirstRequest(b *testing.B) {
	url, arrived := drainServer(b)
	var total time.Duration
	for b.Loop() {
		d, _ := startToFirstRequest(b, hookArgv(), url, arrived)
		total += d
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N)/1000, "ms/first-request")
}
