package node

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Outcome is what became of one pod in a shutdown.
type Outcome string

const (
	// OutcomeGraceful: evicted through the Eviction API (or gone by itself).
	OutcomeGraceful Outcome = "graceful"
	// OutcomeOverridden: a PDB still blocked it at the margin; deleted with
	// what was left of the group's budget (pdb: override).
	OutcomeOverridden Outcome = "overridden"
	// OutcomeLeft: left running (pdb: respect, an API error, or the shutdown
	// was cancelled or ran out of budget first).
	OutcomeLeft Outcome = "left"
)

// Metrics are the node agent's Prometheus metrics.
type Metrics struct {
	pods          *prometheus.CounterVec
	groupDuration *prometheus.HistogramVec
	inhibitDelay  prometheus.Gauge
	budget        prometheus.Gauge
	shutdowns     *prometheus.CounterVec
	runs          *prometheus.CounterVec
}

// NewMetrics registers the metrics on reg (nil: a private registry).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		pods: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lastcall_node_shutdown_pods_total",
			Help: "Pods handled by node shutdowns, by outcome: graceful (evicted), overridden (deleted despite a PDB at the margin), left (still running).",
		}, []string{"outcome"}),
		groupDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "lastcall_node_shutdown_group_duration_seconds",
			Help:    "How long each priority group of a node shutdown took; group is the group's lowest priority from the config.",
			Buckets: []float64{0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600},
		}, []string{"group"}),
		inhibitDelay: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lastcall_node_inhibit_delay_granted_seconds",
			Help: "logind's InhibitDelayMaxUSec as re-read after the agent's drop-in: the longest logind waits for the shutdown.",
		}),
		budget: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lastcall_node_shutdown_budget_seconds",
			Help: "The total budget a shutdown uses: the configured group budgets, scaled down to the granted inhibit delay if it is shorter.",
		}),
		shutdowns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lastcall_node_shutdowns_total",
			Help: "Node shutdowns seen, by result: done, cancelled, budget_spent, failed.",
		}, []string{"result"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lastcall_node_shutdown_runs_total",
			Help: "Termination runs started by node shutdowns, by result: succeeded, failed, timeout (still going when evictions had to start), error (not created).",
		}, []string{"result"}),
	}
	for _, r := range []string{runSucceeded, runFailed, runTimeout, runError} {
		m.runs.WithLabelValues(r)
	}
	for _, o := range []Outcome{OutcomeGraceful, OutcomeOverridden, OutcomeLeft} {
		m.pods.WithLabelValues(string(o))
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	reg.MustRegister(m.pods, m.groupDuration, m.inhibitDelay, m.budget, m.shutdowns, m.runs)
	return m
}
