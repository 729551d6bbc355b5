package node

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// FuzzParseConfig holds the config parser to its contract for any input:
// no panic, and a configuration that validates yields groups sorted lowest
// priority first, none negative, with a positive total.
func FuzzParseConfig(f *testing.F) {
	for _, seed := range []string{
		"shutdownGracePeriod: 30s\nshutdownGracePeriodCriticalPods: 10s\n",
		"shutdownGracePeriodByPodPriority:\n- priority: 100000\n  shutdownGracePeriodSeconds: 10\n- priority: 0\n  shutdownGracePeriodSeconds: 20\n",
		`{"shutdownGracePeriod":"1m","pdb":"respect","pdbMargin":"3s","parallelism":4,"runShare":0.25}`,
		"shutdownGracePeriodByPodPriority:\n- priority: 1\n  shutdownGracePeriodSeconds: 9223372036854775807\n",
		"kind: KubeletConfiguration\nfoo: [",
		"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b)
		if err != nil {
			return
		}
		c.NodeName = "n"
		c = c.WithDefaults()
		if c.Validate() != nil {
			return
		}
		gs := c.Groups()
		if !sort.SliceIsSorted(gs, func(i, j int) bool { return gs[i].Priority < gs[j].Priority }) {
			t.Fatalf("groups not sorted: %v", gs)
		}
		for _, g := range gs {
			if g.Budget < 0 || g.Budget > MaxGroupBudget {
				t.Fatalf("group budget %s out of range: %v", g.Budget, gs)
			}
		}
		if Total(gs) <= 0 {
			t.Fatalf("a valid config with no budget: %v", gs)
		}
	})
}

func TestLoadConfigRefusesOversizedFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.yaml")
	big := "shutdownGracePeriod: 30s\n# " + strings.Repeat("x", MaxConfigBytes) + "\n"
	if err := os.WriteFile(path, []byte(big), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(path); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("LoadConfig of a %d-byte file: err %v, want a size error", len(big), err)
	}
}

func TestValidateRefusesBudgetsBeyondTheBound(t *testing.T) {
	c := Config{NodeName: "n", ShutdownGracePeriodByPodPriority: []PriorityGracePeriod{{Priority: 0, ShutdownGracePeriodSeconds: 1 << 40}}}
	if err := c.WithDefaults().Validate(); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("Validate: %v, want a bound error", err)
	}
	c = Config{NodeName: "n", ShutdownGracePeriod: dur(2 * MaxGroupBudget)}
	if err := c.WithDefaults().Validate(); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("Validate: %v, want a bound error", err)
	}
}
