package gate

import (
	"fmt"
	"regexp"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
	"github.com/lastcall-dev/lastcall/internal/text"
)

// Answer is the JSON body of /flagger/gate. Flagger puts a refusal's body in
// its event message, so it stays short.
type Answer struct {
	Run       string `json:"run,omitempty"`
	Phase     string `json:"phase"`
	PodsDone  int32  `json:"podsDone"`
	PodsTotal int32  `json:"podsTotal"`
	Message   string `json:"message"`
}

// PhaseNoRun is the Answer phase when no run could be started (no policy,
// no canary): the gate holds until that is fixed.
const PhaseNoRun = "NoRun"

// Answer phases of a confirm-promotion call the gate passes without a run
// because the old primary pods carry traffic (200): Deferred, the drain
// runs at a later call of this promotion; NotDrained, no call of it comes
// when they carry none.
const (
	PhaseDeferred   = "Deferred"
	PhaseNotDrained = "NotDrained"
)

// Events on the Canary for those answers.
const (
	ReasonDrainDeferred = "DrainDeferred"
	ReasonDrainSkipped  = "DrainSkipped"
)

// Decide says whether the gate passes for a run, and why. A manual override
// wins; otherwise it passes once the run Succeeded, or when it ended Failed
// (no retry left) and onFailure is open.
func Decide(run *v1alpha1.TerminationRun, onFailure v1alpha1.GateFailureAction) (bool, Answer) {
	st := &run.Status
	a := Answer{Run: run.Name, Phase: string(st.Phase), PodsDone: st.PodsDone, PodsTotal: st.PodsTotal}
	if a.Phase == "" {
		a.Phase = string(v1alpha1.RunPending)
	}
	if a.PodsTotal == 0 {
		a.PodsTotal = int32(len(run.Spec.Pods))
	}
	if o := run.Spec.Gate; o != nil {
		when := o.At.UTC().Format(time.RFC3339)
		switch o.Action {
		case v1alpha1.GateOverrideOpen:
			a.Message = fmt.Sprintf("opened by %s at %s", o.By, when)
			return true, a
		case v1alpha1.GateOverrideClosed:
			a.Message = fmt.Sprintf("closed by %s at %s", o.By, when)
			return false, a
		}
	}
	done := meta.IsStatusConditionTrue(st.Conditions, v1alpha1.ConditionComplete)
	switch {
	case st.Phase == v1alpha1.RunSucceeded:
		a.Message = fmt.Sprintf("run %s succeeded", run.Name)
		return true, a
	case st.Phase == v1alpha1.RunFailed && !done:
		a.Message = fmt.Sprintf("run %s failed, exit handlers running: %s", run.Name, short(st.Message))
	case st.Phase == v1alpha1.RunFailed && onFailure == v1alpha1.GateOpen:
		a.Message = fmt.Sprintf("run %s failed, passing as its policy says (gate.onFailure: open): %s", run.Name, short(st.Message))
		return true, a
	case st.Phase == v1alpha1.RunFailed:
		a.Message = fmt.Sprintf("run %s failed, holding (gate.onFailure: hold): %s", run.Name, short(st.Message))
	case st.Message != "":
		a.Message = fmt.Sprintf("waiting for run %s: %s", run.Name, short(st.Message))
	default:
		a.Message = fmt.Sprintf("waiting for run %s", run.Name)
	}
	return false, a
}

// short trims a run's message to what fits an event line.
func short(s string) string {
	const limit = 240
	return text.Truncate(s, limit+len("…"), "…")
}

// addresses are IPv4 addresses and bracketed IPv6 ones, as in URLs.
var addresses = regexp.MustCompile(`\b(?:\d{1,3}\.){3}\d{1,3}\b|\[[0-9A-Fa-f:.]+\]`)

// redactAddresses replaces the IP addresses in a message for callers that
// did not authenticate.
func redactAddresses(msg string) string { return addresses.ReplaceAllString(msg, "<pod IP>") }
