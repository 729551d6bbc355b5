package main

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/lastcall-dev/lastcall/internal/node"
	"github.com/lastcall-dev/lastcall/internal/node/logind"
)

// nodeAgentOptions holds what both node-agent subcommands take.
type nodeAgentOptions struct {
	cfg        node.Config
	configFile string
	kubeconfig string
	logLevel   string
}

func (o *nodeAgentOptions) addFlags(fs *pflag.FlagSet) {
	o.cfg.AddFlags(fs)
	fs.StringVar(&o.configFile, "config", "", "YAML file with the budgets (the kubelet's own KubeletConfiguration works: its other fields are ignored); flags given override it")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster config, then $KUBECONFIG)")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
}

// config reads --config, if given, and lets the flags set on the command
// line win over it.
func (o *nodeAgentOptions) config(fs *pflag.FlagSet) (node.Config, error) {
	if o.configFile == "" {
		return o.cfg, nil
	}
	set := map[string]string{}
	fs.Visit(func(f *pflag.Flag) { set[f.Name] = f.Value.String() })
	file, err := node.LoadConfig(o.configFile)
	if err != nil {
		return node.Config{}, err
	}
	if file.NodeName == "" {
		file.NodeName = o.cfg.NodeName
	}
	o.cfg = file
	for name, v := range set {
		if err := fs.Set(name, v); err != nil {
			return node.Config{}, err
		}
	}
	return o.cfg, nil
}

// client returns the agent's rest config (with its rate limits) and a
// clientset for it.
func (o *nodeAgentOptions) client() (*rest.Config, *kubernetes.Clientset, error) {
	restCfg, err := loadConfig(o.kubeconfig)
	if err != nil {
		return nil, nil, err
	}
	restCfg = node.ClientConfig(restCfg)
	cs, err := kubernetes.NewForConfig(restCfg)
	return restCfg, cs, err
}

func newNodeAgentCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node-agent",
		Short: "Evict a node's pods by priority when it shuts down (for clusters without the kubelet's graceful node shutdown)",
		Long: `A DaemonSet that holds a logind delay lock on each node. When the node
shuts down it cordons and taints the node, then evicts its pods in priority
groups, lowest first, each within its budget (kubelet-compatible
configuration), respecting PodDisruptionBudgets until a margin before the
group's deadline. See docs/node-agent.md.`,
	}
	cmd.AddCommand(newNodeAgentRunCommand(), newNodeAgentPlanCommand(), newNodeAgentPrepareCommand())
	return cmd
}

func newNodeAgentRunCommand() *cobra.Command {
	opts := &nodeAgentOptions{}
	var (
		metricsAddr string
		lopts       logind.Options
	)
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the agent on this node",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(cmd.ErrOrStderr(), opts.logLevel)
			if err != nil {
				return err
			}
			cfg, err := opts.config(cmd.Flags())
			if err != nil {
				return err
			}
			restCfg, cs, err := opts.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			lopts.Logger = log
			lopts.ReadOnly = lopts.DropInPath == ""
			lg, err := logind.Connect(ctx, lopts)
			if err != nil {
				return err
			}
			defer lg.Close()
			reg := prometheus.NewRegistry()
			reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
			rec, stopEvents := node.NewRecorder(cs, cfg.NodeName)
			defer stopEvents()
			metrics := node.NewMetrics(reg)
			var runs node.RunStarter
			if cfg.WithDefaults().TerminationRuns == node.RunsOn {
				rc, err := node.NewRunsClient(restCfg)
				if err != nil {
					return err
				}
				runs = node.NewPolicyRuns(rc, node.PolicyRunsOptions{Recorder: rec, Metrics: metrics, Logger: log})
			}
			agent, err := node.NewAgent(cfg, cs, lg, node.Options{Runs: runs, Recorder: rec, Metrics: metrics, Logger: log})
			if err != nil {
				return err
			}
			g, ctx := errgroup.WithContext(ctx)
			g.Go(func() error { return lg.Run(ctx) })
			g.Go(func() error { return agent.Run(ctx) })
			g.Go(func() error { return node.ServeMetrics(ctx, metricsAddr, reg, log) })
			return g.Wait()
		},
	}
	opts.addFlags(cmd.Flags())
	cmd.Flags().StringVar(&metricsAddr, "metrics-addr", ":9464", "address of /metrics and /healthz (empty: none)")
	cmd.Flags().StringVar(&lopts.DropInPath, "logind-drop-in", logind.DefaultDropInPath, "logind.conf drop-in written when InhibitDelayMaxSec is shorter than the budget; empty: only read what logind grants (run without root after prepare-logind)")
	cmd.Flags().StringVar(&lopts.Address, "dbus-address", "", "D-Bus address of the system bus (default $DBUS_SYSTEM_BUS_ADDRESS, then /run/dbus/system_bus_socket)")
	return cmd
}

