package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLIOutputsMatchGoldenFiles: what the commands print, byte for byte,
// for the inputs a user meets first. A change of wording or layout shows
// up as a diff here; `go test ./cmd/lastcall -run Golden -args -update`
// (make docs) rewrites testdata/golden after a deliberate change.
func TestCLIOutputsMatchGoldenFiles(t *testing.T) {
	podWithShortWindow := "kind: Pod\nmetadata: {name: p}\nspec:\n  terminationGracePeriodSeconds: 10\n  containers:\n  - {name: c, image: i, lifecycle: {preStop: {sleep: {seconds: 8}}}}\n"
	for _, tc := range []struct {
		golden string
		stdin  string
		args   []string
	}{
		{"lint-mistakes.txt", "", []string{"lint", "../../internal/lint/testdata/mistakes.yaml", "--node-shutdown-grace=45s"}},
		{"lint-mistakes.json", "", []string{"lint", "-o", "json", "../../internal/lint/testdata/mistakes.yaml"}},
		{"lint-crds.txt", "", []string{"lint", "../../charts/lastcall/crds"}},
		{"lint-stdin.txt", podWithShortWindow, []string{"lint", "-"}},
		{"lint-stdin-strict.txt", podWithShortWindow, []string{"lint", "--strict", "-"}},
		{"lint-unreadable.txt", "kind: [", []string{"lint", "-"}},
		{"run-start-no-policy.txt", "", []string{"run", "start"}},
		{"gate-open-rollback-and-run.txt", "", []string{"gate", "open", "--canary", "shop/web", "--rollback", "--run"}},
		{"gate-open-checksum-without-run.txt", "", []string{"gate", "open", "--canary", "shop/web", "--checksum", "abc"}},
		{"gate-open-unknown-hook.txt", "", []string{"gate", "open", "--canary", "shop/web", "--run", "--hook", "confirm-everything"}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			cmd := newRootCommand()
			var out bytes.Buffer
			cmd.SetOut(&out)
			cmd.SetErr(&out)
			cmd.SetIn(strings.NewReader(tc.stdin))
			cmd.SetArgs(tc.args)
			if err := cmd.Execute(); err != nil {
				// What main prints on failure.
				out.WriteString("lastcall: " + err.Error() + "\n")
			}
			path := filepath.Join("testdata", "golden", tc.golden)
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -args -update to create it)", err)
			}
			if got := out.String(); got != string(want) {
				t.Errorf("lastcall %s printed:\n%s\nwant (%s):\n%s", strings.Join(tc.args, " "), got, path, want)
			}
		})
	}
}
