package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/lastcall-dev/lastcall/internal/devcluster"
	"github.com/lastcall-dev/lastcall/internal/devcluster/netns"
)

// upRealNode runs the dev cluster with a real node in the foreground: the
// node's addresses exist only in the network namespace this process makes,
// and everything it started (containers included) is stopped when it ends
// (Ctrl-C, or `lastcall-dev down` from another terminal).
func upRealNode(cmd *cobra.Command, opts *devOptions, dir string) error {
	if err := netns.Enter(); err != nil { // re-executes this command inside
		return err
	}
	c, err := devcluster.Start(cmd.Context(), devcluster.Options{
		Dir: dir, Nodes: opts.nodes, Progress: cmd.ErrOrStderr(), RealNode: &devcluster.RealNodeOptions{},
	})
	if err != nil {
		return err
	}
	defer func() {
		c.Stop()
		if err := c.CleanupError(); err != nil {
			fmt.Fprintln(cmd.ErrOrStderr(), "lastcall-dev:", err)
		}
	}()
	if err := c.SaveState(); err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "dev cluster with a real node up in %s (node %s, %s)\n", c.StartupTime.Round(1e6), devcluster.RealNodeName, devcluster.NodeIP)
	fmt.Fprintf(out, "its addresses live in this process's network namespace; reach them with:\n")
	fmt.Fprintf(out, "  go run ./cmd/lastcall-dev exec%s -- kubectl get nodes -o wide\n", dirFlag(opts))
	fmt.Fprintf(out, "stop with Ctrl-C or `go run ./cmd/lastcall-dev down%s`\n", dirFlag(opts))
	<-cmd.Context().Done()
	fmt.Fprintln(out, "stopping the real node and the control plane")
	return nil
}

func newDevExecCommand(opts *devOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "exec -- COMMAND [ARG...]",
		Short: "Run a command in the network namespace of a dev cluster with a real node, with KUBECONFIG set",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := opts.resolveDir()
			if err != nil {
				return err
			}
			pid := devcluster.Holder(dir)
			if pid == 0 {
				return fmt.Errorf("no dev cluster with a real node runs in %s (`lastcall-dev up --real-node`)", dir)
			}
			return execInNode(pid, dir, args)
		},
	}
}

// envInNode marks a command that execInNode already moved, so that status
// does not move itself twice.
const envInNode = "LASTCALL_DEV_IN_NODE"

// execInNode replaces this process with args run in the network and mount
// namespace of the holder pid, with the cluster's KUBECONFIG.
func execInNode(pid int, dir string, args []string) error {
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		return fmt.Errorf("nsenter from util-linux is required: %w", err)
	}
	env := append(os.Environ(), "KUBECONFIG="+dir+"/kubeconfig", envInNode+"=1")
	argv := append([]string{nsenter, "--target", strconv.Itoa(pid), "--net", "--mount", "--"}, args...)
	return syscall.Exec(nsenter, argv, env)
}
