package node

import (
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"
)

// Write prints the plan for people: a summary, the groups in order with
// their budgets, each pod with the grace it would get, and the skipped pods.
func (p Plan) Write(w io.Writer) error {
	var total time.Duration
	for _, g := range p.Groups {
		total += g.Budget
	}
	fmt.Fprintf(w, "node %s: %d pods to evict in %d groups, lowest priority first; budget %s\n\n", p.Node, p.PodCount(), len(p.Groups), total)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ORDER\tGROUP (PRIORITY >=)\tBUDGET\tPODS")
	for i, g := range p.Groups {
		fmt.Fprintf(tw, "%d\t%d\t%s\t%d\n", i+1, g.Priority, g.Budget, len(g.Pods))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tNAMESPACE\tPOD\tPRIORITY\tTERMINATION GRACE\tGRACE GIVEN")
	for _, g := range p.Groups {
		for _, pp := range g.Pods {
			own := "30s (default)"
			if s := pp.Pod.Spec.TerminationGracePeriodSeconds; s != nil {
				own = (time.Duration(*s) * time.Second).String()
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\n", g.Priority, pp.Pod.Namespace, pp.Pod.Name, podPriority(pp.Pod), own, pp.Grace)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(p.Skipped) == 0 {
		return nil
	}
	fmt.Fprintf(w, "\nleft alone (%d):\n", len(p.Skipped))
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tPOD\tREASON")
	for _, s := range p.Skipped {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Pod.Namespace, s.Pod.Name, s.Reason)
	}
	return tw.Flush()
}

// groupLabel is a group's metric label: its priority, bounded by the config.
func groupLabel(g Group) string { return strconv.FormatInt(int64(g.Priority), 10) }
