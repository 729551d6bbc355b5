package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func runLint(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := newRootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetArgs(append([]string{"lint"}, args...))
	err := cmd.Execute()
	return out.String(), err
}

func TestLintCommand(t *testing.T) {
	out, err := runLint(t, "", "../../internal/lint/testdata/mistakes.yaml", "--node-shutdown-grace=45s")
	if err == nil || err.Error() != "2 errors, 5 warnings" || !strings.Contains(out, "[prestop-budget-exceeds-grace]") {
		t.Errorf("lint of the mistakes: %v\n%s", err, out)
	}
	out, err = runLint(t, "", "-o", "json", "../../internal/lint/testdata/mistakes.yaml")
	var findings []map[string]string
	if jerr := json.Unmarshal([]byte(strings.SplitN(out, "Error:", 2)[0]), &findings); jerr != nil || len(findings) != 6 || err == nil {
		t.Errorf("JSON report: %v %v, %d findings\n%s", err, jerr, len(findings), out)
	}
	if out, err := runLint(t, "", "../../charts/lastcall/crds"); err != nil || !strings.Contains(out, "0 errors, 0 warnings") {
		t.Errorf("lint of charts/lastcall/crds (a directory walk): %v\n%s", err, out)
	}
	stdin := "kind: Pod\nmetadata: {name: p}\nspec:\n  terminationGracePeriodSeconds: 10\n  containers:\n  - {name: c, image: i, lifecycle: {preStop: {sleep: {seconds: 8}}}}\n"
	if out, err := runLint(t, stdin, "-"); err != nil || !strings.Contains(out, "<stdin>#1: warning: Pod/p container c [short-sigterm-window]") {
		t.Errorf("lint of stdin: %v\n%s", err, out)
	}
	if _, err := runLint(t, stdin, "--strict", "-"); err == nil {
		t.Error("--strict passed a warning")
	}
	for _, bad := range [][]string{{"missing.yaml"}, {"-o", "xml", "-"}, {}} {
		if _, err := runLint(t, "", bad...); err == nil {
			t.Errorf("lint %v: no error", bad)
		}
	}
	if _, err := runLint(t, "kind: [", "-"); err == nil || !strings.Contains(err.Error(), "<stdin>") {
		t.Errorf("unreadable stdin: %v, want an error naming it", err)
	}
}
