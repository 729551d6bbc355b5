// The soak runs in `make unit` only: it needs no cluster, and its drain
// deadlines are real time, which the integration pass (control planes and
// the Flagger scenario on the same cores) makes noisy for no extra proof.
// It terminates through internal/kubeletsim, not the real node, because its
// sub-second budgets are ones no pod can have; test/realnode proves the
// helper on the real kubelet.

//go:build !integration

package main

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/utils/clock"

	"github.com/lastcall-dev/lastcall/internal/auth"
	"github.com/lastcall-dev/lastcall/internal/kubeletsim"
	"github.com/lastcall-dev/lastcall/internal/state"
)

const soakToken = "soak-admin-token"

// soakStateServer is the real state API on a file:// store, behind a proxy
// that delays every PUT like a remote blob store and answers 503 to every
// fifth, so retries happen.
func soakStateServer(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "admin-token")
	if err := os.WriteFile(tokenFile, []byte(soakToken), 0o600); err != nil {
		t.Fatal(err)
	}
	store, err := state.OpenStore(context.Background(), "file://"+filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	authn, err := auth.NewAuthenticator(auth.AuthenticatorOptions{TokenFile: tokenFile})
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv := state.NewServer(store, authn, nil, state.Options{Logger: quiet})
	mux := http.NewServeMux()
	srv.Register(mux)
	var puts atomic.Int32
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			if puts.Add(1)%5 == 0 {
				http.Error(w, `{"error":"injected","reason":"Unavailable"}`, http.StatusServiceUnavailable)
				return
			}
			time.Sleep(40 * time.Millisecond) // a remote store's latency
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	return hs.URL
}

type soakRun struct {
	budget             time.Duration
	written, restored  int // records in the dying pod, and in its replacement
	drained, saved     bool
	summary            string
	hookFailed, killed bool
	hook               time.Duration // as the kubelet measured it, process start included
}

// TestSoakNoRecordLostWhenTheBudgetAllowsTheUpload is the end-to-end claim:
// an app writing continuously is terminated 50 times through the kubelet
// simulator with random grace budgets, with lastcall-prestop as its preStop
// hook and lastcall-prestop restore before each replacement starts. Every
// run whose budget let the hook drain and upload loses nothing; every other
// run says in its termination message which step was skipped or failed and
// why, and exits non-zero (FailedPreStopHook).
func TestSoakNoRecordLostWhenTheBudgetAllowsTheUpload(t *testing.T) {
	const runs = 50
	const reserve = 300 * time.Millisecond
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	stateURL := soakStateServer(t)
	root := t.TempDir()
	tokenFile := filepath.Join(root, "token")
	if err := os.WriteFile(tokenFile, []byte(soakToken), 0o600); err != nil {
		t.Fatal(err)
	}

	var results []soakRun
	// What a replacement may restore: the latest confirmed upload, or a
	// later one whose save failed after it began sending: the hook may have
	// run out of time waiting for the answer ("outcome unknown"), or been
	// cut off while the last bytes were already in the socket buffer, and
	// the server committed the version anyway. Newer is never a loss.
	// The check is the invariant: nothing confirmed is lost. A
	// restore newer than the last confirmed upload is not a loss (a save of
	// unknown outcome that landed); it is counted and reported, because a
	// few runs restored more records than the previous pod's final count
	// and that is not yet explained (see docs/prestop.md).
	lastSaved, maybe, newer := 0, map[int]bool{}, 0
	check := func(who string, restored int) {
		switch {
		case restored == lastSaved:
		case maybe[restored]:
			lastSaved = restored
		case restored > lastSaved:
			newer++
			t.Logf("%s: restored %d records, newer than the last confirmed upload (%d)", who, restored, lastSaved)
			lastSaved = restored
		default:
			t.Errorf("%s: restored %d records, the last confirmed upload held %d: records lost", who, restored, lastSaved)
		}
		clear(maybe)
	}
	for i := range runs {
		// A third of the budgets are short: around the reserve and below.
		budget := time.Duration(200+rng.IntN(2800)) * time.Millisecond
		if i%3 == 0 {
			budget = time.Duration(200+rng.IntN(400)) * time.Millisecond
		}
		r := soakOne(t, i, root, stateURL, tokenFile, budget, reserve)
		check(fmt.Sprintf("run %d", i), r.restored)
		switch {
		case r.saved:
			lastSaved = r.written
			clear(maybe)
		case stepLine(r.summary, "save", "failed"):
			maybe[r.written] = true
		}
		results = append(results, r)
	}
	// The final replacement's restore tells what the last run lost.
	final := restoreGeneration(t, filepath.Join(root, "final"), stateURL, tokenFile)
	check("final restore", final)
	report(t, results, final, reserve)
	t.Logf("soak: %d restores newer than the last confirmed upload", newer)
}

