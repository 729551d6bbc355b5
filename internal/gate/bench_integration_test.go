//go:build integration

package gate_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
)

// wrkResult is what the Lua done() hook below prints.
type wrkResult struct {
	Requests     int64 `json:"requests"`
	DurationUS   int64 `json:"duration_us"`
	StatusErrors int64 `json:"status_errors"`
	SocketErrors int64 `json:"socket_errors"`
	P50US        int64 `json:"p50_us"`
	P99US        int64 `json:"p99_us"`
}

func (r wrkResult) rps() float64 { return float64(r.Requests) / (float64(r.DurationUS) / 1e6) }

// wrkScript POSTs body as JSON and prints a summary as one JSON line.
const wrkScript = `wrk.method = "POST"
wrk.body = %s
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests":%%d,"duration_us":%%d,"status_errors":%%d,"socket_errors":%%d,"p50_us":%%d,"p99_us":%%d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
`

// benchSettings are the client settings every target gets: those of the
// loadtester measurement in DESIGN-flagger.md (wrk -t2 -c32).
type benchSettings struct {
	threads, conns int
	duration       time.Duration
	rounds         int
}

func settingsFromEnv(b *testing.B) benchSettings {
	s := benchSettings{threads: 2, conns: 32, duration: 10 * time.Second, rounds: 3}
	if v := os.Getenv("LASTCALL_BENCH_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatal(err)
		}
		s.duration = d
	}
	if v := os.Getenv("LASTCALL_BENCH_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatal(err)
		}
		s.rounds = n
	}
	return s
}

func runWrk(b *testing.B, s benchSettings, url string, body []byte) wrkResult {
	b.Helper()
	quoted, err := json.Marshal(string(body)) // a JSON string is a valid Lua string here: ASCII, no control characters
	if err != nil {
		b.Fatal(err)
	}
	script := filepath.Join(b.TempDir(), "post.lua")
	if err := os.WriteFile(script, []byte(fmt.Sprintf(wrkScript, quoted)), 0o644); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command("wrk", "-t", strconv.Itoa(s.threads), "-c", strconv.Itoa(s.conns),
		"-d", fmt.Sprintf("%ds", int(s.duration.Seconds())), "-s", script, url)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		b.Fatalf("wrk %s: %v\n%s%s", url, err, out.String(), errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var r wrkResult
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		b.Fatalf("wrk output: %v\n%s", err, out.String())
	}
	if r.SocketErrors > 0 || r.Requests == 0 {
		b.Fatalf("wrk %s: %d requests, %d socket errors", url, r.Requests, r.SocketErrors)
	}
	return r
}

