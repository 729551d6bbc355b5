//go:build integration

package e2e_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/lastcall-dev/lastcall/internal/devcluster"
	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
	"github.com/lastcall-dev/lastcall/test/e2e/scenario"
)

// The seed's scenario with a real Flagger and a real lastcall server: see
// docs/e2e.md. One test, because each part proves something about the same
// rollout. Flagger runs Blue/Green through Gateway API routes: the first
// confirm-promotion call passes without a drain, Flagger sends all traffic
// to the canary, and the run drains the old primary pods at the next call.
func TestFlaggerPromotesOnlyAfterTheGateRunDrainedTheOldPods(t *testing.T) {
	playScenario(t, scenario.ModeBlueGreen, 5)
}

// Issue 18 (a): with the kubernetes provider the old primary pods take all
// traffic until Flagger replaces them; nothing drains them, and a snapshot
// policy (drainsTraffic: false) saves their state while they serve.
func TestKubernetesProviderNeverDrainsPodsInService(t *testing.T) {
	playScenario(t, scenario.ModeKubernetes, 3)
}

// Issue 18 (b): a progressive canary to weight 100 calls confirm-promotion
// when the primary's weight is 0: the gate drains then, and Flagger waits.
func TestProgressiveCanaryDrainsAtWeightZero(t *testing.T) {
	playScenario(t, scenario.ModeProgressive, 3)
}

// playScenario plays one mode of the scenario and checks the properties
// its Report must show (want of them).
func playScenario(t *testing.T, mode scenario.Mode, want int) {
	env := clustertest.New(t)
	ctx := context.Background()
	peers, err := devcluster.EnsurePeers(ctx, devcluster.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bin, err := scenario.BuildLastcall(ctx, "../..", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sc, err := scenario.New(scenario.Config{
		Cluster: env.Config, Kubeconfig: clustertest.Cluster().KubeconfigPath(), Namespace: env.Namespace,
		LogDir: t.TempDir(), LastcallBinary: bin, FlaggerBinary: peers.Flagger(), Mode: mode,
		Log: func(line string) { t.Log(line) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sc.Close)
	rep, runErr := sc.Run(ctx)
	var sum strings.Builder
	scenario.WriteSummary(&sum, rep)
	t.Logf("\n%s", sum.String())
	t.Cleanup(func() {
		if t.Failed() {
			for _, path := range rep.Logs {
				b, _ := os.ReadFile(path)
				t.Logf("----- %s (last 60 lines)\n%s", path, lastLines(string(b), 60))
			}
		}
	})
	if runErr != nil {
		t.Fatal(runErr)
	}
	checks := rep.Verify()
	if len(checks) != want {
		t.Errorf("Verify returned %d checks, want the %d properties", len(checks), want)
	}
	for _, c := range checks {
		t.Run(c.Name, func(t *testing.T) {
			for _, p := range c.Problems {
				t.Error(p)
			}
		})
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
