package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Binaries built once for the package's tests, as they ship: static,
// trimmed, stripped.
var bins struct {
	prestop, soakapp, firstrequest string
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "lastcall-prestop-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins.prestop = filepath.Join(dir, "lastcall-prestop")
	bins.soakapp = filepath.Join(dir, "soakapp")
	bins.firstrequest = filepath.Join(dir, "firstrequest")
	for out, pkg := range map[string]string{bins.prestop: ".", bins.soakapp: "./testdata/soakapp", bins.firstrequest: "./testdata/firstrequest"} {
		if err := buildStatic(out, pkg); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildStatic builds pkg the way the image build does.
func buildStatic(out, pkg string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}
