package netns

import (
	"os"
	"strings"
	"testing"
)

// Outside a namespace Enter made, nothing may touch the machine's network.
func TestRefusesTheMachinesOwnNamespace(t *testing.T) {
	t.Setenv(envInside, "")
	if Private() || PrivateMount() {
		t.Fatal("Private without Enter")
	}
	if err := AddAddress("10.250.0.2/32"); err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Errorf("AddAddress: %v", err)
	}
	if err := AddLocalRoute("10.96.0.0/16", "10.250.0.2"); err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Errorf("AddLocalRoute: %v", err)
	}
	// The parent's namespace recorded as our own: still the machine's.
	self, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(envInside, self)
	if Private() {
		t.Error("Private in the namespace Enter started from")
	}
	if err := Enter(); err == nil {
		t.Error("Enter with the variable set but the namespace unchanged: no error")
	}
}
