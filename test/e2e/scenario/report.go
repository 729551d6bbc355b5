package scenario

import (
	"context"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
)

// Report is what happened in a scenario, with the time each thing was seen.
// Times of one kind are comparable: all come from this process's clock.
type Report struct {
	Mode  Mode
	Start time.Time
	// Moments the scenario acted or saw a stage end. RunFailed is when the
	// gate run was first seen failing (a pod out of steps and retries).
	Initialized, Released, Killed, Restarted, RunFailed, Recovered, Promoted, OldPodsGone time.Time
	// OldPrimary are the primary's pods before the release, sorted;
	// FailingPod refuses /drain until Recovered; HeldPod's first drain was
	// held until the kill.
	OldPrimary          []string
	FailingPod, HeldPod string
	// RunAtKill is the gate run as stored just after the kill.
	RunAtKill *v1alpha1.TerminationRun
	// HeldAfterFailure is the first gate answer after RunFailed, and
	// CanaryWhileFailed the Canary's phase once it was given.
	HeldAfterFailure  GateCall
	CanaryWhileFailed string
	// Runs are the TerminationRuns in the namespace at the end (from the API).
	Runs []v1alpha1.TerminationRun
	// Everything seen, in order.
	GateCalls  []GateCall
	Phases     []PhaseChange
	Images     []ImageChange
	RunChanges []RunChange
	Pods       []PodRecord
	// Routes is the HTTPRoute's weights as they changed (Gateway API modes).
	Routes []RouteChange
	// Logs lists the log files of the processes (Flagger, each lastcall start).
	Logs []string
}

// FirstOpen is the first answer that let Flagger promote: a 200 for a run
// (not a pass without one while the primary carried traffic).
func (r *Report) FirstOpen() (GateCall, bool) {
	for _, c := range r.GateCalls {
		if c.Open() && !c.Undrained() {
			return c, true
		}
	}
	return GateCall{}, false
}

// Pod returns the record of the named pod.
func (r *Report) Pod(name string) (PodRecord, bool) {
	for _, p := range r.Pods {
		if p.Name == name {
			return p, true
		}
	}
	return PodRecord{}, false
}

// finish collects the Report.
func (s *Scenario) finish(ctx context.Context) *Report {
	var runs v1alpha1.TerminationRunList
	listErr := s.c.List(context.WithoutCancel(ctx), &runs, client.InNamespace(s.cfg.Namespace))
	s.obs.mu.Lock()
	phases := append([]PhaseChange(nil), s.obs.phases...)
	images := append([]ImageChange(nil), s.obs.images...)
	changes := append([]RunChange(nil), s.obs.changes...)
	routes := append([]RouteChange(nil), s.obs.routes...)
	s.obs.mu.Unlock()
	calls := s.gate.all()
	pods := s.pods.records()
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.report
	if listErr == nil {
		r.Runs = runs.Items
	}
	r.GateCalls, r.Phases, r.Images, r.RunChanges, r.Pods = calls, phases, images, changes, pods
	r.Routes, r.Mode = routes, s.cfg.Mode
	if s.flagger != nil {
		r.Logs = append(r.Logs, s.flagger.LogPath())
	}
	r.Logs = append(r.Logs, s.lastcall.logs()...)
	return &r
}

// Snapshot is the scenario's state for a live view.
type Snapshot struct {
	Start, Now time.Time
	Stage      string
	Canary     CanaryState
	LastGate   *GateCall
	GateCalls  int
	Run        *v1alpha1.TerminationRun
	// Route is the HTTPRoute's weights as last seen (Gateway API modes).
	Route *RouteChange
	Log   []string // the last lines of the scenario's log
}

// Snapshot returns the current state; safe to call while Run runs.
func (s *Scenario) Snapshot(logLines int) Snapshot {
	snap := Snapshot{Now: time.Now(), Run: s.gateRun()}
	s.obs.mu.Lock()
	snap.Canary = s.obs.canary
	if n := len(s.obs.routes); n > 0 {
		rc := s.obs.routes[n-1]
		snap.Route = &rc
	}
	s.obs.mu.Unlock()
	calls := s.gate.all()
	snap.GateCalls = len(calls)
	if n := len(calls); n > 0 {
		snap.LastGate = &calls[n-1]
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	snap.Start, snap.Stage = s.report.Start, s.stage
	from := max(0, len(s.log)-logLines)
	snap.Log = append([]string(nil), s.log[from:]...)
	return snap
}
