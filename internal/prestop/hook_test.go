package prestop

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/utils/clock"
)

// appServer records POSTs to /drain and /run.
type appServer struct {
	mu    sync.Mutex
	calls []string
	runs  []RunRequest
	url   string
}

func newAppServer(t *testing.T) *appServer {
	t.Helper()
	a := &appServer{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /drain", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.calls = append(a.calls, "drain")
		a.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /run", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+testToken {
			http.Error(w, `{"error":"no token","reason":"Unauthorized"}`, http.StatusUnauthorized)
			return
		}
		var req RunRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		a.mu.Lock()
		a.calls = append(a.calls, "run")
		a.runs = append(a.runs, req)
		a.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	a.url = srv.URL
	return a
}

func (a *appServer) Calls() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.calls...)
}

func runHook(t *testing.T, cfg Config) (*Summary, string, error) {
	t.Helper()
	var out bytes.Buffer
	sum, err := NewHook(cfg, clock.RealClock{}, testLogger(t), &out).Run(context.Background())
	return sum, out.String(), err
}

func stepResult(t *testing.T, s *Summary, st Step) StepResult {
	t.Helper()
	for _, r := range s.Steps {
		if r.Step == st {
			return r
		}
	}
	t.Fatalf("no %s step in summary", st)
	return StepResult{}
}

func TestHookRunsEveryStepAndReportsEverywhere(t *testing.T) {
	env := newPodEnv(t)
	app := newAppServer(t)
	state, stateURL := newStateServer(t, nil)
	data := filepath.Join(env.dir, "data")
	writeFile(t, filepath.Join(data, "records.log"), "1\n2\n3\n")
	writeFile(t, filepath.Join(data, "sub", "index"), "idx")
	cfg := env.config()
	cfg.DrainURL = app.url + "/drain"
	cfg.Ports = []int{8080}
	cfg.Save = []string{data}
	cfg.StateURL = stateURL
	cfg.RunURL = app.url + "/run"
	cfg.Policy = "flush"

	sum, stdout, err := runHook(t, cfg)
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, stdout)
	}
	for _, st := range Steps {
		if r := stepResult(t, sum, st); r.Status != StatusDone || !r.Required {
			t.Errorf("%s: %s (required %v): %s", st, r.Status, r.Required, r.Detail)
		}
	}
	if got := app.Calls(); strings.Join(got, ",") != "drain,run" {
		t.Errorf("app saw %v, want drain then run", got)
	}
	if app.runs[0] != (RunRequest{Namespace: "shop", Pod: "web-0", Policy: "flush"}) {
		t.Errorf("run request %+v", app.runs[0])
	}
	versions := state.Versions("shop", "web-0")
	if len(versions) != 1 {
		t.Fatalf("%d versions saved, want 1", len(versions))
	}
	v := versions[0]
	if v.ContentType != contentTar || v.Pod != "web-0" || v.ChecksumFrom != "trailer" {
		t.Errorf("saved %s from pod %q, checksum from %q; want a tar from web-0 checked by trailer", v.ContentType, v.Pod, v.ChecksumFrom)
	}
	if r := stepResult(t, sum, StepSave); r.Bytes != int64(len(v.Data)) {
		t.Errorf("save reports %d bytes, server stored %d", r.Bytes, len(v.Data))
	}
	for name, got := range map[string]string{"stdout": stdout, "termination log": readFile(t, env.termLog), "console": readFile(t, env.console)} {
		if got != sum.String() {
			t.Errorf("%s has %q, want the summary", name, got)
		}
	}
	if !strings.HasPrefix(stdout, "lastcall prestop shop/web-0: OK") {
		t.Errorf("summary head: %q", stdout)
	}

	// What was saved restores to the same files.
	out := filepath.Join(t.TempDir(), "restored")
	res, err := NewRestorer(env.restoreConfig(stateURL, out), clock.RealClock{}, testLogger(t)).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Files != 2 || readFile(t, filepath.Join(out, "records.log")) != "1\n2\n3\n" || readFile(t, filepath.Join(out, "sub", "index")) != "idx" {
		t.Errorf("restored %d files: %s", res.Files, res)
	}
}

