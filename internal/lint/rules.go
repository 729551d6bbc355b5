package lint

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/lastcall-dev/lastcall/internal/gate"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Severity orders findings; errors make `lastcall lint` fail.
type Severity string

const (
	SeverityError   Severity = "error"
	SeverityWarning Severity = "warning"
)

// Rules, by the name a finding carries.
const (
	RuleZeroGrace         = "zero-grace-with-prestop"
	RuleHookEatsGrace     = "prestop-exceeds-grace"
	RuleShortShutdown     = "short-sigterm-window"
	RuleHelperBudget      = "prestop-budget-exceeds-grace"
	RuleHelperFlags       = "prestop-flags"
	RuleNodeBudget        = "grace-exceeds-node-shutdown"
	RulePDBBlocksEviction = "pdb-blocks-eviction"
	RuleGateNeverDrains   = "gate-never-drains"
)

// Finding is one mistake, with where it is and what to do.
type Finding struct {
	Rule      string   `json:"rule"`
	Severity  Severity `json:"severity"`
	Source    string   `json:"source"`
	Object    string   `json:"object"`
	Container string   `json:"container,omitempty"`
	Message   string   `json:"message"`
}

// Options tune the checks.
type Options struct {
	// MinShutdown is the least time an app should have between SIGTERM and
	// SIGKILL; lastcall prestop keeps 10 s (its --reserve) by default.
	MinShutdown time.Duration
	// NodeShutdownGrace is the time a node shutdown gives pods (the
	// kubelet's shutdownGracePeriod, or the node agent's budget); 0 skips
	// the check.
	NodeShutdownGrace time.Duration
	// MeshProvider is Flagger's -mesh-provider, for Canaries without
	// spec.provider; default gate.DefaultMeshProvider.
	MeshProvider string
}

// DefaultMinShutdown matches lastcall prestop's default --reserve.
const DefaultMinShutdown = 10 * time.Second

// defaultGrace is the API server's default terminationGracePeriodSeconds.
const defaultGrace = 30 * time.Second

// Check runs every rule over the objects, in a stable order.
func Check(objs []Object, opts Options) []Finding {
	if opts.MinShutdown == 0 {
		opts.MinShutdown = DefaultMinShutdown
	}
	var out []Finding
	for _, o := range objs {
		if o.Pod != nil {
			out = append(out, checkPod(o, opts)...)
		}
		if o.PDB != nil {
			out = append(out, checkPDB(o, objs)...)
		}
		if o.Canary != nil {
			out = append(out, checkCanary(o, opts)...)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Severity != out[j].Severity {
			return out[i].Severity == SeverityError
		}
		return false
	})
	return out
}

func checkPod(o Object, opts Options) []Finding {
	spec := &o.Pod.Spec
	grace := defaultGrace
	if spec.TerminationGracePeriodSeconds != nil {
		grace = time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
	}
	var out []Finding
	add := func(rule string, sev Severity, container, format string, args ...any) {
		out = append(out, Finding{Rule: rule, Severity: sev, Source: o.Source, Object: o.ID(), Container: container, Message: fmt.Sprintf(format, args...)})
	}
	if opts.NodeShutdownGrace > 0 && grace > opts.NodeShutdownGrace {
		add(RuleNodeBudget, SeverityWarning, "",
			"terminationGracePeriodSeconds is %s but a node shutdown gives pods %s: on a shutdown the pod is cut short by %s",
			secs(grace), secs(opts.NodeShutdownGrace), secs(grace-opts.NodeShutdownGrace))
	}
	for _, c := range spec.Containers {
		if c.Lifecycle == nil || c.Lifecycle.PreStop == nil {
			continue
		}
		h := analyzeHook(c.Lifecycle.PreStop)
		if grace == 0 {
			add(RuleZeroGrace, SeverityError, c.Name,
				"terminationGracePeriodSeconds: 0 stops the pod at once with the kill signal: its preStop hook (%s) gets no time; give the pod the time the hook and the shutdown need", h.what)
			continue
		}
		if h.helperErr != nil {
			add(RuleHelperFlags, SeverityError, c.Name, "lastcall prestop would refuse its flags: %v", h.helperErr)
			continue
		}
		if hc := h.helper; hc != nil {
			switch {
			case hc.Budget > grace:
				add(RuleHelperBudget, SeverityError, c.Name,
					"lastcall prestop --budget=%s but terminationGracePeriodSeconds is %s: the hook plans for time the kubelet does not give; set --budget to %s or leave it out to read the pod's deadline",
					secs(hc.Budget), secs(grace), secs(grace))
				continue
			case hc.Budget > 0 && hc.Reserve >= hc.Budget:
				add(RuleHelperBudget, SeverityError, c.Name,
					"lastcall prestop --reserve=%s is not below --budget=%s: no step has any time", secs(hc.Reserve), secs(hc.Budget))
				continue
			case hc.Budget == 0 && hc.Reserve < opts.MinShutdown:
				add(RuleShortShutdown, SeverityWarning, c.Name,
					"lastcall prestop --reserve=%s leaves the app %s between SIGTERM and SIGKILL (want at least %s)",
					secs(hc.Reserve), secs(hc.Reserve), secs(opts.MinShutdown))
				continue
			}
		}
		switch {
		case h.min >= grace:
			add(RuleHookEatsGrace, SeverityError, c.Name,
				"preStop (%s) runs %s of the pod's %s grace: the kubelet sends SIGTERM only when the hook ends or the grace is spent, then gives the app a one-off 2 s before SIGKILL; make the hook shorter than terminationGracePeriodSeconds minus the app's shutdown time",
				h.what, atLeast(h), secs(grace))
		case h.max > 0 && grace-h.max < opts.MinShutdown:
			add(RuleShortShutdown, SeverityWarning, c.Name,
				"preStop (%s) can run %s of the pod's %s grace, leaving the app %s between SIGTERM and SIGKILL (want at least %s)",
				h.what, secs(h.max), secs(grace), secs(grace-h.max), secs(opts.MinShutdown))
		case h.max == 0 && h.min > 0 && grace-h.min < opts.MinShutdown:
			add(RuleShortShutdown, SeverityWarning, c.Name,
				"preStop (%s) runs at least %s of the pod's %s grace, leaving the app at most %s between SIGTERM and SIGKILL (want at least %s)",
				h.what, secs(h.min), secs(grace), secs(grace-h.min), secs(opts.MinShutdown))
		}
	}
	return out
}

