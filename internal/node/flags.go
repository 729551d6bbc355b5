package node

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// AddFlags binds c's fields to flags whose defaults are c's current values
// (zero fields show their documented defaults).
func (c *Config) AddFlags(fs *pflag.FlagSet) {
	if c.NodeName == "" {
		c.NodeName = os.Getenv("NODE_NAME")
	}
	d := c.WithDefaults()
	fs.StringVar(&c.NodeName, "node", c.NodeName, "name of this node (default $NODE_NAME)")
	fs.DurationVar(&c.ShutdownGracePeriod.Duration, "shutdown-grace-period", c.ShutdownGracePeriod.Duration, "total budget of the simple form, as the kubelet's shutdownGracePeriod")
	fs.DurationVar(&c.ShutdownGracePeriodCriticalPods.Duration, "shutdown-grace-period-critical-pods", c.ShutdownGracePeriodCriticalPods.Duration, "part of --shutdown-grace-period kept for pods with priority >= 2000000000, as the kubelet's shutdownGracePeriodCriticalPods")
	fs.Var((*priorityList)(&c.ShutdownGracePeriodByPodPriority), "grace-period-by-priority", "groups as PRIORITY=SECONDS,... (the kubelet's shutdownGracePeriodByPodPriority); overrides the simple form")
	fs.StringVar((*string)(&c.PDB), "pdb", string(d.PDB), "what happens to a pod a PodDisruptionBudget still protects --pdb-margin before its group's deadline: override (delete it with the grace left) or respect (leave it running)")
	fs.DurationVar(&c.PDBMargin.Duration, "pdb-margin", d.PDBMargin.Duration, "how long before a group's deadline eviction retries stop")
	fs.IntVar(&c.Parallelism, "parallelism", d.Parallelism, "concurrent eviction and delete requests")
	fs.Float64Var(&c.RunShare, "run-share", d.RunShare, "part of a group's budget termination runs may use before its evictions start")
	fs.StringVar((*string)(&c.TerminationRuns), "termination-runs", string(d.TerminationRuns), "on: before a group's evictions, start a TerminationRun for the pods each TerminationPolicy selects and wait for it (up to --run-share of the group's budget); off: evict without runs")
}

// priorityList is the flag form of ShutdownGracePeriodByPodPriority:
// "0=20,100000=10" (seconds; a Go duration such as 20s works too).
type priorityList []PriorityGracePeriod

func (l *priorityList) String() string {
	parts := make([]string, 0, len(*l))
	for _, p := range *l {
		parts = append(parts, fmt.Sprintf("%d=%d", p.Priority, p.ShutdownGracePeriodSeconds))
	}
	return strings.Join(parts, ",")
}

func (l *priorityList) Set(v string) error {
	var out []PriorityGracePeriod
	for _, part := range strings.Split(v, ",") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		prio, secs, ok := strings.Cut(part, "=")
		if !ok {
			return fmt.Errorf("%q: want PRIORITY=SECONDS", part)
		}
		p, err := strconv.ParseInt(strings.TrimSpace(prio), 10, 32)
		if err != nil {
			return fmt.Errorf("%q: priority: %w", part, err)
		}
		s, err := parseSeconds(strings.TrimSpace(secs))
		if err != nil {
			return fmt.Errorf("%q: grace period: %w", part, err)
		}
		out = append(out, PriorityGracePeriod{Priority: int32(p), ShutdownGracePeriodSeconds: s})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Priority < out[j].Priority })
	*l = out
	return nil
}

func (l *priorityList) Type() string { return "list" }

func parseSeconds(v string) (int64, error) {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return n, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, err
	}
	if d%time.Second != 0 {
		return 0, fmt.Errorf("%s: whole seconds only, as the kubelet's", d)
	}
	return int64(d / time.Second), nil
}
