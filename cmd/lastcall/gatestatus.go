package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
	"github.com/lastcall-dev/lastcall/internal/gate"
)

// gateStatus is what `lastcall gate status` shows: the manual gates and the gate
// runs of one canary, or of every canary in a namespace.
type gateStatus struct {
	Gates []v1alpha1.Gate
	Runs  []v1alpha1.TerminationRun
	// OnFailure is each run's policy's gate.onFailure, by policy name.
	OnFailure map[string]v1alpha1.GateFailureAction
}

// readGateStatus reads the gates and gate runs of canary in namespace (every
// canary when canary is empty) through r.
func readGateStatus(ctx context.Context, r client.Reader, namespace, canary string) (*gateStatus, error) {
	st := &gateStatus{OnFailure: map[string]v1alpha1.GateFailureAction{}}
	if canary != "" {
		var g v1alpha1.Gate
		err := r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: canary}, &g)
		if client.IgnoreNotFound(err) != nil {
			return nil, fmt.Errorf("get gate %s/%s: %w", namespace, canary, err)
		}
		if err == nil {
			st.Gates = append(st.Gates, g)
		}
	} else {
		var list v1alpha1.GateList
		if err := r.List(ctx, &list, client.InNamespace(namespace)); err != nil {
			return nil, fmt.Errorf("list gates in %s: %w", namespace, err)
		}
		st.Gates = list.Items
	}
	runs, err := gate.GateRuns(ctx, r, namespace, canary)
	if err != nil {
		return nil, err
	}
	st.Runs = runs
	for _, run := range runs {
		name := run.Spec.PolicyRef.Name
		if _, ok := st.OnFailure[name]; ok {
			continue
		}
		var pol v1alpha1.TerminationPolicy
		if err := r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &pol); err == nil {
			st.OnFailure[name] = pol.Spec.Gate.OnFailure
		} else {
			st.OnFailure[name] = v1alpha1.GateHold
		}
	}
	return st, nil
}

// writeGateStatus prints a gateStatus as two tables; each run's ANSWER is what
// /flagger/gate answers for it now.
func writeGateStatus(w io.Writer, st *gateStatus, now time.Time) error {
	if len(st.Gates) == 0 {
		fmt.Fprintln(w, "no manual gates: /gate/check and /rollback/check answer 403")
	} else {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CANARY\tGATE\tCHANGED\tBY\tROLLBACK\tCHANGED\tBY")
		for _, g := range st.Gates {
			gs, rs := g.Spec.Gate, g.Spec.Rollback
			fmt.Fprintf(tw, "%s/%s\t%s\t%s\t%s\t%s\t%s\t%s\n", g.Namespace, g.Name,
				stateOf(gs), ago(gs, now), dash(gs.By), stateOf(rs), ago(rs, now), dash(rs.By))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(w)
	if len(st.Runs) == 0 {
		_, err := fmt.Fprintln(w, "no gate runs")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CANARY\tHOOK\tREVISION\tRUN\tPHASE\tPODS\tANSWER")
	for i := range st.Runs {
		run := &st.Runs[i]
		c := run.Spec.Trigger.Canary
		open, a := gate.Decide(run, st.OnFailure[run.Spec.PolicyRef.Name])
		code := 403
		if open {
			code = 200
		}
		fmt.Fprintf(tw, "%s/%s\t%s\t%s\t%s\t%s\t%d/%d\t%d %s\n", c.Namespace, c.Name, c.HookType, dash(c.Checksum),
			run.Name, a.Phase, a.PodsDone, a.PodsTotal, code, a.Message)
	}
	return tw.Flush()
}

func stateOf(s v1alpha1.GateSwitch) string {
	if s.IsOpen() {
		return string(v1alpha1.GateStateOpen)
	}
	return string(v1alpha1.GateStateClosed)
}

func ago(s v1alpha1.GateSwitch, now time.Time) string {
	if s.At == nil {
		return "-"
	}
	return now.Sub(s.At.Time).Round(time.Second).String() + " ago"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// caller is the name the API server knows a client by (a SelfSubjectReview),
// recorded as who changed a gate from the CLI; "lastcall-cli" when the API
// server does not say.
func caller(ctx context.Context, c client.Client) string {
	r := &authnv1.SelfSubjectReview{}
	if err := c.Create(ctx, r); err != nil || r.Status.UserInfo.Username == "" {
		return "lastcall-cli"
	}
	return r.Status.UserInfo.Username
}
