package node

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// PDBMode says what happens to a pod whose eviction a PodDisruptionBudget
// still blocks PDBMargin before its group's deadline.
type PDBMode string

const (
	// PDBOverride deletes the pod with what is left of the group's budget:
	// the node goes down anyway, and a graceful stop beats a kill.
	PDBOverride PDBMode = "override"
	// PDBRespect leaves the pod running; the shutdown then kills it.
	PDBRespect PDBMode = "respect"
)

// RunsMode says whether the agent starts termination runs before evictions.
type RunsMode string

const (
	// RunsOn starts a TerminationRun for the pods each TerminationPolicy
	// selects, before their evictions (without the CRDs, the agent says so
	// and evicts without runs).
	RunsOn RunsMode = "on"
	// RunsOff evicts without runs.
	RunsOff RunsMode = "off"
)

// CriticalPriority is the kubelet's critical-pod threshold
// (system-cluster-critical): pods at or above it get
// ShutdownGracePeriodCriticalPods in the simple configuration.
const CriticalPriority int32 = 2000000000

// Defaults for the zero values of Config.
const (
	DefaultPDBMode     = PDBOverride
	DefaultRunsMode    = RunsOn
	DefaultPDBMargin   = 2 * time.Second
	DefaultParallelism = 128
	DefaultRunShare    = 0.5
)

// PriorityGracePeriod is one entry of the kubelet's
// shutdownGracePeriodByPodPriority: pods whose priority is at least
// Priority (and below the next entry's) get ShutdownGracePeriodSeconds.
type PriorityGracePeriod struct {
	Priority                   int32 `json:"priority"`
	ShutdownGracePeriodSeconds int64 `json:"shutdownGracePeriodSeconds"`
}

// Config is the node agent's configuration. Its budget fields have the
// kubelet's names and meaning, so a KubeletConfiguration file can be read
// as is (LoadConfig ignores its other fields). The zero value of each other
// field means the default documented on it.
type Config struct {
	// NodeName is the node this agent runs on.
	NodeName string `json:"nodeName,omitempty"`
	// ShutdownGracePeriod is the total budget of the simple form; regular
	// pods get it minus ShutdownGracePeriodCriticalPods, then critical pods
	// (priority >= CriticalPriority) the rest. Ignored when
	// ShutdownGracePeriodByPodPriority is set.
	ShutdownGracePeriod             metav1.Duration `json:"shutdownGracePeriod,omitempty"`
	ShutdownGracePeriodCriticalPods metav1.Duration `json:"shutdownGracePeriodCriticalPods,omitempty"`
	// ShutdownGracePeriodByPodPriority lists the groups and their budgets.
	ShutdownGracePeriodByPodPriority []PriorityGracePeriod `json:"shutdownGracePeriodByPodPriority,omitempty"`
	// PDB is what happens to PDB-blocked pods at the margin. Zero: override.
	PDB PDBMode `json:"pdb,omitempty"`
	// PDBMargin is how long before a group's deadline eviction retries stop.
	// Zero: DefaultPDBMargin.
	PDBMargin metav1.Duration `json:"pdbMargin,omitempty"`
	// Parallelism bounds concurrent eviction and delete requests. Zero:
	// DefaultParallelism.
	Parallelism int `json:"parallelism,omitempty"`
	// RunShare is the part of a group's budget that termination runs may use
	// before its evictions start. Zero: DefaultRunShare.
	RunShare float64 `json:"runShare,omitempty"`
	// TerminationRuns turns termination runs on or off. Zero: on.
	TerminationRuns RunsMode `json:"terminationRuns,omitempty"`
}

// Group is one priority group's budget.
type Group struct {
	// Priority is the lowest pod priority in the group.
	Priority int32
	Budget   time.Duration
}

// MaxConfigBytes bounds a config file: a kubelet config is a few KiB, and
// anything far larger is the wrong file.
const MaxConfigBytes = 1 << 20

// MaxGroupBudget bounds one group's budget. logind caps its delay locks far
// below it in practice; the bound keeps budget arithmetic from overflowing.
const MaxGroupBudget = 24 * time.Hour

