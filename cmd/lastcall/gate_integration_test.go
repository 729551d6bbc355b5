//go:build integration

package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
	"github.com/lastcall-dev/lastcall/internal/devcluster"
	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
	"github.com/lastcall-dev/lastcall/internal/gate"
	"github.com/lastcall-dev/lastcall/internal/run"
)

func TestMain(m *testing.M) {
	clustertest.Main(m, devcluster.Options{}, clustertest.InstallCRDs(
		"../../charts/lastcall/crds/lastcall.dev_terminationpolicies.yaml",
		"../../charts/lastcall/crds/lastcall.dev_terminationruns.yaml",
		"../../charts/lastcall/crds/lastcall.dev_gates.yaml"))
}

// lastcall runs the CLI as a person would, against the test cluster's
// kubeconfig, and returns what it printed.
func lastcall(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newRootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(append(args, "--kubeconfig", clustertest.Cluster().KubeconfigPath()))
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

func mustLastcall(t *testing.T, args ...string) string {
	t.Helper()
	out, err := lastcall(t, args...)
	if err != nil {
		t.Fatalf("lastcall %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// TestGateCommandsMoveTheRealObjects drives `lastcall gate` end to end: the
// switches land in the Gate object with the caller's name, the override in
// the gate run, and status shows what /flagger/gate would answer.
func TestGateCommandsMoveTheRealObjects(t *testing.T) {
	env := clustertest.New(t)
	c, err := client.New(env.Config, client.Options{Scheme: run.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	canary := env.Namespace + "/web"

	if out := mustLastcall(t, "gate", "status", "--canary", canary); !strings.Contains(out, "no manual gates") || !strings.Contains(out, "no gate runs") {
		t.Errorf("status of a canary with nothing: %q", out)
	}
	if out := mustLastcall(t, "gate", "open", "--canary", canary); !strings.Contains(out, "is Open (set by admin)") {
		t.Errorf("gate open printed %q", out)
	}
	if out := mustLastcall(t, "gate", "close", "--canary", canary, "--rollback"); !strings.Contains(out, "is Closed (the default)") {
		t.Errorf("closing the rollback switch that was never set printed %q, want it to say nothing changed", out)
	}
	mustLastcall(t, "gate", "open", "--canary", "web", "-n", env.Namespace, "--rollback")
	mustLastcall(t, "gate", "close", "--canary", "web", "-n", env.Namespace, "--rollback")
	var g v1alpha1.Gate
	if err := c.Get(ctx, client.ObjectKey{Namespace: env.Namespace, Name: "web"}, &g); err != nil {
		t.Fatalf("the Gate object: %v", err)
	}
	if !g.Spec.Gate.IsOpen() || g.Spec.Gate.By != "admin" || g.Spec.Gate.At == nil || g.Spec.Rollback.IsOpen() || g.Spec.Rollback.By != "admin" {
		t.Errorf("Gate spec %+v: want the gate Open and the rollback switch Closed, both by admin with a time", g.Spec)
	}
	out := mustLastcall(t, "gate", "status", "-n", env.Namespace)
	if !strings.Contains(out, canary) || !strings.Contains(out, "Open") || !strings.Contains(out, "Closed") {
		t.Errorf("status lists %q, want the canary with its gate Open and rollback Closed", out)
	}

	// A gate run, as /flagger/gate creates it; no controller runs here, so
	// it stays Pending and only an override changes its answer.
	if out, err := lastcall(t, "gate", "open", "--canary", canary, "--run"); err == nil || !strings.Contains(err.Error(), "no confirm-promotion gate run") {
		t.Errorf("open --run without a run: %v %q, want a clear not-found error", err, out)
	}
	run := &v1alpha1.TerminationRun{
		ObjectMeta: metav1.ObjectMeta{Namespace: env.Namespace, Name: gate.RunName(
			gate.Payload{Name: "web", Namespace: env.Namespace, Checksum: "rev-1"}, gate.HookConfirmPromotion)},
		Spec: v1alpha1.TerminationRunSpec{
			PolicyRef: v1alpha1.PolicyRef{Name: "drain-web"},
			Pods:      []v1alpha1.PodRef{{Name: "web-primary-0"}},
			Trigger: v1alpha1.Trigger{Source: v1alpha1.TriggerGate, Canary: &v1alpha1.CanaryRef{
				Name: "web", Namespace: env.Namespace, Checksum: "rev-1", HookType: "confirm-promotion"}},
		},
	}
	if err := c.Create(ctx, run); err != nil {
		t.Fatal(err)
	}
	if out := mustLastcall(t, "gate", "status", "--canary", canary); !strings.Contains(out, run.Name) || !strings.Contains(out, "403") {
		t.Errorf("status with a pending run: %q, want the run answering 403", out)
	}
	if out := mustLastcall(t, "gate", "open", "--canary", canary, "--run"); !strings.Contains(out, "200 (pass)") {
		t.Errorf("open --run printed %q, want the new answer 200", out)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(run), run); err != nil {
		t.Fatal(err)
	}
	if run.Spec.Gate == nil || run.Spec.Gate.Action != v1alpha1.GateOverrideOpen || run.Spec.Gate.By != "admin" {
		t.Errorf("run's gate override %+v, want Open by admin", run.Spec.Gate)
	}
	if out := mustLastcall(t, "gate", "status", "--canary", canary); !strings.Contains(out, "200") {
		t.Errorf("status after the override: %q, want the run answering 200", out)
	}
	if out := mustLastcall(t, "gate", "close", "--canary", canary, "--run", "--checksum", "rev-1"); !strings.Contains(out, "403 (hold)") {
		t.Errorf("close --run --checksum printed %q, want 403", out)
	}
}

func TestGateCommandsRefuseBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"gate", "open", "--canary", "a/b/c"},
		{"gate", "open", "--canary", "/web"},
		{"gate", "close", "--canary", "ns/web", "--rollback", "--run"},
		{"gate", "open"},
		{"gate", "status", "extra"},
		{"gate", "open", "--canary", "ns/web", "--run", "--hook", "not-a-hook"},
	} {
		if out, err := lastcall(t, args...); err == nil {
			t.Errorf("lastcall %s: no error (printed %q)", strings.Join(args, " "), out)
		}
	}
}