// newNodeAgentPrepareCommand is the privileged half of the agent, run as an
// init container: it raises logind's InhibitDelayMaxSec to the budget (a
// drop-in and a reload need root) so that the agent itself can run as an
// unprivileged user, which may still take delay locks.
func newNodeAgentPrepareCommand() *cobra.Command {
	opts := &nodeAgentOptions{}
	var lopts logind.Options
	cmd := &cobra.Command{
		Use:   "prepare-logind",
		Short: "Make logind wait as long as the shutdown budget (writes a drop-in and reloads logind: needs root), then exit",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(cmd.ErrOrStderr(), opts.logLevel)
			if err != nil {
				return err
			}
			cfg, err := opts.config(cmd.Flags())
			if err != nil {
				return err
			}
			cfg = cfg.WithDefaults()
			if err := cfg.Validate(); err != nil {
				return err
			}
			lopts.Logger = log
			lg, err := logind.Connect(cmd.Context(), lopts)
			if err != nil {
				return err
			}
			defer lg.Close()
			want := node.Total(cfg.Groups())
			d, err := lg.EnsureInhibitDelay(cmd.Context(), want)
			if err != nil {
				return err
			}
			if d.Short() {
				log.Warn("logind grants less than the budget; the agent will scale its group budgets down", "requested", want, "granted", d.Granted, "dropIn", d.DropIn)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "logind inhibit delay: requested %s, was %s, granted %s\n", want, d.Before, d.Granted)
			return err
		},
	}
	opts.addFlags(cmd.Flags())
	cmd.Flags().StringVar(&lopts.DropInPath, "logind-drop-in", logind.DefaultDropInPath, "logind.conf drop-in to write when InhibitDelayMaxSec is shorter than the budget")
	cmd.Flags().StringVar(&lopts.Address, "dbus-address", "", "D-Bus address of the system bus (default $DBUS_SYSTEM_BUS_ADDRESS, then /run/dbus/system_bus_socket)")
	return cmd
}

func newNodeAgentPlanCommand() *cobra.Command {
	opts := &nodeAgentOptions{}
	var granted time.Duration
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Print the order, budgets and grace periods a shutdown of the node would use now; changes nothing",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := opts.config(cmd.Flags())
			if err != nil {
				return err
			}
			cfg = cfg.WithDefaults()
			if err := cfg.Validate(); err != nil {
				return err
			}
			log, err := newLogger(cmd.ErrOrStderr(), opts.logLevel)
			if err != nil {
				return err
			}
			restCfg, cs, err := opts.client()
			if err != nil {
				return err
			}
			groups := cfg.Groups()
			if granted > 0 {
				groups = node.ScaleGroups(groups, granted)
			}
			plan, err := node.PlanFor(cmd.Context(), cs, cfg.NodeName, groups)
			if err != nil {
				return err
			}
			if cfg.TerminationRuns == node.RunsOn {
				rc, err := node.NewRunsClient(restCfg)
				if err != nil {
					return err
				}
				if err := node.NewPolicyRuns(rc, node.PolicyRunsOptions{Logger: log}).AddPolicies(cmd.Context(), &plan); err != nil {
					log.Warn("termination policies not shown", "err", err)
				}
			}
			if err := plan.Write(cmd.OutOrStdout()); err != nil {
				return fmt.Errorf("write plan: %w", err)
			}
			return nil
		},
	}
	opts.addFlags(cmd.Flags())
	cmd.Flags().DurationVar(&granted, "inhibit-delay", 0, "plan as if logind granted this InhibitDelayMaxSec (budgets scale down to fit); 0: the full budget")
	return cmd
}
