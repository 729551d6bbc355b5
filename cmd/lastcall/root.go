package main

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/lastcall-dev/lastcall/internal/version"
)

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "lastcall",
		Short:         "Make Kubernetes pod termination safe: no request dropped, no state lost",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newVersionCommand(), newServerCommand(), newRunCommand(), newPrestopCommand(), newRestoreCommand(), newNodeAgentCommand(), newGateCommand(), newLintCommand())
	return root
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "lastcall %s (%s, %s/%s)\n", version.String(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return err
		},
	}
}