// Hooks are delivered at least once: a second run drains again (the app
// must accept that) and saves a second version; both succeed.
func TestHookTwiceSavesTwoVersions(t *testing.T) {
	env := newPodEnv(t)
	app := newAppServer(t)
	state, stateURL := newStateServer(t, nil)
	writeFile(t, filepath.Join(env.dir, "data", "f"), "x")
	cfg := env.config()
	cfg.DrainURL, cfg.StateURL, cfg.Save = app.url+"/drain", stateURL, []string{filepath.Join(env.dir, "data")}
	for i := 0; i < 2; i++ {
		if _, out, err := runHook(t, cfg); err != nil {
			t.Fatalf("run %d: %v\n%s", i+1, err, out)
		}
	}
	if n := len(state.Versions("shop", "web-0")); n != 2 {
		t.Errorf("%d versions, want 2", n)
	}
	if got := app.Calls(); len(got) != 2 {
		t.Errorf("app drained %d times, want 2", len(got))
	}
	if got := readFile(t, env.termLog); strings.Count(got, "lastcall prestop") != 1 {
		t.Errorf("termination log should hold the last summary only:\n%s", got)
	}
}

func TestHookWithoutBudgetSkipsEveryStepAndSaysWhy(t *testing.T) {
	env := newPodEnv(t)
	app := newAppServer(t)
	state, stateURL := newStateServer(t, nil)
	cfg := env.config()
	cfg.Budget, cfg.Reserve = time.Second, 2*time.Second
	cfg.DrainURL, cfg.StateURL, cfg.Save = app.url+"/drain", stateURL, []string{env.token}

	sum, out, err := runHook(t, cfg)
	if !errors.Is(err, ErrStepFailed) {
		t.Fatalf("err = %v, want ErrStepFailed", err)
	}
	for _, st := range []Step{StepDrain, StepSave} {
		r := stepResult(t, sum, st)
		if r.Status != StatusSkipped || !strings.Contains(r.Detail, "no budget: budget 1s − reserve 2s ≤ 0") {
			t.Errorf("%s: %s %q", st, r.Status, r.Detail)
		}
	}
	if len(app.Calls()) != 0 || len(state.Versions("shop", "web-0")) != 0 {
		t.Error("a step ran without budget")
	}
	if !strings.HasPrefix(out, "lastcall prestop shop/web-0: FAILED [drain save]") {
		t.Errorf("summary:\n%s", out)
	}
}

func TestHookRetriesServerErrorsButNotClientErrors(t *testing.T) {
	for _, tc := range []struct {
		name         string
		failStatus   int
		failReason   string
		failures     int32
		wantStatus   Status
		wantAttempts int
	}{
		{"503 twice then ok", http.StatusServiceUnavailable, "Injected", 2, StatusDone, 3},
		{"400 is final", http.StatusBadRequest, "Injected", 100, StatusFailed, 1},
		{"403 is final", http.StatusForbidden, "Injected", 100, StatusFailed, 1},
		// The bytes did not arrive as sent: another attempt may succeed.
		{"checksum mismatch once then ok", http.StatusBadRequest, "ChecksumMismatch", 1, StatusDone, 2},
		{"incomplete body once then ok", http.StatusBadRequest, "IncompleteBody", 1, StatusDone, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newPodEnv(t)
			var failed atomic.Int32
			state, stateURL := newStateServer(t, func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if failed.Add(1) <= tc.failures {
						w.WriteHeader(tc.failStatus)
						_, _ = w.Write([]byte(`{"error":"injected","reason":"` + tc.failReason + `"}`))
						return
					}
					next.ServeHTTP(w, r)
				})
			})
			cfg := env.config()
			cfg.StateURL, cfg.Save = stateURL, []string{env.token}
			sum, out, _ := runHook(t, cfg)
			r := stepResult(t, sum, StepSave)
			if r.Status != tc.wantStatus || r.Attempts != tc.wantAttempts {
				t.Fatalf("save %s after %d attempts, want %s after %d\n%s", r.Status, r.Attempts, tc.wantStatus, tc.wantAttempts, out)
			}
			if tc.wantStatus == StatusFailed && !strings.Contains(r.Detail, "Injected: injected") {
				t.Errorf("detail %q does not carry the server's error", r.Detail)
			}
			if want := map[Status]int{StatusDone: 1, StatusFailed: 0}[tc.wantStatus]; len(state.Versions("shop", "web-0")) != want {
				t.Errorf("%d versions, want %d", len(state.Versions("shop", "web-0")), want)
			}
		})
	}
}

