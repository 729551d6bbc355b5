package scenario

import (
	"fmt"
	"net/http"
	"time"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
)

// Check is one property the scenario must show, and what contradicts it.
type Check struct {
	Name     string
	Problems []string
}

// Properties the scenario proves, as Check names.
const (
	CheckHeld     = "Flagger does not promote while the run is in progress or failing"
	CheckPromoted = "Flagger promotes once the run Succeeded"
	CheckDrained  = "each old primary pod was drained before it was deleted"
	CheckKill     = "a SIGKILLed lastcall neither opens the gate early nor starts a second run"
	CheckService  = "no pod was drained while it was a ready endpoint with a share of the traffic"
	CheckSnapshot = "the old primary pods' state was saved while they kept serving, and nothing drained them"
)

// Verify checks the Report of a completed scenario. Times are compared only
// where causality orders them: the recorder logs an answer before Flagger
// receives it, and watches see a change after it was written.
func (r *Report) Verify() []Check {
	open, ok := r.FirstOpen()
	if !ok {
		return []Check{{Name: CheckPromoted, Problems: []string{"the gate never answered 200"}}}
	}
	switch r.Mode {
	case ModeKubernetes:
		return []Check{
			{CheckPromoted, r.checkPromoted(open)},
			{CheckService, r.checkInService()},
			{CheckSnapshot, r.checkSnapshot(open)},
		}
	case ModeProgressive:
		return []Check{
			{CheckPromoted, r.checkPromoted(open)},
			{CheckDrained, r.checkDrained(open)},
			{CheckService, r.checkInService()},
		}
	}
	return []Check{
		{CheckHeld, r.checkHeld(open)},
		{CheckPromoted, r.checkPromoted(open)},
		{CheckDrained, r.checkDrained(open)},
		{CheckKill, r.checkKill(open)},
		{CheckService, r.checkInService()},
	}
}

// checkInService: when each drain request reached a pod, the pod took no
// traffic. In the Gateway API modes, the HTTPRoute as last seen before the
// request gave the primary weight 0: the observer sees a route change
// within milliseconds, and the call that may drain comes an analysis
// interval (10 s) after Flagger switched the route. With the kubernetes
// provider, the pod was not a ready endpoint of the app's Service.
func (r *Report) checkInService() []string {
	var out []string
	for _, p := range r.Pods {
		for _, d := range p.Drains {
			if r.Mode.gatewayAPI() {
				w, seen := r.primaryWeightAt(d.Start)
				switch {
				case !seen:
					out = append(out, fmt.Sprintf("pod %s drained at %s before any HTTPRoute was seen", p.Name, since(r.Start, d.Start)))
				case p.App == Primary && w > 0:
					out = append(out, fmt.Sprintf("pod %s drained at %s while the HTTPRoute gave the primary weight %d", p.Name, since(r.Start, d.Start), w))
				}
				continue
			}
			if r.readyAt(p.Name, d.Start) {
				out = append(out, fmt.Sprintf("pod %s drained at %s while it was a ready endpoint of Service %s", p.Name, since(r.Start, d.Start), App))
			}
		}
	}
	return out
}

// primaryWeightAt is the primary's weight in the HTTPRoute as last seen at t.
func (r *Report) primaryWeightAt(t time.Time) (int64, bool) {
	w, seen := int64(0), false
	for _, c := range r.Routes {
		if c.At.After(t) {
			break
		}
		w, seen = c.Primary, true
	}
	return w, seen
}

// readyAt reports whether pod was a ready endpoint of the app's Service at
// t, as the EndpointSlice controller would list it: the Service selects the
// primary's pods (Flagger's kubernetes provider), from when the pod served
// until its deletion. (The dev cluster's pod IPs are loopback addresses,
// which EndpointSlice validation refuses, so no slice exists to watch.)
func (r *Report) readyAt(pod string, t time.Time) bool {
	p, ok := r.Pod(pod)
	return ok && p.App == Primary && !p.Serving.IsZero() && !p.Serving.After(t) && (p.DeletionSeen.IsZero() || p.DeletionSeen.After(t))
}

