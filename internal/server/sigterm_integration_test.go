//go:build integration

package server_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lastcall-dev/lastcall/internal/devcluster"
	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
)

// serverProcess is a `lastcall server` running as its own process, as
// deployed, with the gate and the state API on separate listeners.
type serverProcess struct {
	cmd                 *exec.Cmd
	gate, state, health string
	metrics             string
	exited              chan error
	log                 string
}

func startServerProcess(t testing.TB, args ...string) *serverProcess {
	t.Helper()
	applyCRDs(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "lastcall")
	if err := devcluster.GoBuild(context.Background(), "", bin, "../../cmd/lastcall"); err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(controlToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := func() string { return fmt.Sprintf("127.0.0.1:%d", freePort(t)) }
	p := &serverProcess{gate: addr(), state: addr(), health: addr(), metrics: addr(), exited: make(chan error, 1), log: filepath.Join(dir, "server.log")}
	logFile, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(bin, append([]string{"server",
		"--kubeconfig", clustertest.Cluster().KubeconfigPath(),
		"--gate-addr", p.gate, "--state-addr", p.state, "--health-addr", p.health, "--metrics-addr", p.metrics,
		"--control-token-file", tokenFile, "--state-url", "file://" + filepath.Join(dir, "state"),
		"--leader-elect=false"}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait(); logFile.Close() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		if t.Failed() {
			out, _ := os.ReadFile(p.log)
			t.Logf("lastcall server log:\n%s", out)
		}
	})
	clustertest.Eventually(t, 60*time.Second, func(context.Context) (bool, error) {
		return p.ready() == http.StatusOK, nil
	}, "lastcall server to be ready")
	return p
}

// ready is /readyz's status code, 0 when it cannot be reached.
func (p *serverProcess) ready() int {
	resp, err := http.Get("http://" + p.health + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestSIGTERMDrainsUnderLoad is issue 12's graceful server: under a load of
// state saves and gate checks, SIGTERM makes /readyz fail at once, every
// request sent during the drain delay is answered, and the process exits
// within the drain delay plus the shutdown budget.
func TestSIGTERMDrainsUnderLoad(t *testing.T) {
	const drain, budget = 2 * time.Second, 5 * time.Second
	p := startServerProcess(t, "--drain-delay", drain.String(), "--shutdown-timeout", budget.String())
	client := &http.Client{Timeout: 10 * time.Second}
	send := func(i int) (int, error) {
		var req *http.Request
		if i%2 == 0 {
			req, _ = http.NewRequest(http.MethodPut, fmt.Sprintf("http://%s/v1/state/team-a/pod-%d", p.state, i), strings.NewReader(strings.Repeat("s", 4096)))
			req.Header.Set("Authorization", "Bearer "+controlToken)
		} else {
			req, _ = http.NewRequest(http.MethodPost, "http://"+p.gate+"/flagger/gate", strings.NewReader(`{"name":"web","namespace":"team-a","checksum":"abc"}`))
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	var (
		mu       sync.Mutex
		sent     int
		failures []string
		wg       sync.WaitGroup
	)
	var stopLoad time.Time
	for w := range 8 {
		wg.Go(func() {
			for i := w; ; i += 8 {
				mu.Lock()
				end := stopLoad
				mu.Unlock()
				if !end.IsZero() && time.Now().After(end) {
					return
				}
				code, err := send(i)
				mu.Lock()
				sent++
				if err != nil || (code != http.StatusCreated && code != http.StatusForbidden) {
					failures = append(failures, fmt.Sprintf("request %d: %d %v", i, code, err))
				}
				mu.Unlock()
			}
		})
	}
	time.Sleep(500 * time.Millisecond) // load before the signal
	term := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	// Stop sending a little before the drain delay ends: every request
	// sent until then must be answered.
	stopLoad = term.Add(drain - 300*time.Millisecond)
	mu.Unlock()
	clustertest.Eventually(t, 500*time.Millisecond, func(context.Context) (bool, error) {
		return p.ready() == http.StatusServiceUnavailable, nil
	}, "/readyz to answer 503 right after SIGTERM")
	notReady := time.Since(term)
	wg.Wait()
	select {
	case err := <-p.exited:
		if err != nil {
			t.Errorf("lastcall server exited with %v", err)
		}
	case <-time.After(drain + budget + 5*time.Second):
		t.Fatal("lastcall server still running past the drain delay and the shutdown budget")
	}
	exited := time.Since(term)
	if len(failures) > 0 {
		t.Errorf("%d of %d requests sent before the drain delay ended were not answered; first: %s", len(failures), sent, failures[0])
	}
	if exited < drain {
		t.Errorf("exited %s after SIGTERM, before the %s drain delay", exited, drain)
	}
	t.Logf("%d requests answered; /readyz 503 %s after SIGTERM; exit after %s", sent, notReady, exited)
}

// TestGateAndStateListenOnTheirOwnAddresses: with --gate-addr and
// --state-addr, each listener serves its own API only, and headers beyond
// the bound are refused with 431.
func TestGateAndStateListenOnTheirOwnAddresses(t *testing.T) {
	p := startServerProcess(t)
	for _, c := range []struct {
		method, addr, path string
		want               int
	}{
		{http.MethodGet, p.state, "/v1/state/team-a/", http.StatusUnauthorized},
		{http.MethodGet, p.gate, "/v1/state/team-a/", http.StatusNotFound},
		{http.MethodPost, p.gate, "/flagger/gate", http.StatusBadRequest},
		{http.MethodPost, p.state, "/flagger/gate", http.StatusNotFound},
	} {
		req, _ := http.NewRequest(c.method, "http://"+c.addr+c.path, strings.NewReader("{}"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s %s%s: %d, want %d", c.method, c.addr, c.path, resp.StatusCode, c.want)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+p.state+"/v1/state/team-a/", nil)
	req.Header.Set("X-Filler", strings.Repeat("x", 64<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("a 64 KiB header: %d, want 431", resp.StatusCode)
	}
}
