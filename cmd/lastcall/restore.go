package main

import (
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"
	"k8s.io/utils/clock"

	"github.com/lastcall-dev/lastcall/internal/prestop"
)

func newRestoreCommand() *cobra.Command {
	var cfg prestop.RestoreConfig
	cmd := &cobra.Command{
		Use:   "restore",
		Short: "initContainer: restore the state the preStop hook saved",
		Long:  prestop.RestoreHelp,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			res, err := prestop.NewRestorer(cfg, clock.RealClock{}, log).Run(cmd.Context())
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), res)
			return err
		},
	}
	cfg.AddFlags(cmd.Flags())
	return cmd
}
