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
	deferred := GateCall{At: at(40), Status: 200, Checksum: "rev2", Answer: GateAnswer{Phase: "Deferred"}}
	return &Report{
		Mode:  ModeBlueGreen,
		Start: t0, Released: at(10), Killed: at(51), Restarted: at(52), RunFailed: at(56), Recovered: at(72),
		OldPrimary: []string{"p-a", "p-b", "p-c"}, FailingPod: "p-c", HeldPod: "p-a",
		RunAtKill:         run("1", v1alpha1.RunRunning, 0, 1),
		HeldAfterFailure:  answer(72, 403, "Running"),
		CanaryWhileFailed: "WaitingPromotion",
		Runs:              []v1alpha1.TerminationRun{*run("1", v1alpha1.RunSucceeded, 3, 2)},
		GateCalls:         []GateCall{deferred, answer(50, 403, "Pending"), answer(72, 403, "Running"), answer(92, 200, "Succeeded")},
		Routes:            []RouteChange{{At: at(5), Primary: 100}, {At: at(40.1), Canary: 100}},
		Phases:            []PhaseChange{{at(20), "Progressing"}, {at(50), "WaitingPromotion"}, {at(102), "Promoting"}, {at(122), "Succeeded"}},
		Images:            []ImageChange{{at(2), image("1.0")}, {at(102), image("2.0")}},
		Pods:              []PodRecord{drained("p-a", 51, 200, 200), drained("p-b", 54, 200), drained("p-c", 54, 503, 503, 200)},
	}
}

func TestVerifyPassesAGoodReport(t *testing.T) {
	checks := goodReport().Verify()
	if len(checks) != 5 {
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
		{"gate opens on a running run", CheckHeld, `phase "Running"`, func(r *Report) { r.GateCalls[2].Status = 200 }, CheckPromoted},
		{"primary changed before the gate opened", CheckHeld, "before the gate opened", func(r *Report) { r.Images[1].At = r.GateCalls[2].At }, ""},
		{"canary promoted before the gate opened", CheckHeld, "canary went Promoting", func(r *Report) { r.Phases[2].At = r.GateCalls[2].At }, ""},
		{"no hold after the failure", CheckHeld, "no 403 between", func(r *Report) { r.HeldAfterFailure = GateCall{} }, ""},
		{"canary not waiting", CheckHeld, "want WaitingPromotion", func(r *Report) { r.CanaryWhileFailed = "Progressing" }, ""},
		{"opened without success", CheckPromoted, "first 200 said", func(r *Report) { r.GateCalls[3].Answer.Phase = "Failed" }, CheckHeld},
		{"never promoted", CheckPromoted, "not promoted to v2", func(r *Report) { r.Images = r.Images[:1] }, ""},
		{"run not retried", CheckPromoted, "after a retry", func(r *Report) { r.Runs[0].Status.Attempt = 1 }, ""},
		{"pod deleted before drained", CheckDrained, "drained only at", func(r *Report) { r.Pods[1].DeletionSeen = r.Pods[1].Drains[0].Start }, ""},
		{"pod never drained", CheckDrained, "never drained", func(r *Report) { r.Pods[1].Drains = nil }, ""},
		{"failing pod never refused", CheckDrained, "did not refuse", func(r *Report) { r.Pods[2].Drains = r.Pods[2].Drains[2:] }, ""},
		{"second run", CheckKill, "want 1", func(r *Report) { r.Runs = append(r.Runs, r.Runs[0]) }, ""},
		{"run recreated", CheckKill, "recreated", func(r *Report) { r.Runs[0].UID = "other" }, ""},
		{"kill after the run finished", CheckKill, "nothing is proven", func(r *Report) { r.RunAtKill.Status.Phase = v1alpha1.RunSucceeded }, ""},
		{"answer about another run", CheckKill, "want only", func(r *Report) { r.GateCalls[1].Answer.Run = "podinfo-gate-2" }, ""},
		{"drained while the route sent traffic to the primary", CheckService, "gave the primary weight 100", func(r *Report) { r.Routes = r.Routes[:1] }, ""},
		{"drained before any route was seen", CheckService, "before any HTTPRoute", func(r *Report) { r.Routes = nil }, ""},
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
	r.GateCalls = r.GateCalls[:3]
	checks := r.Verify()
	if len(checks) != 1 || checks[0].Name != CheckPromoted || len(checks[0].Problems) == 0 {
		t.Fatalf("got %+v", checks)
	}
}

// With the kubernetes provider a pod drained while it is a ready endpoint of
// the app's Service fails CheckService, and one drained after its deletion
// took it out of the endpoints does not; the snapshot check wants states saved while serving
// and no drain at all.
func TestVerifyKubernetesProvider(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	r := &Report{
		Mode: ModeKubernetes, Start: t0, OldPrimary: []string{"p-a", "p-b"},
		GateCalls: []GateCall{{At: at(40), Status: 403, Answer: GateAnswer{Run: "snap", Phase: "Running"}},
			{At: at(50), Status: 200, Answer: GateAnswer{Run: "snap", Phase: "Succeeded"}}},
		Pods: []PodRecord{
			{Name: "p-a", App: Primary, Serving: at(5), Saves: []time.Time{at(41)}},
			{Name: "p-b", App: Primary, Serving: at(5), DeletionSeen: at(70), Saves: []time.Time{at(42)}},
		},
	}
	problems := func(name string) string {
		for _, c := range r.Verify() {
			if c.Name == name {
				return strings.Join(c.Problems, "\n")
			}
		}
		t.Fatalf("no check %q", name)
		return ""
	}
	if p := problems(CheckSnapshot) + problems(CheckService); p != "" {
		t.Fatalf("a good kubernetes report: %s", p)
	}
	r.Pods[1].Drains = []DrainCall{{Start: at(60), End: at(61), Status: 200}}
	if p := problems(CheckService); !strings.Contains(p, "p-b drained") || !strings.Contains(p, "ready endpoint") {
		t.Errorf("drain in service: %q", p)
	}
	if p := problems(CheckSnapshot); !strings.Contains(p, "drain requests") {
		t.Errorf("snapshot check with a drain: %q", p)
	}
	r.Pods[1].Drains = []DrainCall{{Start: at(80), End: at(81), Status: 200}}
	if p := problems(CheckService); p != "" {
		t.Errorf("a drain after the pod left the endpoints: %q", p)
	}
	r.Pods[0].Saves = []time.Time{at(55)}
	if p := problems(CheckSnapshot); !strings.Contains(p, "after the gate opened") {
		t.Errorf("a state saved after the gate opened: %q", p)
	}
}
