package main

import (
	"bytes"
	"cmp"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
	"github.com/lastcall-dev/lastcall/internal/run"
)

// kubeFlags are the connection flags shared by client subcommands.
type kubeFlags struct {
	kubeconfig string
	namespace  string
}

func (k *kubeFlags) add(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&k.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
	cmd.PersistentFlags().StringVarP(&k.namespace, "namespace", "n", "", "namespace (default: the kubeconfig context's)")
}

func (k *kubeFlags) client() (client.WithWatch, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if k.kubeconfig != "" {
		rules.ExplicitPath = k.kubeconfig
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("load kubeconfig: %w", err)
	}
	ns := k.namespace
	if ns == "" {
		if ns, _, err = cc.Namespace(); err != nil {
			return nil, "", err
		}
	}
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: run.Scheme()})
	return c, ns, err
}

func newRunCommand() *cobra.Command {
	kf := &kubeFlags{}
	cmd := &cobra.Command{Use: "run", Short: "Start and follow TerminationRuns"}
	kf.add(cmd)
	cmd.AddCommand(newRunStartCommand(kf), newRunGetCommand(kf), newRunListCommand(kf), newRunWatchCommand(kf))
	return cmd
}

// runStartOptions are `lastcall run start`'s flags.
type runStartOptions struct {
	kube   *kubeFlags
	policy string
	pods   []string
	reason string
	watch  bool
}

func newRunStartCommand(kf *kubeFlags) *cobra.Command {
	o := &runStartOptions{kube: kf}
	cmd := &cobra.Command{
		Use:   "start --policy NAME [--pods a,b]",
		Short: "Start a run of a policy for its pods (or the named ones)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd)
		},
	}
	cmd.Flags().StringVar(&o.policy, "policy", "", "TerminationPolicy name (required)")
	cmd.Flags().StringSliceVar(&o.pods, "pods", nil, "only these pods of the policy (names, comma-separated)")
	cmd.Flags().StringVar(&o.reason, "reason", "started from the CLI", "why, recorded in the run")
	cmd.Flags().BoolVarP(&o.watch, "watch", "w", false, "follow the run until it ends")
	_ = cmd.MarkFlagRequired("policy")
	return cmd
}

// Validate checks the flags before anything is read from the cluster.
func (o *runStartOptions) Validate() error {
	if o.policy == "" {
		return fmt.Errorf("--policy is required")
	}
	if len(o.reason) > maxReasonBytes {
		return fmt.Errorf("--reason is %d bytes; at most %d", len(o.reason), maxReasonBytes)
	}
	return nil
}

// maxReasonBytes keeps a run's trigger reason readable in kubectl output.
const maxReasonBytes = 1024

// Run starts the run through the Starter, and follows it with --watch.
func (o *runStartOptions) Run(cmd *cobra.Command) error {
	c, ns, err := o.kube.client()
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	var pol v1alpha1.TerminationPolicy
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: o.policy}, &pol); err != nil {
		return fmt.Errorf("get policy %s/%s: %w", ns, o.policy, err)
	}
	targets, err := run.PolicyPods(ctx, c, &pol)
	if err != nil {
		return err
	}
	if len(o.pods) > 0 {
		if targets, err = pick(targets, o.pods); err != nil {
			return err
		}
	}
	r, _, err := (&run.Starter{Client: c, Reader: c}).Start(ctx, run.Request{Policy: &pol, Pods: targets,
		Trigger: v1alpha1.Trigger{Source: v1alpha1.TriggerCLI, Reason: o.reason}})
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "terminationrun %s/%s created for %d pods\n", r.Namespace, r.Name, len(targets))
	if o.watch {
		return watchRun(cmd, c, ns, r.Name)
	}
	return nil
}

func pick(all []corev1.Pod, names []string) ([]corev1.Pod, error) {
	byName := map[string]corev1.Pod{}
	for _, p := range all {
		byName[p.Name] = p
	}
	out := make([]corev1.Pod, 0, len(names))
	for _, n := range names {
		p, ok := byName[n]
		if !ok {
			return nil, fmt.Errorf("pod %s is not selected by the policy", n)
		}
		out = append(out, p)
	}
	return out, nil
}

func newRunGetCommand(kf *kubeFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "get NAME",
		Short: "Show a run's per-pod progress",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := kf.client()
			if err != nil {
				return err
			}
			var r v1alpha1.TerminationRun
			if err := c.Get(cmd.Context(), client.ObjectKey{Namespace: ns, Name: args[0]}, &r); err != nil {
				return err
			}
			return run.WriteProgress(cmd.OutOrStdout(), &r, time.Now())
		},
	}
}

func newRunListCommand(kf *kubeFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List runs in the namespace",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ns, err := kf.client()
			if err != nil {
				return err
			}
			var list v1alpha1.TerminationRunList
			if err := c.List(cmd.Context(), &list, client.InNamespace(ns)); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tPOLICY\tPHASE\tDONE\tFAILED\tATTEMPT\tTRIGGER\tAGE")
			for _, r := range list.Items {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%d\t%d\t%s\t%s\n", r.Name, r.Spec.PolicyRef.Name, r.Status.Phase,
					r.Status.PodsDone, r.Status.PodsTotal, r.Status.PodsFailed, r.Status.Attempt, r.Spec.Trigger.Source,
					time.Since(r.CreationTimestamp.Time).Round(time.Second))
			}
			return tw.Flush()
		},
	}
}

func newRunWatchCommand(kf *kubeFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "watch NAME",
		Short: "Follow a run's per-pod progress until it ends",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := kf.client()
			if err != nil {
				return err
			}
			return watchRun(cmd, c, ns, args[0])
		},
	}
}

// watchRun redraws the progress each time the run changes, until it is
// complete; run.Waiter follows it through watch breaks and outages.
func watchRun(cmd *cobra.Command, c client.WithWatch, ns, name string) error {
	ctx := cmd.Context()
	var r v1alpha1.TerminationRun
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &r); err != nil {
		return fmt.Errorf("get run %s/%s: %w", ns, name, err)
	}
	var last string
	var failed error
	out := cmd.OutOrStdout()
	err := (&run.Waiter{Client: c}).Follow(ctx, run.Selection{Namespace: ns, Name: name}, func(r *v1alpha1.TerminationRun, deleted bool) bool {
		if deleted {
			failed = fmt.Errorf("run %s/%s was deleted", ns, name)
			return true
		}
		var buf bytes.Buffer
		if err := run.WriteProgress(&buf, r, time.Now()); err != nil {
			failed = err
			return true
		}
		if s := buf.String(); s != last {
			fmt.Fprintf(out, "%s\n%s", strings.Repeat("-", 60), s)
			last = s
		}
		return meta.IsStatusConditionTrue(r.Status.Conditions, v1alpha1.ConditionComplete)
	})
	return cmp.Or(err, failed)
}
