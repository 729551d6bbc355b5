package gate

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the lastcall_gate_* series. Labels are bounded: endpoints and
// results are fixed sets, hook types are validated against Flagger's list.
type metrics struct {
	decisions *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	runs      *prometheus.CounterVec
	events    *prometheus.CounterVec
	undrained *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lastcall_gate_decisions_total",
			Help: "Gate answers by endpoint, result (open, closed, accepted, invalid, denied, error) and Flagger hook type.",
		}, []string{"endpoint", "result", "hook"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "lastcall_gate_request_duration_seconds",
			Help:    "Time to answer a gate request, by endpoint.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"endpoint"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lastcall_gate_runs_created_total",
			Help: "TerminationRuns created by /flagger/gate, by hook type.",
		}, []string{"hook"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lastcall_gate_flagger_events_total",
			Help: "Flagger events received on /flagger/event, by event type and canary phase.",
		}, []string{"type", "phase"}),
		undrained: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lastcall_gate_undrained_passes_total",
			Help: "Confirm-promotion calls passed without a drain because the old primary pods carried traffic: Deferred (a later call drains) or NotDrained (no safe moment in this mode).",
		}, []string{"phase"}),
	}
	if reg != nil {
		reg.MustRegister(m.decisions, m.duration, m.runs, m.events, m.undrained)
	}
	return m
}

// Flagger's canary phases; anything else is counted as "Other".
var knownPhases = map[string]bool{
	"Initializing": true, "Initialized": true, "Waiting": true, "Progressing": true, "WaitingPromotion": true,
	"Promoting": true, "Finalising": true, "Succeeded": true, "Failed": true, "Terminating": true, "Terminated": true,
}

func phaseLabel(p string) string {
	if knownPhases[p] {
		return p
	}
	return "Other"
}
