package node

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/types"
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
	header := "GROUP\tNAMESPACE\tPOD\tPRIORITY\tTERMINATION GRACE\tGRACE GIVEN"
	if p.Policies != nil {
		header += "\tRUNS FIRST (POLICIES)"
	}
	fmt.Fprintln(tw, header)
	for _, g := range p.Groups {
		for _, pp := range g.Pods {
			own := "30s (default)"
			if s := pp.Pod.Spec.TerminationGracePeriodSeconds; s != nil {
				own = (time.Duration(*s) * time.Second).String()
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s", g.Priority, pp.Pod.Namespace, pp.Pod.Name, podPriority(pp.Pod), own, pp.Grace)
			if p.Policies != nil {
				pols := strings.Join(p.Policies[types.NamespacedName{Namespace: pp.Pod.Namespace, Name: pp.Pod.Name}], ",")
				if pols == "" {
					pols = "-"
				}
				fmt.Fprintf(tw, "\t%s", pols)
			}
			fmt.Fprintln(tw)
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
