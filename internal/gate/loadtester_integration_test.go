//go:build integration

package gate_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/lastcall-dev/lastcall/internal/devcluster"
	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
)

// startLoadtester runs flagger-loadtester (devcluster.FlaggerVersion, built
// once into the peers cache) on a free loopback port until the test ends,
// and returns its URL and process ID. Extra args are passed to it.
func startLoadtester(t testing.TB, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	bin, err := devcluster.EnsureLoadtester(ctx, devcluster.BuildOptions{})
	if err != nil {
		t.Fatalf("flagger-loadtester: %v", err)
	}
	port := freePort(t)
	cmd := exec.Command(bin, append([]string{"-port", strconv.Itoa(port)}, args...)...)
	log, err := os.Create(t.TempDir() + "/loadtester.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = log.Close()
	})
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	clustertest.Eventually(t, 30*time.Second, func(ctx context.Context) (bool, error) {
		resp, err := http.Get(url + "/healthz")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	}, "flagger-loadtester to serve on %s", url)
	return url, cmd.Process.Pid
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
