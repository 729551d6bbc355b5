package run

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
)

// WriteProgress prints a run's per-pod progress: one line per pod with each
// step's state, for `lastcall run watch` and the demo.
func WriteProgress(w io.Writer, run *v1alpha1.TerminationRun, now time.Time) error {
	st := run.Status
	age := "-"
	if st.StartTime != nil {
		end := now
		if st.CompletionTime != nil {
			end = st.CompletionTime.Time
		}
		age = end.Sub(st.StartTime.Time).Round(100 * time.Millisecond).String()
	}
	fmt.Fprintf(w, "run %s/%s  policy %s  phase %s  attempt %d  pods %d/%d done, %d failed  elapsed %s\n",
		run.Namespace, run.Name, run.Spec.PolicyRef.Name, orDash(string(st.Phase)), st.Attempt, st.PodsDone, st.PodsTotal, st.PodsFailed, age)
	if st.Message != "" {
		fmt.Fprintf(w, "  %s: %s\n", st.Reason, st.Message)
	}
	if st.Workflow != nil {
		fmt.Fprintf(w, "  workflow %s: %s %s\n", st.Workflow.Name, st.Workflow.Phase, st.Workflow.Message)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  POD\tPHASE\tSTEPS\tMESSAGE")
	for _, p := range st.Pods {
		steps := make([]string, 0, len(p.Steps))
		for _, s := range p.Steps {
			steps = append(steps, fmt.Sprintf("%s:%s", s.Name, symbol(s.Phase)))
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", p.Name, orDash(string(p.Phase)), strings.Join(steps, " "), p.Message)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, h := range st.ExitHandlers {
		fmt.Fprintf(w, "  exit handler %s (attempt %d): %s %s\n", h.Name, h.Attempt, h.Phase, h.Message)
	}
	return nil
}

func symbol(p v1alpha1.StepPhase) string {
	switch p {
	case v1alpha1.StepSucceeded:
		return "ok"
	case v1alpha1.StepFailed:
		return "FAILED"
	case v1alpha1.StepRunning:
		return "running"
	}
	return "pending"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
