package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestShippedBinaryLinksNoDevTools: the image's binary must not carry the
// local control plane (issue 12 item 7) nor the kubelet simulation.
func TestShippedBinaryLinksNoDevTools(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dev := range []string{"/internal/devcluster", "/internal/kubeletsim"} {
		for _, pkg := range strings.Fields(string(out)) {
			if strings.Contains(pkg, dev) {
				t.Errorf("cmd/lastcall links %s", pkg)
			}
		}
	}
}
