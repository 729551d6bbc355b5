//go:build integration

package realnode

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lastcall-dev/lastcall/internal/devcluster"
	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
	"github.com/lastcall-dev/lastcall/test/e2e/scenario"
)

// TestFlaggerScenarioWithTheChartOnTheRealNode is `make demo-real-node`:
// the main scenario (Blue/Green, a failing pod, the server killed mid-run)
// with lastcall installed by its chart on the real node, Flagger calling
// the gate through the Service, and the server's pod draining kwok's pods
// across the node's bridge. The server is killed by force-deleting its pod.
func TestFlaggerScenarioWithTheChartOnTheRealNode(t *testing.T) {
	env := clustertest.New(t)
	c := clustertest.Cluster()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	peers, err := devcluster.EnsurePeers(ctx, devcluster.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	flagger, err := devcluster.FlaggerCRDPath(ctx)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := devcluster.GatewayAPICRDPaths(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ours, _ := filepath.Glob(chartDir + "/crds/*.yaml")
	if err := devcluster.InstallCRDs(ctx, c.Config(), append(append(ours, flagger), gw...)...); err != nil {
		t.Fatal(err)
	}
	importLastcallImage(t, "test-1")
	sc, err := scenario.New(scenario.Config{
		Cluster: env.Config, Kubeconfig: c.KubeconfigPath(), Namespace: env.Namespace, LogDir: t.TempDir(),
		FlaggerBinary: peers.Flagger(), Mode: scenario.ModeBlueGreen,
		Helm: &scenario.HelmInstall{Chart: chartDir, Image: imageRepo, Tag: "test-1"},
		Log:  func(line string) { t.Log(line) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sc.Close)
	rep, runErr := sc.Run(ctx)
	var sum strings.Builder
	scenario.WriteSummary(&sum, rep)
	t.Logf("\n%s", sum.String())
	if runErr != nil {
		t.Fatal(runErr)
	}
	checks := rep.Verify()
	if len(checks) != 5 {
		t.Errorf("Verify returned %d checks, want the 5 properties", len(checks))
	}
	for _, check := range checks {
		t.Run(check.Name, func(t *testing.T) {
			for _, p := range check.Problems {
				t.Error(p)
			}
		})
	}
}