// LoadConfig reads a YAML or JSON file with Config's fields. Unknown fields
// are ignored, so the kubelet's own config file works.
func LoadConfig(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxConfigBytes+1))
	if err != nil {
		return Config{}, fmt.Errorf("read config %s: %w", path, err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// ParseConfig parses the YAML or JSON form of Config (see LoadConfig).
func ParseConfig(b []byte) (Config, error) {
	var c Config
	if len(b) > MaxConfigBytes {
		return c, fmt.Errorf("larger than %d bytes", MaxConfigBytes)
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		return Config{}, fmt.Errorf("parse: %w", err)
	}
	return c, nil
}

// WithDefaults returns c with its zero fields replaced by their defaults.
func (c Config) WithDefaults() Config {
	if c.PDB == "" {
		c.PDB = DefaultPDBMode
	}
	if c.PDBMargin.Duration == 0 {
		c.PDBMargin.Duration = DefaultPDBMargin
	}
	if c.Parallelism == 0 {
		c.Parallelism = DefaultParallelism
	}
	if c.RunShare == 0 {
		c.RunShare = DefaultRunShare
	}
	if c.TerminationRuns == "" {
		c.TerminationRuns = DefaultRunsMode
	}
	return c
}

// Groups returns the priority groups, lowest priority first, derived as the
// kubelet derives them: ShutdownGracePeriodByPodPriority when set, else two
// groups from the simple form (priority 0 and CriticalPriority).
func (c Config) Groups() []Group {
	if len(c.ShutdownGracePeriodByPodPriority) > 0 {
		gs := make([]Group, 0, len(c.ShutdownGracePeriodByPodPriority))
		for _, p := range c.ShutdownGracePeriodByPodPriority {
			gs = append(gs, Group{Priority: p.Priority, Budget: time.Duration(p.ShutdownGracePeriodSeconds) * time.Second})
		}
		sort.SliceStable(gs, func(i, j int) bool { return gs[i].Priority < gs[j].Priority })
		return gs
	}
	total, critical := c.ShutdownGracePeriod.Duration, c.ShutdownGracePeriodCriticalPods.Duration
	if total <= 0 || critical < 0 || critical > total {
		return nil
	}
	return []Group{
		{Priority: 0, Budget: total - critical},
		{Priority: CriticalPriority, Budget: critical},
	}
}

// Total is the sum of the group budgets: what the agent asks logind for.
func Total(groups []Group) time.Duration {
	var sum time.Duration
	for _, g := range groups {
		sum += g.Budget
	}
	return sum
}

// Validate reports configuration errors. It checks c as given; call it on
// c.WithDefaults() to accept zero values.
func (c Config) Validate() error {
	var errs []error
	if c.NodeName == "" {
		errs = append(errs, errors.New("node name is required (--node or $NODE_NAME)"))
	}
	if len(c.ShutdownGracePeriodByPodPriority) == 0 {
		switch total, critical := c.ShutdownGracePeriod.Duration, c.ShutdownGracePeriodCriticalPods.Duration; {
		case total <= 0:
			errs = append(errs, errors.New("no budget: set shutdownGracePeriod or shutdownGracePeriodByPodPriority"))
		case total > MaxGroupBudget:
			errs = append(errs, fmt.Errorf("shutdownGracePeriod %s is longer than %s", total, MaxGroupBudget))
		case critical < 0 || critical > total:
			errs = append(errs, fmt.Errorf("shutdownGracePeriodCriticalPods %s must be between 0 and shutdownGracePeriod %s", critical, total))
		}
	}
	seen := map[int32]bool{}
	for _, p := range c.ShutdownGracePeriodByPodPriority {
		if seen[p.Priority] {
			errs = append(errs, fmt.Errorf("shutdownGracePeriodByPodPriority: priority %d listed twice", p.Priority))
		}
		seen[p.Priority] = true
		if p.ShutdownGracePeriodSeconds < 0 {
			errs = append(errs, fmt.Errorf("shutdownGracePeriodByPodPriority: priority %d has a negative budget", p.Priority))
		}
		if p.ShutdownGracePeriodSeconds > int64(MaxGroupBudget/time.Second) {
			errs = append(errs, fmt.Errorf("shutdownGracePeriodByPodPriority: priority %d: %d s is longer than %s", p.Priority, p.ShutdownGracePeriodSeconds, MaxGroupBudget))
		}
	}
	if len(c.ShutdownGracePeriodByPodPriority) > 0 && Total(c.Groups()) <= 0 {
		errs = append(errs, errors.New("shutdownGracePeriodByPodPriority: the budgets add up to zero"))
	}
	if c.PDB != PDBOverride && c.PDB != PDBRespect {
		errs = append(errs, fmt.Errorf("pdb %q: want %q or %q", c.PDB, PDBOverride, PDBRespect))
	}
	if c.PDBMargin.Duration < 0 {
		errs = append(errs, fmt.Errorf("pdbMargin %s is negative", c.PDBMargin.Duration))
	}
	if c.Parallelism < 1 {
		errs = append(errs, fmt.Errorf("parallelism %d: want at least 1", c.Parallelism))
	}
	if c.RunShare < 0 || c.RunShare > 1 {
		errs = append(errs, fmt.Errorf("runShare %g: want a fraction between 0 and 1", c.RunShare))
	}
	if c.TerminationRuns != RunsOn && c.TerminationRuns != RunsOff {
		errs = append(errs, fmt.Errorf("terminationRuns %q: want %q or %q", c.TerminationRuns, RunsOn, RunsOff))
	}
	return errors.Join(errs...)
}

// ScaleGroups fits the groups into what logind grants: when their total is
// longer, every budget shrinks in proportion, so the order and the shares
// stay as configured and nothing is planned beyond logind's deadline.
func ScaleGroups(groups []Group, granted time.Duration) []Group {
	total := Total(groups)
	out := append([]Group(nil), groups...)
	if total <= granted || total == 0 {
		return out
	}
	for i := range out {
		out[i].Budget = time.Duration(float64(out[i].Budget) * float64(granted) / float64(total)).Truncate(time.Millisecond)
	}
	return out
}
