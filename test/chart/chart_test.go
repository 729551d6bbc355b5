//go:build integration

// Package chart checks charts/lastcall with the project's helm: lint, the
// values schema, and what it renders, validated by the real API server (a
// server-side dry run) and by `lastcall lint`. Installing it for real is
// test/realnode's job.
package chart

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lastcall-dev/lastcall/internal/devcluster"
	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
	"github.com/lastcall-dev/lastcall/internal/lint"
	"github.com/lastcall-dev/lastcall/internal/server"
)

const chartDir = "../../charts/lastcall"

func TestMain(m *testing.M) {
	// No CRDs here on purpose: the chart's are only dry-run, and the server
	// must say that they are missing.
	clustertest.Main(m, devcluster.Options{Nodes: 1})
}

// valueSets are the configurations the docs describe.
var valueSets = map[string][]string{
	"defaults":   nil,
	"ha-s3":      {"server.replicas=3", "state.type=s3", "state.s3.url=s3://bucket?region=eu-west-1", "state.s3.credentialsSecret=s3"},
	"everything": {"nodeAgent.enabled=true", "metrics.serviceMonitor.enabled=true", "networkPolicy.enabled=true", "networkPolicy.apiFromNamespaces={flagger-system,shop}", "server.tls.secretName=tls", "server.controlToken.secretName=ctl", "server.stepURLPrefixes={https://hooks.example.com/}", "image.digest=sha256:" + strings.Repeat("a", 64)},
}

func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := devcluster.Helm(context.Background(), devcluster.BuildOptions{}, args...)
	return string(out), err
}

func TestHelmLintStrict(t *testing.T) {
	for name, set := range valueSets {
		args := []string{"lint", "--strict", chartDir}
		for _, s := range set {
			args = append(args, "--set", s)
		}
		if out, err := helm(t, args...); err != nil {
			t.Errorf("%s: %v\n%s", name, err, out)
		}
	}
}

func TestValuesSchemaAndChecksRejectMistakes(t *testing.T) {
	for _, tc := range []struct{ set, want string }{
		{"server.drainDelay=5", "/server/drainDelay"},
		{"server.drainDelay=five", "/server/drainDelay"},
		{"state.type=gcs", "/state/type"},
		{"state.type=s3", "/state/s3/url"},
		{"server.replicas=0", "/server/replicas"},
		{"server.replicas=2", "use state.type s3"},
		{"image.pullPolicy=Sometimes", "/image/pullPolicy"},
		{"image.digest=latest", "/image/digest"},
		{"nodeAgent.pdb=maybe", "/nodeAgent/pdb"},
		{"server.stepURLPrefixes={ftp://x/}", "/server/stepURLPrefixes"},
		{"server.unknownKnob=1", "unknownKnob"},
	} {
		out, err := helm(t, "template", "x", chartDir, "--set", tc.set)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("--set %s: %v, want an error naming %q\n%s", tc.set, err, tc.want, out)
		}
	}
}

// TestRenderedChartIsValidAndLintClean renders each value set and has the
// API server validate every object (dry run), and `lastcall lint` check
// the workloads' grace budgets.
func TestRenderedChartIsValidAndLintClean(t *testing.T) {
	env := clustertest.New(t)
	c, err := client.New(env.Config, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for name, set := range valueSets {
		data, err := devcluster.HelmTemplate(context.Background(), devcluster.BuildOptions{}, chartDir, "lastcall", env.Namespace, set...)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		kinds := map[string]int{}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			u := &unstructured.Unstructured{}
			if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if len(u.Object) == 0 {
				continue
			}
			kinds[u.GetKind()]++
			err := c.Create(context.Background(), u, client.DryRunAll)
			switch {
			case u.GetKind() == "ServiceMonitor" && meta.IsNoMatchError(err):
				// The Prometheus Operator's CRD is not in the test stack.
			case err != nil && !apierrors.IsAlreadyExists(err):
				t.Errorf("%s: the API server refuses %s %s: %v", name, u.GetKind(), u.GetName(), err)
			}
		}
		objs, err := lint.Load(name, bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if fs := lint.Check(objs, lint.Options{}); len(fs) > 0 {
			t.Errorf("%s: lastcall lint: %+v", name, fs)
		}
		if kinds["CustomResourceDefinition"] != 3 || kinds["Deployment"] != 1 || kinds["ClusterRole"] < 2 {
			t.Errorf("%s renders %v", name, kinds)
		}
		if name == "everything" && (kinds["DaemonSet"] != 1 || kinds["NetworkPolicy"] != 1 || kinds["ServiceMonitor"] != 1) {
			t.Errorf("everything renders %v", kinds)
		}
		if (name == "ha-s3") != (kinds["PodDisruptionBudget"] == 1) {
			t.Errorf("%s: %d PodDisruptionBudgets (only with replicas > 1)", name, kinds["PodDisruptionBudget"])
		}
	}
}

// TestServerWithoutCRDsSaysWhatToInstall is issue 13's clear error: on a
// cluster without lastcall's CRDs the server names them and the command
// that installs them.
func TestServerWithoutCRDsSaysWhatToInstall(t *testing.T) {
	cfg := server.Defaults
	_, err := server.New(clustertest.Cluster().Config(), cfg, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "missing terminationpolicies.lastcall.dev, terminationruns.lastcall.dev, gates.lastcall.dev") ||
		!strings.Contains(err.Error(), "helm install") {
		t.Fatalf("server.New without CRDs: %v", err)
	}
}
