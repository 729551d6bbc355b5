package lint

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func mustLoad(t *testing.T, name, manifest string) []Object {
	t.Helper()
	objs, err := Load(name, strings.NewReader(manifest))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return objs
}

// pod builds a one-container Deployment manifest with the given grace
// (empty: unset) and preStop handler (YAML, indented under preStop:).
func pod(grace, preStop string) string {
	g := ""
	if grace != "" {
		g = "      terminationGracePeriodSeconds: " + grace + "\n"
	}
	return `apiVersion: apps/v1
kind: Deployment
metadata: {name: app, namespace: ns}
spec:
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}}
    spec:
` + g + `      containers:
      - name: app
        image: example.com/app
        lifecycle:
          preStop: ` + preStop + "\n"
}

func TestRules(t *testing.T) {
	for _, tc := range []struct {
		name, manifest string
		opts           Options
		want           []string // rule/severity of each finding, in order
	}{
		{"the seed's 55 + 10 > 60", pod("60", `{exec: {command: ["sh", "-c", "sleep 55"]}}`), Options{}, []string{"short-sigterm-window/warning"}},
		{"sleep within budget", pod("60", `{exec: {command: ["sleep", "40"]}}`), Options{}, nil},
		{"sleep as long as the grace", pod("30", `{exec: {command: ["/bin/sleep", "30"]}}`), Options{}, []string{"prestop-exceeds-grace/error"}},
		{"sleep longer than the default grace", pod("", `{exec: {command: ["sleep", "1m"]}}`), Options{}, []string{"prestop-exceeds-grace/error"}},
		{"sleep action", pod("20", `{sleep: {seconds: 25}}`), Options{}, []string{"prestop-exceeds-grace/error"}},
		{"sleep infinity", pod("60", `{exec: {command: ["sh", "-c", "exec sleep infinity"]}}`), Options{}, []string{"prestop-exceeds-grace/error"}},
		{"script starting with a long sleep", pod("60", `{exec: {command: ["bash", "-c", "sleep 70; nginx -s quit"]}}`), Options{}, []string{"prestop-exceeds-grace/error"}},
		{"script with only a lower bound that fits", pod("60", `{exec: {command: ["sh", "-c", "sleep 5 && curl -XPOST localhost/drain"]}}`), Options{}, nil},
		{"unknown duration", pod("5", `{httpGet: {path: /drain, port: 80}}`), Options{}, nil},
		{"zero grace", pod("0", `{exec: {command: ["sleep", "1"]}}`), Options{}, []string{"zero-grace-with-prestop/error"}},
		{"helper budget over grace", pod("30", `{exec: {command: ["lastcall-prestop", "--budget=45s"]}}`), Options{}, []string{"prestop-budget-exceeds-grace/error"}},
		{"helper subcommand budget over grace", pod("30", `{exec: {command: ["/lastcall", "prestop", "--budget", "31s"]}}`), Options{}, []string{"prestop-budget-exceeds-grace/error"}},
		{"helper reserve eats budget", pod("30", `{exec: {command: ["lastcall-prestop", "--budget=30s", "--reserve=30s"]}}`), Options{}, []string{"prestop-budget-exceeds-grace/error"}},
		{"helper leaves too little", pod("30", `{exec: {command: ["lastcall-prestop", "--budget=30s", "--reserve=3s"]}}`), Options{}, []string{"short-sigterm-window/warning"}},
		{"helper as documented", pod("60", `{exec: {command: ["/usr/local/bin/lastcall-prestop", "--budget=60s", "--reserve=10s", "--save=/data"]}}`), Options{}, nil},
		{"helper reading its deadline", pod("60", `{exec: {command: ["lastcall-prestop", "--drain-url=http://127.0.0.1:8080/drain"]}}`), Options{}, nil},
		{"helper reading its deadline, no reserve", pod("60", `{exec: {command: ["lastcall-prestop", "--reserve=0s"]}}`), Options{}, []string{"short-sigterm-window/warning"}},
		{"helper with a flag it refuses", pod("60", `{exec: {command: ["lastcall-prestop", "--budget=soon"]}}`), Options{}, []string{"prestop-flags/error"}},
		{"helper restore is not a hook duration", pod("60", `{exec: {command: ["lastcall-prestop", "restore", "--dir=/data"]}}`), Options{}, nil},
		{"stricter minimum shutdown", pod("60", `{exec: {command: ["sleep", "40"]}}`), Options{MinShutdown: 30 * time.Second}, []string{"short-sigterm-window/warning"}},
		{"grace over the node budget", pod("120", `{exec: {command: ["sleep", "10"]}}`), Options{NodeShutdownGrace: time.Minute}, []string{"grace-exceeds-node-shutdown/warning"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, f := range Check(mustLoad(t, "m.yaml", tc.manifest), tc.opts) {
				got = append(got, f.Rule+"/"+string(f.Severity))
				if f.Message == "" || f.Object != "Deployment/ns/app" || f.Source != "m.yaml#1" {
					t.Errorf("finding %+v: want a message, the object and its source", f)
				}
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("findings %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPDBs(t *testing.T) {
	workloads := `apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: ns}
spec: {replicas: 3, selector: {matchLabels: {app: db}}, template: {metadata: {labels: {app: db}}, spec: {containers: [{name: db, image: db}]}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: one, namespace: ns}
spec: {selector: {matchLabels: {app: one}}, template: {metadata: {labels: {app: one}}, spec: {containers: [{name: one, image: one}]}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: db-elsewhere, namespace: other}
spec: {replicas: 3, selector: {matchLabels: {app: db}}, template: {metadata: {labels: {app: db}}, spec: {containers: [{name: db, image: db}]}}}
`
	pdb := func(name, app, field, value string) string {
		return "---\napiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: " + name + ", namespace: ns}\nspec: {" + field + ": " + value + ", selector: {matchLabels: {app: " + app + "}}}\n"
	}
	for _, tc := range []struct {
		name, pdb string
		blocks    bool
	}{
		{"minAvailable equal to replicas", pdb("p", "db", "minAvailable", "3"), true},
		{"minAvailable below replicas", pdb("p", "db", "minAvailable", "2"), false},
		{"minAvailable 100%", pdb("p", "db", "minAvailable", `"100%"`), true},
		{"minAvailable 60% of 3 rounds up to 2", pdb("p", "db", "minAvailable", `"60%"`), false},
		{"maxUnavailable 0", pdb("p", "db", "maxUnavailable", "0"), true},
		{"maxUnavailable 0%", pdb("p", "db", "maxUnavailable", `"0%"`), true},
		{"maxUnavailable 1", pdb("p", "db", "maxUnavailable", "1"), false},
		{"minAvailable 1 of the default 1 replica", pdb("p", "one", "minAvailable", "1"), true},
		{"selects nothing here", pdb("p", "cache", "minAvailable", "5"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := Check(mustLoad(t, "m.yaml", workloads+tc.pdb), Options{})
			if got := len(fs) == 1 && fs[0].Rule == RulePDBBlocksEviction && fs[0].Object == "PodDisruptionBudget/ns/p"; got != tc.blocks || len(fs) > 1 {
				t.Errorf("findings %+v, want blocking: %v (and never the workload in another namespace)", fs, tc.blocks)
			}
		})
	}
}

func TestLoadKindsAndLists(t *testing.T) {
	manifest := `---
# an empty document and a comment
---
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Pod, metadata: {name: a}, spec: {containers: [{name: c, image: i}]}}
- {apiVersion: v1, kind: Service, metadata: {name: s}}
- {apiVersion: apps/v1, kind: DaemonSet, metadata: {name: d}, spec: {template: {spec: {containers: [{name: c, image: i}]}}}}
---
{"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}, "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}}
---
apiVersion: v1
kind: ReplicationController
metadata: {name: rc}
spec: {}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
spec: {anything: [1, 2]}
`
	var kinds []string
	for _, o := range mustLoad(t, "m.yaml", manifest) {
		kinds = append(kinds, o.Kind+"/"+o.Name)
	}
	if got := strings.Join(kinds, " "); got != "Pod/a DaemonSet/d Job/j" {
		t.Errorf("loaded %s, want the Pod and DaemonSet of the List and the Job", got)
	}
}

func TestLoadRefusesBadInput(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"not YAML", "kind: [unclosed", "document 1"},
		{"a scalar", "just words", "not a Kubernetes object"},
		{"wrong field type", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: many}\n", "Deployment"},
		{"second document broken", "kind: Service\n---\nkind: Pod\nspec: {containers: 7}\n", "#2"},
		{"nested List", "kind: List\nitems:\n- kind: List\n  items: [{kind: Pod}]\n", "a List inside a List"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load("m.yaml", strings.NewReader(tc.in))
			var ie *InputError
			if !errors.As(err, &ie) || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "m.yaml") {
				t.Errorf("Load: %v, want an InputError naming m.yaml and %q", err, tc.want)
			}
		})
	}
	big := bytes.Repeat([]byte("# padding\n"), MaxInputBytes/10+1)
	if _, err := Load("big.yaml", bytes.NewReader(big)); !errors.Is(err, errTooLarge) {
		t.Errorf("Load of %d bytes: %v, want the size limit", len(big), err)
	}
}

// TestDocsExampleIsClean lints the workload example of docs/prestop.md,
// which people copy. The chart's manifests are linted in test/chart, which
// renders them with helm.
func TestDocsExampleIsClean(t *testing.T) {
	doc, err := os.ReadFile("../../docs/prestop.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(doc), "## Wiring it into a workload")
	_, rest, _ = strings.Cut(rest, "```yaml\n")
	example, _, _ := strings.Cut(rest, "```")
	objs := mustLoad(t, "docs/prestop.md", example)
	if len(objs) != 1 || objs[0].Kind != "StatefulSet" {
		t.Fatalf("the docs example gives %+v, want its StatefulSet", objs)
	}
	if fs := Check(objs, Options{}); len(fs) > 0 {
		t.Errorf("docs/prestop.md example: %+v", fs)
	}
}

func TestMistakesFile(t *testing.T) {
	f, err := os.Open("testdata/mistakes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	objs, err := Load("testdata/mistakes.yaml", f)
	if err != nil {
		t.Fatal(err)
	}
	fs := Check(objs, Options{NodeShutdownGrace: 45 * time.Second})
	errs, warns := Count(fs)
	if errs != 2 || warns != 5 || fs[0].Severity != SeverityError || fs[1].Severity != SeverityError {
		t.Errorf("%d errors and %d warnings, errors first: %+v; want 2 and 5", errs, warns, fs)
	}
	// Only the Canary gated by lastcall with the kubernetes provider is
	// flagged, not the Gateway API one.
	var canaries []string
	for _, f := range fs {
		if f.Rule == RuleGateNeverDrains {
			canaries = append(canaries, f.Object)
		}
	}
	if len(canaries) != 1 || canaries[0] != "Canary/shop/web" {
		t.Errorf("gate-never-drains on %v, want only Canary/shop/web", canaries)
	}
	var text, js bytes.Buffer
	if err := WriteText(&text, fs); err != nil || !strings.HasSuffix(text.String(), "2 errors, 5 warnings\n") ||
		!strings.Contains(text.String(), "testdata/mistakes.yaml#2: error: StatefulSet/shop/db container db [prestop-budget-exceeds-grace]") {
		t.Errorf("text report:\n%s", text.String())
	}
	if err := WriteJSON(&js, nil); err != nil || strings.TrimSpace(js.String()) != "[]" {
		t.Errorf("JSON of no findings: %q, want []", js.String())
	}
}