// BenchmarkGateVsLoadtester loads, with wrk on loopback and the same client
// settings, flagger-loadtester's /gate/check, lastcall's /gate/check and
// lastcall's /flagger/gate for a run that has Succeeded, in interleaved
// rounds, and reports each one's throughput and latency. The targets are a
// throughput ratio of at least 1 and a p99 no worse than the loadtester's,
// each the median over rounds of the ratio within a round.
// Run with -benchtime 1x; LASTCALL_BENCH_DURATION and LASTCALL_BENCH_ROUNDS
// change the length (default 3 rounds of 10 s per target); the medians are
// reported.
func BenchmarkGateVsLoadtester(b *testing.B) {
	if _, err := exec.LookPath("wrk"); err != nil {
		b.Fatal("wrk is not installed: run `make deps` (Debian's wrk package)")
	}
	settings := settingsFromEnv(b)
	env := clustertest.New(b)
	c := adminClient(b)
	// LASTCALL_BENCH_PPROF=host:port serves the server's pprof there, to
	// profile it while wrk runs (go tool pprof http://host:port/debug/pprof/profile).
	var extra []string
	if addr := os.Getenv("LASTCALL_BENCH_PPROF"); addr != "" {
		extra = append(extra, "--pprof-addr", addr)
	}
	lcURL, lcPid := startServerProcess(b, extra...)
	lt, ltPid := startLoadtester(b)

	app := newDrainApp()
	close(app.release)
	canary(b, c, env.Namespace, "web", "web", 1, app)
	drainPolicy(b, c, env.Namespace, "drain-web", "web", "")
	check := []byte(fmt.Sprintf(`{"name":"web","namespace":%q,"phase":"Progressing","checksum":"6d8f7b9c5"}`, env.Namespace))
	for _, url := range []string{lcURL, lt} {
		if got := post(b, url+"/gate/open", adminToken, check); got.code != http.StatusAccepted {
			b.Fatalf("open gate at %s: %v", url, got)
		}
	}
	until(b, 30*time.Second, "the gate run to succeed", func() answer {
		return post(b, lcURL+"/flagger/gate", "", check)
	}, func(a answer) bool { return a.code == http.StatusOK })

	// pid is the process whose CPU time a target costs.
	targets := []struct {
		name, url string
		pid       int
	}{
		{"loadtester_gate_check", lt + "/gate/check", ltPid},
		{"lastcall_gate_check", lcURL + "/gate/check", lcPid},
		{"lastcall_flagger_gate", lcURL + "/flagger/gate", lcPid},
	}
	if only := os.Getenv("LASTCALL_BENCH_ONLY"); only != "" { // for profiling one target
		for i := range targets {
			if targets[i].name == only {
				targets = targets[i : i+1]
				break
			}
		}
	}
	results := map[string][]wrkResult{}
	var report strings.Builder    // printed, not logged: testing keeps only a benchmark log's first 10 lines
	cpu := map[string][]float64{} // server CPU µs per request, per round
	b.ResetTimer()
	for round := 0; round < settings.rounds; round++ {
		// Rotate the order, so that load from elsewhere on the machine
		// does not always fall on the same target.
		for k := range targets {
			tg := targets[(round+k)%len(targets)]
			before := processCPU(b, tg.pid)
			r := runWrk(b, settings, tg.url, check)
			used := processCPU(b, tg.pid) - before
			if r.StatusErrors > 0 {
				b.Fatalf("%s: %d answers were not 2xx", tg.name, r.StatusErrors)
			}
			perReq := float64(used.Microseconds()) / float64(r.Requests)
			cpu[tg.name] = append(cpu[tg.name], perReq)
			fmt.Fprintf(&report, "round %d %-22s %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms  server CPU %5.1f µs/req\n",
				round+1, tg.name, r.rps(), float64(r.P50US)/1e3, float64(r.P99US)/1e3, perReq)
			results[tg.name] = append(results[tg.name], r)
		}
	}
	b.StopTimer()

	for _, tg := range targets {
		var rps, p99 []float64
		for _, r := range results[tg.name] {
			rps = append(rps, r.rps())
			p99 = append(p99, float64(r.P99US)/1e3)
		}
		b.ReportMetric(median(rps), tg.name+"_req/s")
		b.ReportMetric(median(p99), tg.name+"_p99_ms")
		b.ReportMetric(median(cpu[tg.name]), tg.name+"_cpu_µs/req")
	}
	defer func() { fmt.Print(report.String()) }()
	base, ok := results["loadtester_gate_check"]
	if !ok {
		return
	}
	// Compare within each round, where the targets ran back to back, then
	// take the median over rounds: load from elsewhere drifts between rounds.
	for _, name := range []string{"lastcall_gate_check", "lastcall_flagger_gate"} {
		var thr, lat []float64
		for i, r := range results[name] {
			thr = append(thr, r.rps()/base[i].rps())
			lat = append(lat, float64(r.P99US)/float64(base[i].P99US))
		}
		ratio, p99 := median(thr), median(lat)
		b.ReportMetric(ratio, name+"_throughput_ratio")
		b.ReportMetric(p99, name+"_p99_ratio")
		fmt.Fprintf(&report, "%s: %.2f× the loadtester's throughput, %.2f× its p99 (medians of per-round ratios)\n", name, ratio, p99)
		if ratio < 1 || p99 > 1 {
			b.Errorf("%s misses the target (throughput ratio ≥ 1, p99 ratio ≤ 1)", name)
		}
	}
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// processCPU is a process's user+system CPU time so far, from
// /proc/<pid>/stat (in clock ticks of 10 ms, Linux's USER_HZ).
func processCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The command name may hold spaces; the fields after it do not.
	fields := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("parse /proc/%d/stat: %v %v", pid, err1, err2)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}
