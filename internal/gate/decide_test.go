package gate

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
)

func TestDecide(t *testing.T) {
	at := metav1.NewTime(time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC))
	complete := []metav1.Condition{{Type: v1alpha1.ConditionComplete, Status: metav1.ConditionTrue}}
	for _, tc := range []struct {
		name      string
		status    v1alpha1.TerminationRunStatus
		override  *v1alpha1.GateOverride
		onFailure v1alpha1.GateFailureAction
		open      bool
		phase     string
		msg       string
	}{
		{name: "new run", open: false, phase: "Pending", msg: "waiting for run r"},
		{name: "running", status: v1alpha1.TerminationRunStatus{Phase: v1alpha1.RunRunning, PodsDone: 1, PodsTotal: 3},
			phase: "Running", msg: "waiting for run r"},
		{name: "retry scheduled", status: v1alpha1.TerminationRunStatus{Phase: v1alpha1.RunRunning, Reason: "RetryScheduled", Message: "attempt 2 at 09:00"},
			onFailure: v1alpha1.GateOpen, phase: "Running", msg: "waiting for run r: attempt 2 at 09:00"},
		{name: "succeeded", status: v1alpha1.TerminationRunStatus{Phase: v1alpha1.RunSucceeded, PodsDone: 3, PodsTotal: 3},
			open: true, phase: "Succeeded", msg: "run r succeeded"},
		{name: "failed, exit handlers pending", status: v1alpha1.TerminationRunStatus{Phase: v1alpha1.RunFailed, Message: "pod a: drain: 500"},
			onFailure: v1alpha1.GateOpen, phase: "Failed", msg: "exit handlers running"},
		{name: "failed, hold", status: v1alpha1.TerminationRunStatus{Phase: v1alpha1.RunFailed, Message: "pod a: drain: 500", Conditions: complete},
			onFailure: v1alpha1.GateHold, phase: "Failed", msg: "holding (gate.onFailure: hold): pod a: drain: 500"},
		{name: "failed, default holds", status: v1alpha1.TerminationRunStatus{Phase: v1alpha1.RunFailed, Conditions: complete},
			phase: "Failed", msg: "holding"},
		{name: "failed, open", status: v1alpha1.TerminationRunStatus{Phase: v1alpha1.RunFailed, Conditions: complete},
			onFailure: v1alpha1.GateOpen, open: true, phase: "Failed", msg: "passing as its policy says"},
		{name: "opened by hand while running", open: true, phase: "Running", msg: "opened by alice at 2026-11-25T09:00:00Z",
			status:   v1alpha1.TerminationRunStatus{Phase: v1alpha1.RunRunning},
			override: &v1alpha1.GateOverride{Action: v1alpha1.GateOverrideOpen, By: "alice", At: at}},
		{name: "closed by hand after success", phase: "Succeeded", msg: "closed by bob",
			status:   v1alpha1.TerminationRunStatus{Phase: v1alpha1.RunSucceeded},
			override: &v1alpha1.GateOverride{Action: v1alpha1.GateOverrideClosed, By: "bob", At: at}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := &v1alpha1.TerminationRun{ObjectMeta: metav1.ObjectMeta{Name: "r"}, Status: tc.status,
				Spec: v1alpha1.TerminationRunSpec{Gate: tc.override, Pods: []v1alpha1.PodRef{{Name: "a"}, {Name: "b"}, {Name: "c"}}}}
			open, a := Decide(run, tc.onFailure)
			if open != tc.open || a.Phase != tc.phase || !strings.Contains(a.Message, tc.msg) {
				t.Errorf("got open=%v %+v; want open=%v phase %s and a message with %q", open, a, tc.open, tc.phase, tc.msg)
			}
			if a.Run != "r" || a.PodsTotal != 3 {
				t.Errorf("answer %+v: want run r and 3 pods in total", a)
			}
		})
	}
}

func TestRedactAddresses(t *testing.T) {
	in := "run web-gate-1 failed: pod web-0: POST http://10.244.1.7:8080/drain: 500; pod web-1: GET http://[fd00::1:2]:8080/inflight: timeout"
	want := "run web-gate-1 failed: pod web-0: POST http://<pod IP>:8080/drain: 500; pod web-1: GET http://<pod IP>:8080/inflight: timeout"
	if got := redactAddresses(in); got != want {
		t.Fatalf("redactAddresses:\n got %s\nwant %s", got, want)
	}
}
