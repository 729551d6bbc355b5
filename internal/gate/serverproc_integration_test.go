//go:build integration

package gate_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lastcall-dev/lastcall/internal/devcluster"
	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
)

// startServerProcess builds cmd/lastcall and runs `lastcall server` as a
// process of its own, as deployed (and as the loadtester runs), so that a
// benchmark measures its CPU and its garbage collector alone, not this test
// binary's. It returns the API's base URL and the pid.
func startServerProcess(b *testing.B, extraArgs ...string) (string, int) {
	b.Helper()
	dir := b.TempDir()
	bin := filepath.Join(dir, "lastcall")
	if err := devcluster.GoBuild(context.Background(), "", bin, "../../cmd/lastcall"); err != nil {
		b.Fatal(err)
	}
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(adminToken+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	api := fmt.Sprintf("127.0.0.1:%d", freePort(b))
	health := fmt.Sprintf("127.0.0.1:%d", freePort(b))
	logFile, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "server",
		"--kubeconfig", clustertest.Cluster().KubeconfigPath(),
		"--http-addr", api, "--health-addr", health, "--metrics-addr", fmt.Sprintf("127.0.0.1:%d", freePort(b)),
		"--control-token-file", tokenFile, "--state-url", "file://"+filepath.Join(dir, "state"),
		"--leader-elect=false", "--log-level", "warn")
	// LASTCALL_BENCH_SERVER_ARGS adds server flags;
	// LASTCALL_BENCH_SERVER_ENV="K=V ..." sets environment variables for the
	// server alone (GODEBUG=gctrace=1, GOGC), not for the loadtester.
	cmd.Args = append(cmd.Args, extraArgs...)
	cmd.Args = append(cmd.Args, strings.Fields(os.Getenv("LASTCALL_BENCH_SERVER_ARGS"))...)
	cmd.Env = append(os.Environ(), strings.Fields(os.Getenv("LASTCALL_BENCH_SERVER_ENV"))...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		logFile.Close()
		if b.Failed() {
			out, _ := os.ReadFile(logFile.Name())
			b.Logf("lastcall server log:\n%s", out)
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + health + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return "http://" + api, cmd.Process.Pid
			}
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(logFile.Name())
			b.Fatalf("lastcall server not ready after 60 s: %v\n%s", err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