func soakOne(t *testing.T, i int, root, stateURL, tokenFile string, budget, reserve time.Duration) soakRun {
	t.Helper()
	r := soakRun{budget: budget}
	gen := filepath.Join(root, fmt.Sprintf("gen-%02d", i))
	data := filepath.Join(gen, "data")
	r.restored = restoreGeneration(t, data, stateURL, tokenFile)

	addr := freeAddr(t)
	termLog, console, ready := filepath.Join(gen, "termination-log"), filepath.Join(gen, "console"), filepath.Join(gen, "ready")
	if err := os.WriteFile(console, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	spec := kubeletsim.Spec{
		Command: []string{bins.soakapp},
		Env:     []string{"APP_DATA=" + data, "APP_ADDR=" + addr, "APP_READY=" + ready},
		PreStop: []string{bins.prestop,
			"--budget", budget.String(), "--reserve", reserve.String(),
			"--drain-url", "http://" + addr + "/drain",
			"--port", addr[strings.LastIndex(addr, ":")+1:], "--optional", "wait",
			"--save", data, "--state-url", stateURL, "--key", "soak",
			"--namespace", "soak", "--pod", fmt.Sprintf("gen-%02d", i), "--token-file", tokenFile,
			"--termination-message-path", termLog, "--console", console},
		TerminationMessagePath: termLog,
		Stderr:                 t.Output(),
	}
	c, err := kubeletsim.Start(spec, clock.RealClock{})
	if err != nil {
		t.Fatal(err)
	}
	poll(t, func() bool { _, err := os.Stat(ready); return err == nil }, "app %d ready", i)
	// Let it write a few dozen new records.
	poll(t, func() bool { return countRecords(t, filepath.Join(data, "records.log")) >= r.restored+40 }, "app %d writing", i)
	// A request in flight when the hook starts, for the wait step.
	slow := make(chan struct{})
	go func() {
		defer close(slow)
		if resp, err := http.Get("http://" + addr + "/slow"); err == nil {
			resp.Body.Close()
		}
	}()
	term, err := c.Terminate(context.Background(), budget)
	if err != nil {
		t.Fatal(err)
	}
	<-slow
	r.written = countRecords(t, filepath.Join(data, "records.log"))
	r.summary = term.Message
	r.hookFailed, r.killed, r.hook = term.HookErr != nil, term.Killed, term.HookDuration
	// The hook's own clock must respect start + budget − reserve. Process
	// start and exit come on top (the reserve absorbs them) and are only
	// reported: a loaded machine can stretch them to hundreds of ms.
	if took := hookElapsed(t, r.summary); took > max(0, budget-reserve)+100*time.Millisecond {
		t.Errorf("run %d: the hook took %s with %s − %s for its steps:\n%s", i, took, budget, reserve, r.summary)
	}
	r.drained = stepLine(r.summary, "drain", "done")
	r.saved = stepLine(r.summary, "save", "done")

	// What a person would see must be there, and consistent.
	if !strings.HasPrefix(r.summary, "lastcall prestop soak/gen-") {
		t.Fatalf("run %d: no summary in the termination message:\n%q", i, r.summary)
	}
	if b, _ := os.ReadFile(console); string(b) != r.summary {
		t.Errorf("run %d: console and termination message differ", i)
	}
	switch {
	case r.drained && r.saved:
		if r.hookFailed {
			t.Errorf("run %d: everything done but the hook failed:\n%s", i, r.summary)
		}
	case !r.saved:
		if !r.hookFailed {
			t.Errorf("run %d: save not done but the hook exited 0:\n%s", i, r.summary)
		}
		if !stepLine(r.summary, "save", "skipped", "no budget") && !stepLine(r.summary, "save", "failed") {
			t.Errorf("run %d: the summary does not say why save was not done:\n%s", i, r.summary)
		}
	}
	// Plenty: the drain step gets a quarter of the time left (the app's
	// drain is an fsync), at least 500 ms; with a second, fsyncs on this
	// shared 2-core CI machine, busy with other packages' etcds, overran
	// its 250 ms now and then.
	if budget > reserve+2*time.Second && !(r.drained && r.saved) {
		t.Errorf("run %d: budget %s should be plenty:\n%s", i, budget, r.summary)
	}
	return r
}

// hookElapsed reads "in 162ms" off the summary's first line.
func hookElapsed(t *testing.T, summary string) time.Duration {
	t.Helper()
	head, _, _ := strings.Cut(summary, "\n")
	d, err := time.ParseDuration(head[strings.LastIndex(head, " ")+1:])
	if err != nil {
		t.Fatalf("summary head %q: %v", head, err)
	}
	return d
}

// restoreGeneration runs lastcall-prestop restore into dir and counts what
// it restored.
func restoreGeneration(t *testing.T, dir, stateURL, tokenFile string) int {
	t.Helper()
	out, err := exec.Command(bins.prestop, "restore", "--state-url", stateURL, "--key", "soak", "--namespace", "soak",
		"--pod", "next", "--token-file", tokenFile, "--dir", dir, "--timeout", "10s").CombinedOutput()
	if err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	if !strings.HasPrefix(string(out), "lastcall restore soak/soak: ") {
		t.Errorf("restore said %q", out)
	}
	if testing.Verbose() && strings.Contains(dir, "final") {
		t.Logf("soak: the final restore said: %s", out)
	}
	return countRecords(t, filepath.Join(dir, "records.log"))
}

// stepLine reports whether summary has the step's line with that status
// and, if given, that text.
func stepLine(summary, step, status string, text ...string) bool {
	for _, l := range strings.Split(summary, "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == step && f[1] == status {
			return len(text) == 0 || strings.Contains(l, text[0])
		}
	}
	return false
}

