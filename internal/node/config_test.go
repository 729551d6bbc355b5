package node

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func dur(d time.Duration) metav1.Duration { return metav1.Duration{Duration: d} }

func TestGroupsAreDerivedAsTheKubeletDerivesThem(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want []Group
	}{
		{
			name: "simple form: regular pods get the total minus the critical share",
			cfg:  Config{ShutdownGracePeriod: dur(30 * time.Second), ShutdownGracePeriodCriticalPods: dur(10 * time.Second)},
			want: []Group{{0, 20 * time.Second}, {CriticalPriority, 10 * time.Second}},
		},
		{
			name: "simple form without a critical share",
			cfg:  Config{ShutdownGracePeriod: dur(30 * time.Second)},
			want: []Group{{0, 30 * time.Second}, {CriticalPriority, 0}},
		},
		{
			name: "by priority, sorted lowest first",
			cfg: Config{ShutdownGracePeriodByPodPriority: []PriorityGracePeriod{
				{Priority: 100000, ShutdownGracePeriodSeconds: 10}, {Priority: 0, ShutdownGracePeriodSeconds: 60}, {Priority: 10000, ShutdownGracePeriodSeconds: 20},
			}},
			want: []Group{{0, 60 * time.Second}, {10000, 20 * time.Second}, {100000, 10 * time.Second}},
		},
		{
			name: "by priority wins over the simple form",
			cfg: Config{ShutdownGracePeriod: dur(time.Minute),
				ShutdownGracePeriodByPodPriority: []PriorityGracePeriod{{Priority: 5, ShutdownGracePeriodSeconds: 7}}},
			want: []Group{{5, 7 * time.Second}},
		},
		{
			name: "critical share above the total: none, as the kubelet",
			cfg:  Config{ShutdownGracePeriod: dur(10 * time.Second), ShutdownGracePeriodCriticalPods: dur(20 * time.Second)},
			want: nil,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.cfg.Groups(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Groups() = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestValidateRejectsBadConfigs(t *testing.T) {
	ok := Config{NodeName: "n", ShutdownGracePeriod: dur(30 * time.Second)}.WithDefaults()
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"no node", func(c *Config) { c.NodeName = "" }, "node name is required"},
		{"no budget", func(c *Config) { c.ShutdownGracePeriod = dur(0) }, "no budget"},
		{"critical above total", func(c *Config) { c.ShutdownGracePeriodCriticalPods = dur(time.Minute) }, "between 0 and shutdownGracePeriod"},
		{"duplicate priority", func(c *Config) {
			c.ShutdownGracePeriodByPodPriority = []PriorityGracePeriod{{1, 5}, {1, 6}}
		}, "priority 1 listed twice"},
		{"zero total by priority", func(c *Config) {
			c.ShutdownGracePeriodByPodPriority = []PriorityGracePeriod{{1, 0}}
		}, "add up to zero"},
		{"bad pdb mode", func(c *Config) { c.PDB = "ignore" }, `pdb "ignore"`},
		{"negative margin", func(c *Config) { c.PDBMargin = dur(-time.Second) }, "pdbMargin"},
		{"run share above 1", func(c *Config) { c.RunShare = 1.5 }, "runShare"},
		{"bad runs mode", func(c *Config) { c.TerminationRuns = "maybe" }, `terminationRuns "maybe"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.change(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestLoadConfigReadsTheKubeletsOwnConfigFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kubelet.yaml")
	kubelet := `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
shutdownGracePeriod: 30s
shutdownGracePeriodCriticalPods: 10s
shutdownGracePeriodByPodPriority:
- priority: 100000
  shutdownGracePeriodSeconds: 10
- priority: 0
  shutdownGracePeriodSeconds: 20
`
	if err := os.WriteFile(path, []byte(kubelet), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []Group{{0, 20 * time.Second}, {100000, 10 * time.Second}}
	if got := c.Groups(); !reflect.DeepEqual(got, want) {
		t.Errorf("groups %v, want %v", got, want)
	}
	if c.ShutdownGracePeriod.Duration != 30*time.Second {
		t.Errorf("shutdownGracePeriod %s, want 30s", c.ShutdownGracePeriod.Duration)
	}
}

func TestScaleGroupsKeepsSharesWithinTheGrantedDelay(t *testing.T) {
	groups := []Group{{0, 20 * time.Second}, {CriticalPriority, 10 * time.Second}}
	if got := ScaleGroups(groups, time.Minute); !reflect.DeepEqual(got, groups) {
		t.Errorf("a longer delay changed the budgets: %v", got)
	}
	want := []Group{{0, 10 * time.Second}, {CriticalPriority, 5 * time.Second}}
	if got := ScaleGroups(groups, 15*time.Second); !reflect.DeepEqual(got, want) {
		t.Errorf("ScaleGroups(15s) = %v, want %v", got, want)
	}
}