// A state API that keeps failing costs no more than the budget: the save
// gives up at start + budget − reserve, and the summary says so.
func TestHookStopsRetryingAtTheDeadline(t *testing.T) {
	env := newPodEnv(t)
	_, stateURL := newStateServer(t, func(http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusBadGateway)
		})
	})
	cfg := env.config()
	cfg.Budget, cfg.Reserve = 3*time.Second, 2500*time.Millisecond
	cfg.StateURL, cfg.Save = stateURL, []string{env.token}
	start := time.Now()
	sum, out, err := runHook(t, cfg)
	elapsed := time.Since(start)
	if !errors.Is(err, ErrStepFailed) {
		t.Fatalf("err = %v", err)
	}
	// Steps end at +500ms; a loaded machine may add some, but never
	// anything near the 3s budget the reserve protects.
	if elapsed > 1500*time.Millisecond {
		t.Errorf("took %s, steps should end after 500ms", elapsed)
	}
	r := stepResult(t, sum, StepSave)
	if r.Status != StatusFailed || r.Attempts < 2 || !strings.Contains(r.Detail, "deadline exceeded") || !strings.Contains(r.Detail, "502") {
		t.Errorf("save: %s after %d attempts: %s\n%s", r.Status, r.Attempts, r.Detail, out)
	}
}

// The wait step may time out (here it is optional) without starving the
// save that follows.
func TestHookWaitTimeoutStillLeavesTimeToSave(t *testing.T) {
	env := newPodEnv(t)
	writeFile(t, env.tcp, "  sl  local_address rem_address   st\n   0: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000 0 0 1\n")
	state, stateURL := newStateServer(t, nil)
	cfg := env.config()
	cfg.Budget, cfg.Reserve = 3*time.Second, time.Second
	cfg.Ports, cfg.StateURL, cfg.Save = []int{8080}, stateURL, []string{env.token}
	cfg.Optional = []Step{StepWait}
	sum, out, err := runHook(t, cfg)
	if err != nil {
		t.Fatalf("err = %v (wait is optional)\n%s", err, out)
	}
	w := stepResult(t, sum, StepWait)
	if w.Status != StatusFailed || !strings.Contains(w.Detail, "1 connection(s) still established on :8080") || w.Duration > 1500*time.Millisecond {
		t.Errorf("wait: %s in %s: %s", w.Status, w.Duration, w.Detail)
	}
	if !strings.Contains(out, "[optional]") {
		t.Errorf("summary does not mark the optional failure:\n%s", out)
	}
	if stepResult(t, sum, StepSave).Status != StatusDone || len(state.Versions("shop", "web-0")) != 1 {
		t.Errorf("save did not happen after the wait timed out\n%s", out)
	}
}

func TestHookWaitsUntilConnectionsClose(t *testing.T) {
	env := newPodEnv(t)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c
		}
	}()
	client, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server := <-accepted
	const hold = 300 * time.Millisecond
	timer := time.AfterFunc(hold, func() { client.Close(); server.Close() })
	defer timer.Stop()

	cfg := env.config()
	cfg.ProcNetTCP = nil // the kernel's own tables
	cfg.Ports = []int{ln.Addr().(*net.TCPAddr).Port}
	sum, out, err := runHook(t, cfg)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if w := stepResult(t, sum, StepWait); w.Duration < hold-50*time.Millisecond {
		t.Errorf("wait done after %s, the connection was open for %s", w.Duration, hold)
	}
}

func TestHookFailsOnBadConfigurationAndReportsIt(t *testing.T) {
	env := newPodEnv(t)
	cfg := env.config()
	cfg.Save = []string{env.token} // no --state-url
	sum, out, err := runHook(t, cfg)
	if !errors.Is(err, ErrStepFailed) {
		t.Fatalf("err = %v", err)
	}
	if r := stepResult(t, sum, StepSave); r.Status != StatusFailed || !strings.Contains(r.Detail, "--save needs --state-url") {
		t.Errorf("save: %s %q", r.Status, r.Detail)
	}
	if readFile(t, env.termLog) != out {
		t.Error("configuration error not in the termination message")
	}
}

// The token is read at each attempt: the kubelet rotates it, and a hook
// that cached the old one would fail after a rotation.
func TestHookRereadsTheTokenAtEachAttempt(t *testing.T) {
	env := newPodEnv(t)
	writeFile(t, env.token, "expired")
	var attempts atomic.Int32
	_, stateURL := newStateServer(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if attempts.Add(1) == 1 {
				// The kubelet rotates the token while the server is down.
				if err := os.WriteFile(env.token, []byte(testToken), 0o644); err != nil {
					t.Error(err)
				}
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	cfg := env.config()
	cfg.StateURL, cfg.Save = stateURL, []string{env.token}
	if _, out, err := runHook(t, cfg); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}