func report(t *testing.T, runs []soakRun, final int, reserve time.Duration) {
	t.Helper()
	var full, partial, none, written, lost, lostFull, killed, failedHooks, retried, unknown int
	var overshoot time.Duration // worst hook end past budget − reserve, as the kubelet sees it
	examples := map[string]string{}
	for i, r := range runs {
		next := final
		if i+1 < len(runs) {
			next = runs[i+1].restored
		}
		gone := r.written - next
		written += r.written - r.restored
		lost += gone
		kind := "partial"
		switch {
		case r.drained && r.saved:
			kind = "full"
			full++
			lostFull += gone
		case r.budget <= reserve:
			kind = "none"
			none++
		default:
			partial++
		}
		if _, ok := examples[kind]; !ok {
			examples[kind] = fmt.Sprintf("run %d, %d records lost:\n%s", i, gone, r.summary)
		}
		if r.killed {
			killed++
		}
		overshoot = max(overshoot, r.hook-max(0, r.budget-reserve))

		if r.hookFailed {
			failedHooks++
		}
		if strings.Contains(r.summary, " attempts)") {
			retried++
		}
		if stepLine(r.summary, "save", "failed", "outcome unknown") {
			unknown++
		}
	}
	if lostFull != 0 {
		t.Errorf("%d records lost in runs that drained and saved", lostFull)
	}
	t.Logf("soak: %d runs: %d drained and saved (%d records lost), %d with budget ≤ reserve %s (all steps skipped), %d with too little budget for everything",
		len(runs), full, lostFull, none, reserve, partial)
	t.Logf("soak: %d FailedPreStopHook (hook exit ≠ 0), %d runs retried a 503, %d saves of unknown outcome, %d SIGKILLed; hooks ended at most %s past budget − reserve (process start and exit included)",
		failedHooks, retried, unknown, killed, overshoot.Round(time.Millisecond))
	t.Logf("soak: %d records written, %d restored by the last replacement, %d lost, all in runs whose summary named the skipped or failed save", written, final, lost)
	for _, kind := range []string{"full", "none", "partial"} {
		if ex, ok := examples[kind]; ok {
			t.Logf("soak: example, %s", ex)
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func poll(t *testing.T, cond func() bool, what string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for "+what, args...)
		}
		time.Sleep(5 * time.Millisecond) // poll interval
	}
}

// countRecords returns n when path holds the records 1..n in order, and
// fails t otherwise: a gap or a repeat is corruption, not loss.
func countRecords(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, err := strconv.Atoi(sc.Text()); err != nil || v != n+1 {
			t.Fatalf("%s: %q after record %d", path, sc.Text(), n)
		}
		n++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}
