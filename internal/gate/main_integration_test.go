//go:build integration

package gate_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/lastcall-dev/lastcall/internal/devcluster"
	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
)

// TestMain starts one control plane with lastcall's CRDs and Flagger's own
// (from the Flagger module in the Go module cache), so that the gate reads
// real Canary objects.
func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	flaggerCRDs, err := devcluster.FlaggerCRDPath(ctx)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "gate tests: %v\n", err)
		os.Exit(1)
	}
	clustertest.Main(m, devcluster.Options{},
		clustertest.InstallCRDs("../../charts/lastcall/crds/lastcall.dev_terminationpolicies.yaml",
			"../../charts/lastcall/crds/lastcall.dev_terminationruns.yaml", "../../charts/lastcall/crds/lastcall.dev_gates.yaml", flaggerCRDs))
}
