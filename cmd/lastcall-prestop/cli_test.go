package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

func TestHelpMatchesGolden(t *testing.T) {
	for name, args := range map[string][]string{
		"help-prestop.golden": {"--help"},
		"help-restore.golden": {"restore", "--help"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, &stdout, &stderr); code != 0 {
			t.Fatalf("%v: exit %d", args, code)
		}
		path := filepath.Join("testdata", name)
		if *update {
			if err := os.WriteFile(path, stderr.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if stderr.String() != string(want) {
			t.Errorf("%v help changed (go test -run %s -update to accept):\n%s", args, t.Name(), stderr.String())
		}
	}
}

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"unknown flag", []string{"--no-such-flag"}, 1, "unknown flag"},
		{"unknown step", []string{"--optional", "nap"}, 1, `unknown step "nap"`},
		{"nothing configured is a no-op", []string{"--budget=5s", "--reserve=1s", "--console=none", "--termination-message-path=" + filepath.Join(dir, "msg"), "--pod=p", "--namespace=n"}, 0, "lastcall prestop n/p: OK"},
		{"no budget fails what was asked", []string{"--budget=1s", "--reserve=2s", "--drain-url=http://127.0.0.1:1/", "--console=none", "--termination-message-path=none", "--pod=p", "--namespace=n"}, 1, "no budget: budget 1s − reserve 2s ≤ 0"},
		{"restore needs a state URL", []string{"restore", "--dir", dir}, 1, "restore needs --state-url"},
		{"version", []string{"version"}, 0, "lastcall-prestop "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, &stdout, &stderr)
			if code != tc.code || !strings.Contains(stdout.String()+stderr.String(), tc.out) {
				t.Errorf("exit %d, want %d; output lacks %q:\n%s%s", code, tc.code, tc.out, stdout.String(), stderr.String())
			}
		})
	}
}

// TestInstallCopiesTheBinaryIntoASharedDirectory: what an initContainer of
// the lastcall-prestop image runs to hand the helper to an app image that
// lacks it; the copy runs and answers like the original.
func TestInstallCopiesTheBinaryIntoASharedDirectory(t *testing.T) {
	shared := t.TempDir()
	out, err := exec.Command(bins.prestop, "install", shared).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "installed "+filepath.Join(shared, "lastcall-prestop")) {
		t.Fatalf("install: %v\n%s", err, out)
	}
	fi, err := os.Stat(filepath.Join(shared, "lastcall-prestop"))
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("installed file: %v %v", fi, err)
	}
	if out, err := exec.Command(filepath.Join(shared, "lastcall-prestop"), "version").CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "lastcall-prestop ") {
		t.Fatalf("the copy: %v\n%s", err, out)
	}
	if entries, _ := os.ReadDir(shared); len(entries) != 1 {
		t.Fatalf("left behind: %v", entries)
	}
	if out, err := exec.Command(bins.prestop, "install").CombinedOutput(); err == nil || !strings.Contains(string(out), "usage") {
		t.Fatalf("install without a directory: %v\n%s", err, out)
	}
}