// checkSnapshot: with the kubernetes provider nothing drained the old
// primary pods; the snapshot policy saved each one's state before it was
// deleted and before the gate opened, while it was still serving.
func (r *Report) checkSnapshot(open GateCall) []string {
	var out []string
	if len(r.OldPrimary) == 0 {
		return []string{"no old primary pods"}
	}
	for _, name := range r.OldPrimary {
		p, _ := r.Pod(name)
		switch {
		case len(p.Drains) > 0:
			out = append(out, fmt.Sprintf("pod %s got %d drain requests", name, len(p.Drains)))
		case len(p.Saves) == 0:
			out = append(out, fmt.Sprintf("pod %s's state was never read", name))
		case !p.Saves[0].Before(open.At):
			out = append(out, fmt.Sprintf("pod %s's state was read at %s, after the gate opened at %s", name, since(r.Start, p.Saves[0]), since(r.Start, open.At)))
		case !r.readyAt(name, p.Saves[0]):
			out = append(out, fmt.Sprintf("pod %s was not serving when its state was saved at %s", name, since(r.Start, p.Saves[0])))
		}
	}
	return out
}

// checkHeld: every answer before the run Succeeded was "not yet", both while
// the run was in progress and after an attempt had failed; the canary waited
// in WaitingPromotion; the primary kept v1 until the gate opened.
func (r *Report) checkHeld(open GateCall) []string {
	var out []string
	inProgress := false
	for _, c := range r.GateCalls {
		if c.Open() && !c.Undrained() && c.Answer.Phase != string(v1alpha1.RunSucceeded) {
			out = append(out, fmt.Sprintf("gate answered %d for a run in phase %q: %s", c.Status, c.Answer.Phase, c.Answer.Message))
		}
		if c.At.Before(r.RunFailed) && c.Status == http.StatusForbidden &&
			(c.Answer.Phase == string(v1alpha1.RunPending) || c.Answer.Phase == string(v1alpha1.RunRunning)) {
			inProgress = true
		}
	}
	if !inProgress {
		out = append(out, "Flagger was never answered while the run was in progress")
	}
	held := r.HeldAfterFailure
	if r.RunFailed.IsZero() || held.Status != http.StatusForbidden || !held.At.After(r.RunFailed) || !held.At.Before(open.At) {
		out = append(out, fmt.Sprintf("no 403 between the failed attempt (%s) and the gate opening (%s)", since(r.Start, r.RunFailed), since(r.Start, open.At)))
	}
	if r.CanaryWhileFailed != "WaitingPromotion" {
		out = append(out, fmt.Sprintf("canary was %q while the gate held the failing run, want WaitingPromotion", r.CanaryWhileFailed))
	}
	waited := false
	for _, p := range r.Phases {
		if p.At.After(open.At) {
			break
		}
		switch p.Phase {
		case "WaitingPromotion":
			waited = true
		case "Promoting", "Finalising", "Succeeded":
			out = append(out, fmt.Sprintf("canary went %s at %s, before the gate opened at %s", p.Phase, since(r.Start, p.At), since(r.Start, open.At)))
		}
	}
	if !waited {
		out = append(out, "canary never went WaitingPromotion before the gate opened")
	}
	if len(r.Images) == 0 || r.Images[0].Image != image("1.0") {
		return append(out, fmt.Sprintf("primary did not start on v1: %+v", r.Images))
	}
	for _, img := range r.Images[1:] {
		if !img.At.After(open.At) {
			out = append(out, fmt.Sprintf("primary template changed to %s at %s, before the gate opened at %s", img.Image, since(r.Start, img.At), since(r.Start, open.At)))
		}
	}
	return out
}

