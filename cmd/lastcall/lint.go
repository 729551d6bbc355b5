package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/lastcall-dev/lastcall/internal/gate"
	"github.com/lastcall-dev/lastcall/internal/lint"
)

func newLintCommand() *cobra.Command {
	var opts lint.Options
	var output string
	var strict bool
	cmd := &cobra.Command{
		Use:   "lint FILE|DIR|- ...",
		Short: "Find grace-budget mistakes in Kubernetes manifests (preStop vs terminationGracePeriodSeconds, PDBs)",
		Long: `Reads Kubernetes manifests (YAML with any number of documents, or JSON;
directories are walked for *.yaml, *.yml and *.json; - is standard input)
and reports what would cut a pod's shutdown short: preStop hooks that use the
whole grace period, lastcall prestop flags that do not fit it, hooks on pods
with no grace, grace periods beyond a node's shutdown budget, and
PodDisruptionBudgets that allow no eviction. See docs/lint.md.

Exits 1 when it finds an error (or a warning, with --strict), or cannot read
its input.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("--output %q: want text or json", output)
			}
			var objs []lint.Object
			for _, a := range args {
				got, err := lint.LoadPath(a, cmd.InOrStdin())
				if err != nil {
					return err
				}
				objs = append(objs, got...)
			}
			findings := lint.Check(objs, opts)
			out := cmd.OutOrStdout()
			var err error
			if output == "json" {
				err = lint.WriteJSON(out, findings)
			} else {
				err = lint.WriteText(out, findings)
			}
			if err != nil {
				return err
			}
			errs, warns := lint.Count(findings)
			if errs > 0 || strict && warns > 0 {
				cmd.SilenceUsage = true
				return errors.New(lint.Summary(findings))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.DurationVar(&opts.MinShutdown, "min-shutdown", lint.DefaultMinShutdown, "least time an app should get between SIGTERM and SIGKILL")
	f.DurationVar(&opts.NodeShutdownGrace, "node-shutdown-grace", 0, "time a node shutdown gives pods (kubelet shutdownGracePeriod or the node agent's budget); 0 skips the check")
	f.StringVar(&opts.MeshProvider, "flagger-mesh-provider", gate.DefaultMeshProvider, "Flagger's -mesh-provider, for Canaries without spec.provider (decides whether the gate can ever drain their old pods)")
	f.StringVarP(&output, "output", "o", "text", "text or json")
	f.BoolVar(&strict, "strict", false, "fail on warnings too")
	return cmd
}
