//go:build integration

package devcluster_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/lastcall-dev/lastcall/internal/devcluster"
)

// The real `go install` and `go mod download`: the binaries run and the CRD
// manifest holds Flagger's Canary.
func TestPeersAreRealFlaggerAndCRDs(t *testing.T) {
	ctx := context.Background()
	p, err := devcluster.EnsurePeers(ctx, devcluster.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(ctx, p.Flagger(), "-version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), strings.TrimPrefix(devcluster.FlaggerVersion, "v")) {
		t.Errorf("flagger -version: %v: %s", err, out)
	}
	// The loadtester has no version flag; -h lists its flags and exits.
	out, _ = exec.CommandContext(ctx, p.Loadtester(), "-h").CombinedOutput()
	if !strings.Contains(string(out), "-namespace-regexp") {
		t.Errorf("loadtester -h: %s", out)
	}
	crd, err := devcluster.FlaggerCRDPath(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(crd)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "name: canaries.flagger.app") {
		t.Errorf("%s does not define canaries.flagger.app", crd)
	}
}
