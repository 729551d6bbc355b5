package scenario

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
)

// goodReport is a Report of a scenario that went as it must, at second t0+n.
func goodReport() *Report {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	run := func(uid string, phase v1alpha1.RunPhase, done, attempt int32) *v1alpha1.TerminationRun {
		r := &v1alpha1.TerminationRun{}
		r.Name, r.UID = "podinfo-gate-1", types.UID("uid-"+uid)
		r.Spec.Trigger.Canary = &v1alpha1.CanaryRef{Name: App, Checksum: "rev2"}
		r.Status = v1alpha1.TerminationRunStatus{Phase: phase, PodsDone: done, PodsTotal: 3, Attempt: attempt}
		return r
	}
	answer := func(s float64, status int, phase string) GateCall {
		return GateCall{At: at(s), Status: status, Checksum: "rev2", Answer: GateAnswer{Run: "podinfo-gate-1", Phase: phase}}
	}
	drained := func(name string, s float64, statuses ...int) PodRecord {
		p := PodRecord{Name: name, App: Primary, DeletionSeen: at(100)}
		for i, st := range statuses {
			p.Drains = append(p.Drains, DrainCall{Start: at(s + float64(i)), End: at(s + float64(i) + 0.5), Status: st})
		}
		return p
	}
	return &Report{
		Start: t0, Released: at(10), Killed: at(51), Restarted: at(52), RunFailed: at(56), Recovered: at(72),
		OldPrimary: []string{"p-a", "p-b", "p-c"}, FailingPod: "p-c", HeldPod: "p-a",
		RunAtKill:         run("1", v1alpha1.RunRunning, 0, 1),
		HeldAfterFailure:  answer(72, 403, "Running"),
		CanaryWhileFailed: "WaitingPromotion",
		Runs:              []v1alpha1.TerminationRun{*run("1", v1alpha1.RunSucceeded, 3, 2)},
		GateCalls:         []GateCall{answer(50, 403, "Pending"), answer(72, 403, "Running"), answer(92, 200, "Succeeded")},
		Phases:            []PhaseChange{{at(20), "Progressing"}, {at(50), "WaitingPromotion"}, {at(102), "Promoting"}, {at(122), "Succeeded"}},
		Images:            []ImageChange{{at(2), image("1.0")}, {at(102), image("2.0")}},
		Pods:              []PodRecord{drained("p-a", 51, 200, 200), drained("p-b", 54, 200), drained("p-c", 54, 503, 503, 200)},
	}
}

func TestVerifyPassesAGoodReport(t *testing.T) {
	checks := goodReport().Verify()
	if len(checks) != 4 {
		t.Fatalf("%d checks", len(checks))
	}
	for _, c := range checks {
		if len(c.Problems) != 0 {
			t.Errorf("%s: %v", c.Name, c.Problems)
		}
	}
}

// Each way the system could be wrong must fail exactly the property it breaks.
func TestVerifyCatchesEachViolation(t *testing.T) {
	for _, tc := range []struct {
		name, check, want string
		breakIt           func(r *Report)
		also              string // a second property the same fault breaks
	}{
		{"gate opens on a running run", CheckHeld, `phase "Running"`, func(r *Report) { r.GateCalls[1].Status = 200 }, CheckPromoted},
		{"primary changed before the gate opened", CheckHeld, "before the gate opened", func(r *Report) { r.Images[1].At = r.GateCalls[1].At }, ""},
		{"canary promoted before the gate opened", CheckHeld, "canary went Promoting", func(r *Report) { r.Phases[2].At = r.GateCalls[1].At }, ""},
		{"no hold after the failure", CheckHeld, "no 403 between", func(r *Report) { r.HeldAfterFailure = GateCall{} }, ""},
		{"canary not waiting", CheckHeld, "want WaitingPromotion", func(r *Report) { r.CanaryWhileFailed = "Progressing" }, ""},
		{"opened without success", CheckPromoted, "first 200 said", func(r *Report) { r.GateCalls[2].Answer.Phase = "Failed" }, CheckHeld},
		{"never promoted", CheckPromoted, "not promoted to v2", func(r *Report) { r.Images = r.Images[:1] }, ""},
		{"run not retried", CheckPromoted, "after a retry", func(r *Report) { r.Runs[0].Status.Attempt = 1 }, ""},
		{"pod deleted before drained", CheckDrained, "drained only at", func(r *Report) { r.Pods[1].DeletionSeen = r.Pods[1].Drains[0].Start }, ""},
		{"pod never drained", CheckDrained, "never drained", func(r *Report) { r.Pods[1].Drains = nil }, ""},
		{"failing pod never refused", CheckDrained, "did not refuse", func(r *Report) { r.Pods[2].Drains = r.Pods[2].Drains[2:] }, ""},
		{"second run", CheckKill, "want 1", func(r *Report) { r.Runs = append(r.Runs, r.Runs[0]) }, ""},
		{"run recreated", CheckKill, "recreated", func(r *Report) { r.Runs[0].UID = "other" }, ""},
		{"kill after the run finished", CheckKill, "nothing is proven", func(r *Report) { r.RunAtKill.Status.Phase = v1alpha1.RunSucceeded }, ""},
		{"answer about another run", CheckKill, "want only", func(r *Report) { r.GateCalls[0].Answer.Run = "podinfo-gate-2" }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := goodReport()
			tc.breakIt(r)
			for _, c := range r.Verify() {
				joined := strings.Join(c.Problems, "\n")
				if c.Name == tc.check && !strings.Contains(joined, tc.want) {
					t.Errorf("%s: want a problem with %q, got %q", c.Name, tc.want, joined)
				}
				if c.Name != tc.check && c.Name != tc.also && len(c.Problems) > 0 {
					t.Errorf("%s also failed: %v", c.Name, c.Problems)
				}
			}
		})
	}
}

func TestVerifyWithoutOpenGate(t *testing.T) {
	r := goodReport()
	r.GateCalls = r.GateCalls[:2]
	checks := r.Verify()
	if len(checks) != 1 || checks[0].Name != CheckPromoted || len(checks[0].Problems) == 0 {
		t.Fatalf("got %+v", checks)
	}
}
