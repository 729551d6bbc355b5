package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
	"github.com/lastcall-dev/lastcall/internal/gate"
)

func newGateCommand() *cobra.Command {
	kf := &kubeFlags{}
	cmd := &cobra.Command{
		Use:   "gate",
		Short: "Show and move the Flagger gates (through the Kubernetes API)",
		Long: `Show and move the gates lastcall serves to Flagger: the manual gates
(/gate/check, /rollback/check: Gate objects named after the canary) and the
gate runs behind /flagger/gate. Changes are recorded with your user name.`,
	}
	kf.add(cmd)
	cmd.AddCommand(newGateStatusCommand(kf), newGateSetCommand(kf, true), newGateSetCommand(kf, false))
	return cmd
}

// canaryKey parses --canary: "namespace/name", or "name" in the namespace
// of -n or the kubeconfig context.
func canaryKey(flag, ns string) (types.NamespacedName, error) {
	if flag == "" {
		return types.NamespacedName{Namespace: ns}, nil
	}
	if n, name, ok := strings.Cut(flag, "/"); ok {
		if n == "" || name == "" || strings.Contains(name, "/") {
			return types.NamespacedName{}, fmt.Errorf("--canary %q: want namespace/name or name", flag)
		}
		return types.NamespacedName{Namespace: n, Name: name}, nil
	}
	return types.NamespacedName{Namespace: ns, Name: flag}, nil
}

func newGateStatusCommand(kf *kubeFlags) *cobra.Command {
	var canary string
	cmd := &cobra.Command{
		Use:   "status [--canary ns/name]",
		Short: "Show the manual gates and gate runs of a canary, or of every canary in the namespace",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ns, err := kf.client()
			if err != nil {
				return err
			}
			key, err := canaryKey(canary, ns)
			if err != nil {
				return err
			}
			st, err := readGateStatus(cmd.Context(), c, key.Namespace, key.Name)
			if err != nil {
				return err
			}
			return writeGateStatus(cmd.OutOrStdout(), st, time.Now())
		},
	}
	cmd.Flags().StringVar(&canary, "canary", "", "canary as namespace/name (or name in -n's namespace)")
	return cmd
}

// gateSetOptions are the flags of `lastcall gate open` and `gate close`.
type gateSetOptions struct {
	kube             *kubeFlags
	open             bool
	canary           string
	checksum, hook   string
	rollback, runSet bool
}

func newGateSetCommand(kf *kubeFlags, open bool) *cobra.Command {
	o := &gateSetOptions{kube: kf, open: open}
	verb := o.verb()
	cmd := &cobra.Command{
		Use:   verb + " --canary ns/name [--rollback | --run [--checksum C] [--hook T]]",
		Short: strings.ToUpper(verb[:1]) + verb[1:] + " a canary's manual gate, its rollback switch, or its gate run's answer",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.canary, "canary", "", "canary as namespace/name (or name in -n's namespace) (required)")
	f.BoolVar(&o.rollback, "rollback", false, "the rollback switch (/rollback/check) instead of the gate (/gate/check)")
	f.BoolVar(&o.runSet, "run", false, "override the answer of the canary's gate run (/flagger/gate) instead")
	f.StringVar(&o.checksum, "checksum", "", "with --run: the revision's checksum (default: the newest gate run)")
	f.StringVar(&o.hook, "hook", string(gate.HookConfirmPromotion), "with --run: the hook type of the gate run")
	_ = cmd.MarkFlagRequired("canary")
	return cmd
}

func (o *gateSetOptions) verb() string {
	if o.open {
		return "open"
	}
	return "close"
}

// Validate checks the flags before anything is read from the cluster.
func (o *gateSetOptions) Validate() error {
	switch {
	case o.rollback && o.runSet:
		return fmt.Errorf("--rollback and --run exclude each other")
	case !o.runSet && (o.checksum != "" || o.hook != string(gate.HookConfirmPromotion)):
		return fmt.Errorf("--checksum and --hook go with --run")
	}
	if o.runSet {
		if _, err := (gate.Payload{Type: gate.HookType(o.hook)}).Hook(gate.HookConfirmPromotion); err != nil {
			return err
		}
	}
	return nil
}

// Run sets the switch, or overrides the gate run's answer.
func (o *gateSetOptions) Run(cmd *cobra.Command) error {
	c, ns, err := o.kube.client()
	if err != nil {
		return err
	}
	key, err := canaryKey(o.canary, ns)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	store := gate.Store{Client: c, Reader: c, Clock: clock.RealClock{}}
	by := caller(ctx, c)
	out := cmd.OutOrStdout()
	if !o.runSet {
		sw, state := gate.SwitchGate, v1alpha1.GateStateClosed
		if o.rollback {
			sw = gate.SwitchRollback
		}
		if o.open {
			state = v1alpha1.GateStateOpen
		}
		g, err := store.SetSwitch(ctx, key, sw, state, by)
		if err != nil {
			return err
		}
		// Setting a switch to the state it has changes nothing: say who
		// set it, not who asked again.
		who := "the default: no Gate object"
		if g != nil {
			if cur := sw.Of(&g.Spec); cur.By != "" {
				who = "set by " + cur.By
			} else {
				who = "the default"
			}
		}
		_, err = fmt.Fprintf(out, "%s of canary %s is %s (%s)\n", sw, key, state, who)
		return err
	}
	action := v1alpha1.GateOverrideClosed
	if o.open {
		action = v1alpha1.GateOverrideOpen
	}
	p := gate.Payload{Name: key.Name, Namespace: key.Namespace, Checksum: o.checksum, Type: gate.HookType(o.hook)}
	h, err := p.Hook(gate.HookConfirmPromotion)
	if err != nil {
		return err
	}
	found, err := gate.FindRun(ctx, c, p, h)
	if err != nil {
		return err
	}
	r, err := store.OverrideRun(ctx, client.ObjectKeyFromObject(found), action, by)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "gate run %s/%s is %s by %s: /flagger/gate answers %s\n", r.Namespace, r.Name, action, by, answerWord(r))
	return err
}

func answerWord(r *v1alpha1.TerminationRun) string {
	if open, _ := gate.Decide(r, v1alpha1.GateHold); open {
		return "200 (pass)"
	}
	return "403 (hold)"
}
