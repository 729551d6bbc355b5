package main

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/spf13/cobra/doc"
)

var update = flag.Bool("update", false, "rewrite docs/reference and the golden files from the current code")

// referenceDir holds one generated Markdown page per command.
const referenceDir = "../../docs/reference"

// TestFlagReferenceIsCurrent: docs/reference is generated from the cobra
// commands (cobra/doc) and must match them; `make docs` (go test
// ./cmd/lastcall -run TestFlagReferenceIsCurrent -update) rewrites it.
func TestFlagReferenceIsCurrent(t *testing.T) {
	root := newRootCommand()
	root.DisableAutoGenTag = true
	dir := t.TempDir()
	if err := doc.GenMarkdownTree(root, dir); err != nil {
		t.Fatal(err)
	}
	generated, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.RemoveAll(referenceDir); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(referenceDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]bool{}
	for _, e := range generated {
		want[e.Name()] = true
		got, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(referenceDir, e.Name())
		if *update {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		have, err := os.ReadFile(path)
		if err != nil || string(have) != string(got) {
			t.Errorf("%s is not what the code generates (run make docs)", path)
		}
	}
	committed, err := os.ReadDir(referenceDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range committed {
		if !want[e.Name()] {
			t.Errorf("%s documents a command that no longer exists (run make docs)", filepath.Join(referenceDir, e.Name()))
		}
	}
}