func atLeast(h hook) string {
	if h.min == math.MaxInt64 {
		return "forever"
	}
	if h.max == h.min {
		return secs(h.min)
	}
	return "at least " + secs(h.min)
}

func secs(d time.Duration) string {
	return d.Round(100 * time.Millisecond).String()
}

// checkPDB finds budgets that allow no eviction of the workloads they
// select among the manifests.
func checkPDB(o Object, objs []Object) []Finding {
	pdb := o.PDB
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil || pdb.Spec.Selector == nil || sel.Empty() {
		return nil // the API server refuses such a PDB, or it selects everything: not ours to judge
	}
	var out []Finding
	for _, w := range objs {
		if w.Pod == nil || w.Namespace != o.Namespace || !sel.Matches(labels.Set(w.Pod.Labels)) || w.Kind == "Job" || w.Kind == "CronJob" {
			continue
		}
		replicas := int32(1)
		if w.Replicas != nil {
			replicas = *w.Replicas
		}
		if replicas == 0 || w.Kind == "DaemonSet" && pdb.Spec.MaxUnavailable == nil {
			continue
		}
		why := blocks(pdb, replicas)
		if why == "" {
			continue
		}
		out = append(out, Finding{Rule: RulePDBBlocksEviction, Severity: SeverityWarning, Source: o.Source, Object: o.ID(),
			Message: fmt.Sprintf("%s selects %s (%d replicas) and %s: no voluntary eviction is ever allowed, so kubectl drain, the cluster autoscaler and lastcall node-agent with pdb: respect wait on it for good (with pdb: override the agent deletes the pods at the budget's margin)",
				o.ID(), w.ID(), replicas, why)})
	}
	return out
}

// blocks says why pdb allows no disruption of a workload of n replicas, or
// "" when it allows some.
func blocks(pdb *policyv1.PodDisruptionBudget, n int32) string {
	if mu := pdb.Spec.MaxUnavailable; mu != nil {
		if v, err := intstr.GetScaledValueFromIntOrPercent(mu, int(n), true); err == nil && v == 0 {
			return fmt.Sprintf("maxUnavailable: %s", mu.String())
		}
		return ""
	}
	if ma := pdb.Spec.MinAvailable; ma != nil {
		if v, err := intstr.GetScaledValueFromIntOrPercent(ma, int(n), true); err == nil && int32(v) >= n {
			return fmt.Sprintf("minAvailable: %s", ma.String())
		}
	}
	return ""
}

// checkCanary warns about a Canary whose confirm-promotion webhook is
// lastcall's gate in a mode where the old primary pods serve traffic until
// Flagger replaces them: the gate never runs a draining policy there.
func checkCanary(o Object, opts Options) []Finding {
	hooks, _, _ := unstructured.NestedSlice(o.Canary.Object, "spec", "analysis", "webhooks")
	gated := false
	for _, h := range hooks {
		m, _ := h.(map[string]any)
		typ, _ := m["type"].(string)
		url, _ := m["url"].(string)
		if typ == "confirm-promotion" && strings.Contains(url, "/flagger/gate") {
			gated = true
		}
	}
	if !gated {
		return nil
	}
	never, why := gate.NeverDrains(o.Canary, opts.MeshProvider)
	if !never {
		return nil
	}
	return []Finding{{Rule: RuleGateNeverDrains, Severity: SeverityWarning, Source: o.Source, Object: o.ID(),
		Message: fmt.Sprintf("%s: lastcall's gate passes its confirm-promotion calls without running a policy that drains (drainsTraffic: true); the old pods leave through their own preStop hook (lastcall prestop), and a snapshot policy (drainsTraffic: false) still runs (docs/gate.md)", why)}}
}
