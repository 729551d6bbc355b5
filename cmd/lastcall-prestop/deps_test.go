package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The helper is copied into app images: it must stay small and static, so
// none of the heavy client libraries may creep into its import graph.
func TestImportGraphHasNoHeavyClients(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	forbidden := []string{
		"k8s.io/client-go", "sigs.k8s.io/", "gocloud.dev", "github.com/aws",
		"github.com/prometheus", "cloud.google.com", "github.com/Azure",
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps listed only %v", deps)
	}
	for _, dep := range deps {
		for _, f := range forbidden {
			if strings.HasPrefix(dep, f) {
				t.Errorf("lastcall-prestop imports %s", dep)
			}
		}
	}
}