// checkPromoted: the gate opened because the run Succeeded (after a retry,
// since one attempt was made to fail), and Flagger then promoted v2.
func (r *Report) checkPromoted(open GateCall) []string {
	var out []string
	if open.Answer.Phase != string(v1alpha1.RunSucceeded) {
		out = append(out, fmt.Sprintf("first 200 said phase %q: %s", open.Answer.Phase, open.Answer.Message))
	}
	if n := len(r.Images); n < 2 || r.Images[n-1].Image != image("2.0") {
		out = append(out, fmt.Sprintf("primary not promoted to v2: %+v", r.Images))
	}
	if n := len(r.Phases); n == 0 || r.Phases[n-1].Phase != "Succeeded" {
		out = append(out, fmt.Sprintf("canary did not end Succeeded: %+v", r.Phases))
	}
	for _, run := range r.Runs {
		st := run.Status
		retried := r.Mode != ModeBlueGreen || st.Attempt >= 2 // the main scenario fails one attempt
		if st.Phase != v1alpha1.RunSucceeded || st.PodsDone != st.PodsTotal || !retried {
			out = append(out, fmt.Sprintf("run %s ended %s, %d/%d pods, attempt %d; want Succeeded, all pods (after a retry in the main scenario)", run.Name, st.Phase, st.PodsDone, st.PodsTotal, st.Attempt))
		}
	}
	return out
}

// checkDrained: each old primary pod answered a drain with 200 before it was
// deleted and before the gate opened; the failing pod refused first.
func (r *Report) checkDrained(open GateCall) []string {
	var out []string
	if len(r.OldPrimary) < 2 {
		return []string{fmt.Sprintf("old primary pods %v", r.OldPrimary)}
	}
	for _, name := range r.OldPrimary {
		p, _ := r.Pod(name)
		drained, ok := p.Drained()
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("pod %s was never drained (%d calls)", name, len(p.Drains)))
		case p.DeletionSeen.IsZero():
			out = append(out, fmt.Sprintf("pod %s was never deleted: not replaced", name))
		case !drained.Before(p.DeletionSeen):
			out = append(out, fmt.Sprintf("pod %s deleted at %s, drained only at %s", name, since(r.Start, p.DeletionSeen), since(r.Start, drained)))
		case !drained.Before(open.At):
			out = append(out, fmt.Sprintf("pod %s drained at %s, after the gate opened at %s", name, since(r.Start, drained), since(r.Start, open.At)))
		}
	}
	if f, _ := r.Pod(r.FailingPod); r.FailingPod != "" && (len(f.Drains) == 0 || f.Drains[0].Status == http.StatusOK) {
		out = append(out, fmt.Sprintf("the failing pod %s did not refuse its first drain", r.FailingPod))
	}
	return out
}

// checkKill: the kill hit a run in progress; afterwards the same run (same
// UID, for the promoted revision) went on, the gate spoke of no other run,
// and no second run exists.
func (r *Report) checkKill(open GateCall) []string {
	k := r.RunAtKill
	if k == nil {
		return []string{"no run at the kill"}
	}
	if st := k.Status; st.Phase == v1alpha1.RunSucceeded || st.PodsTotal > 0 && st.PodsDone == st.PodsTotal {
		return []string{fmt.Sprintf("the run was already done at the kill (%s, %d/%d): nothing is proven", st.Phase, st.PodsDone, st.PodsTotal)}
	}
	if len(r.Runs) != 1 {
		names := make([]string, len(r.Runs))
		for i, run := range r.Runs {
			names[i] = run.Name
		}
		return []string{fmt.Sprintf("%d TerminationRuns in the namespace, want 1: %v", len(r.Runs), names)}
	}
	var out []string
	final := r.Runs[0]
	if final.UID != k.UID {
		out = append(out, fmt.Sprintf("run %s was recreated across the restart (UID %s, was %s)", final.Name, final.UID, k.UID))
	}
	if c := final.Spec.Trigger.Canary; c == nil || c.Checksum != open.Checksum {
		out = append(out, fmt.Sprintf("run %s is not for the promoted revision %s: %+v", final.Name, open.Checksum, final.Spec.Trigger))
	}
	for _, c := range r.GateCalls {
		if c.Answer.Run != "" && c.Answer.Run != final.Name {
			out = append(out, fmt.Sprintf("gate answered about run %s at %s, want only %s", c.Answer.Run, since(r.Start, c.At), final.Name))
		}
		if c.Open() && !c.Undrained() && c.At.Before(r.Restarted) {
			out = append(out, fmt.Sprintf("gate opened at %s, before the restart", since(r.Start, c.At)))
		}
	}
	return out
}
