package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/lastcall-dev/lastcall/internal/devcluster"
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
	return devcluster.GoBuild(context.Background(), "", out, pkg, "CGO_ENABLED=0")
}
