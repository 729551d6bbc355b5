package main

import (
	"log/slog"

	"github.com/spf13/cobra"
	"k8s.io/utils/clock"

	"github.com/lastcall-dev/lastcall/internal/prestop"
)

func newPrestopCommand() *cobra.Command {
	var cfg prestop.Config
	cmd := &cobra.Command{
		Use:   "prestop",
		Short: "preStop hook: drain, wait for connections, save state, run a policy, within the grace budget",
		Long:  prestop.HookHelp,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			_, err := prestop.NewHook(cfg, clock.RealClock{}, log, cmd.OutOrStdout()).Run(cmd.Context())
			return err
		},
	}
	cfg.AddFlags(cmd.Flags())
	return cmd
}
