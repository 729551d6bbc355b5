package scenario

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/lastcall-dev/lastcall/internal/run"
)

// WriteSnapshot renders a live view: the stage, Flagger's canary, the
// gate's last answer, the run's per-pod progress and the latest changes.
func WriteSnapshot(w io.Writer, s Snapshot) error {
	fmt.Fprintf(w, "lastcall: Flagger canary %s held by a termination gate   %s\n\n", App, since(s.Start, s.Now))
	fmt.Fprintf(w, "stage    %s\n", s.Stage)
	c := s.Canary
	fmt.Fprintf(w, "flagger  phase %-17s iterations %d  failed checks %d\n", orDash(c.Phase), c.Iterations, c.FailedChecks)
	if r := s.Route; r != nil {
		fmt.Fprintf(w, "traffic  HTTPRoute %s: primary %d%%, canary %d%%  (the gate drains the primary only at 0)\n", App, r.Primary, r.Canary)
	}
	if c.Message != "" {
		fmt.Fprintf(w, "         %s\n", c.Message)
	}
	if g := s.LastGate; g == nil {
		fmt.Fprintf(w, "gate     not asked yet\n")
	} else {
		fmt.Fprintf(w, "gate     %s   (%d calls, last %s ago)\n", describeAnswer(*g), s.GateCalls, s.Now.Sub(g.At).Round(100*time.Millisecond))
	}
	fmt.Fprintln(w)
	if s.Run == nil {
		fmt.Fprintf(w, "run      none yet: the gate starts one at Flagger's first confirm-promotion call\n")
	} else if err := run.WriteProgress(w, s.Run, s.Now); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nrecent\n")
	for _, l := range s.Log {
		fmt.Fprintf(w, "  %s\n", l)
	}
	return nil
}

func describeAnswer(g GateCall) string {
	if g.Err != "" {
		return fmt.Sprintf("%d lastcall unreachable", g.Status)
	}
	a := g.Answer
	return fmt.Sprintf("%d %s %d/%d: %s", g.Status, a.Phase, a.PodsDone, a.PodsTotal, a.Message)
}

func since(start, t time.Time) string {
	if t.IsZero() || start.IsZero() {
		return "-"
	}
	return fmt.Sprintf("%.1fs", t.Sub(start).Seconds())
}

// WriteSummary renders the Report: when each stage happened, what the gate
// answered, and each old pod's drain against its deletion.
func WriteSummary(w io.Writer, r *Report) {
	at := func(t time.Time) string { return fmt.Sprintf("%8s", since(r.Start, t)) }
	first := GateCall{}
	if len(r.GateCalls) > 0 {
		first = r.GateCalls[0]
	}
	open, _ := r.FirstOpen()
	promoted := time.Time{}
	if len(r.Images) > 1 {
		promoted = r.Images[len(r.Images)-1].At
	}
	fmt.Fprintf(w, "summary (times since start)\n")
	for _, row := range []struct {
		t    time.Time
		what string
	}{
		{r.Initialized, "Flagger initialized the canary (" + Primary + " serving)"},
		{r.Released, "v2 released"},
		{first.At, "Flagger first asked the gate (confirm-promotion)"},
		{r.Killed, "lastcall server SIGKILLed mid-run" + killNote(r)},
		{r.Restarted, "lastcall server restarted"},
		{r.RunFailed, "the run failed a pod (" + r.FailingPod + " refused /drain); a retry is due"},
		{r.HeldAfterFailure.At, "gate held the failing run: " + answerKind(r.HeldAfterFailure) + " (canary " + orDash(r.CanaryWhileFailed) + ")"},
		{r.Recovered, "failing pod recovered"},
		{open.At, "gate opened: 200"},
		{promoted, "Flagger promoted (primary template changed)"},
		{r.Promoted, "canary Succeeded"},
		{r.OldPodsGone, "all old primary pods removed"},
	} {
		fmt.Fprintf(w, "  %s  %s\n", at(row.t), row.what)
	}
	counts, order := map[string]int{}, []string(nil)
	for _, c := range r.GateCalls {
		k := answerKind(c)
		if counts[k] == 0 {
			order = append(order, k)
		}
		counts[k]++
	}
	parts := make([]string, len(order))
	for i, k := range order {
		parts[i] = fmt.Sprintf("%d× %s", counts[k], k)
	}
	fmt.Fprintf(w, "gate answers  %s\n", strings.Join(parts, ", "))
	if !open.At.IsZero() && !r.Released.IsZero() {
		fmt.Fprintf(w, "release to promotion  %s (of which the gate held %s)\n",
			open.At.Sub(r.Released).Round(100*time.Millisecond), open.At.Sub(first.At).Round(100*time.Millisecond))
	}
	fmt.Fprintf(w, "old primary pods\n")
	for _, name := range r.OldPrimary {
		p, _ := r.Pod(name)
		drained, ok := p.Drained()
		switch {
		case !ok:
			fmt.Fprintf(w, "  %-36s NOT drained (%d drain calls)\n", name, len(p.Drains))
		case p.DeletionSeen.IsZero():
			fmt.Fprintf(w, "  %-36s drained at %s, not deleted\n", name, since(r.Start, drained))
		default:
			fmt.Fprintf(w, "  %-36s drained at %s, deleted at %s (%s later), %d drain calls\n", name,
				since(r.Start, drained), since(r.Start, p.DeletionSeen), p.DeletionSeen.Sub(drained).Round(100*time.Millisecond), len(p.Drains))
		}
	}
	for _, run := range r.Runs {
		fmt.Fprintf(w, "run %s: %s after %d attempt(s), %d/%d pods done\n", run.Name, run.Status.Phase, run.Status.Attempt, run.Status.PodsDone, run.Status.PodsTotal)
	}
}

func killNote(r *Report) string {
	if r.RunAtKill == nil {
		return ""
	}
	st := r.RunAtKill.Status
	return fmt.Sprintf(" (run %s, %d/%d pods done)", orDash(string(st.Phase)), st.PodsDone, st.PodsTotal)
}

// answerKind groups gate answers for the summary: status and run phase.
func answerKind(c GateCall) string {
	switch {
	case c.Err != "":
		return fmt.Sprintf("%d (lastcall down)", c.Status)
	case c.Answer.Phase != "":
		return fmt.Sprintf("%d %s", c.Status, c.Answer.Phase)
	}
	return fmt.Sprint(c.Status)
}
