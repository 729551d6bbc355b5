package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/spf13/cobra"

	"github.com/lastcall-dev/lastcall/internal/devcluster"
)

type devOptions struct {
	dir      string
	nodes    int
	realNode bool
}

func newDevCommand() *cobra.Command {
	opts := &devOptions{nodes: 3}
	cmd := &cobra.Command{
		Use:           "lastcall-dev",
		Short:         "Run a local control plane (etcd, kube-apiserver, controllers, scheduler, kwok nodes)",
		SilenceUsage:  true,
		SilenceErrors: true,
		Long: `A real Kubernetes control plane on 127.0.0.1, with kwok playing the kubelet of
fake nodes. The first run builds the components from source (about 15 minutes
on 2 cores) and caches them; later starts take seconds. For development and
tests only: the shipped lastcall binary does not include it.`,
	}
	cmd.PersistentFlags().StringVar(&opts.dir, "dir", "", "cluster directory: certificates, etcd data, logs, kubeconfig (default <user cache dir>/lastcall/dev)")
	cmd.AddCommand(newDevUpCommand(opts), newDevDownCommand(opts), newDevStatusCommand(opts), newDevExecCommand(opts), newDevBuildCommand(), newImagesCommand(), newPushCommand())
	return cmd
}

func (o *devOptions) resolveDir() (string, error) {
	if o.dir != "" {
		return filepath.Abs(o.dir)
	}
	cache, err := devcluster.DefaultCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(filepath.Dir(cache), "dev"), nil
}

func newDevUpCommand(opts *devOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start the dev cluster in the background and print its kubeconfig path",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := opts.resolveDir()
			if err != nil {
				return err
			}
			if devcluster.Holder(dir) != 0 {
				return fmt.Errorf("a dev cluster with a real node already runs in %s; `lastcall-dev down` first", dir)
			}
			if st, err := devcluster.GetStatus(cmd.Context(), dir); err == nil && st.APIServer == "ok" {
				return fmt.Errorf("a dev cluster already runs in %s (kubeconfig %s); `lastcall-dev down` first", dir, st.Kubeconfig)
			}
			if opts.realNode {
				return upRealNode(cmd, opts, dir)
			}
			c, err := devcluster.Start(cmd.Context(), devcluster.Options{
				Dir: dir, Nodes: opts.nodes, Detached: true, Progress: cmd.ErrOrStderr(),
			})
			if err != nil {
				return err
			}
			if err := c.SaveState(); err != nil {
				c.Stop()
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "dev cluster up in %s\n", c.StartupTime.Round(1e6))
			fmt.Fprintf(out, "kubeconfig: %s\n", c.KubeconfigPath())
			fmt.Fprintf(out, "try:        kubectl --kubeconfig %s get nodes\n", c.KubeconfigPath())
			fmt.Fprintf(out, "stop with:  go run ./cmd/lastcall-dev down%s\n", dirFlag(opts))
			return nil
		},
	}
	cmd.Flags().IntVar(&opts.nodes, "nodes", opts.nodes, "number of fake kwok nodes")
	cmd.Flags().BoolVar(&opts.realNode, "real-node", false, "add a real node (kubelet, containerd, runc) in a network namespace of its own; stays in the foreground (needs root)")
	return cmd
}

func newDevDownCommand(opts *devOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "down",
		Short: "Stop the dev cluster's processes (its data is kept)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := opts.resolveDir()
			if err != nil {
				return err
			}
			if err := devcluster.Down(dir); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "dev cluster in %s stopped\n", dir)
			return nil
		},
	}
}

func newDevStatusCommand(opts *devOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show which components run and whether the nodes are Ready",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := opts.resolveDir()
			if err != nil {
				return err
			}
			if pid := devcluster.Holder(dir); pid != 0 && os.Getenv(envInNode) == "" {
				self, err := os.Executable()
				if err != nil {
					return err
				}
				return execInNode(pid, dir, append([]string{self}, os.Args[1:]...))
			}
			st, err := devcluster.GetStatus(cmd.Context(), dir)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "dir:        %s\nkubeconfig: %s\n", st.Dir, st.Kubeconfig)
			names := make([]string, 0, len(st.Processes))
			for n := range st.Processes {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				state := "stopped"
				if st.Processes[n] {
					state = "running"
				}
				fmt.Fprintf(out, "%-24s %s\n", n, state)
			}
			fmt.Fprintf(out, "apiserver readyz:        %s\nnodes ready:             %d/%d\n", st.APIServer, st.NodesReady, st.NodesTotal)
			return nil
		},
	}
}

func newDevBuildCommand() *cobra.Command {
	var peers, realNode, helm bool
	cmd := &cobra.Command{
		Use:   "build",
		Short: "Build and cache the control-plane binaries (done by `up` and the tests when missing)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := devcluster.BuildOptions{Progress: cmd.ErrOrStderr(), RealNode: realNode, Helm: helm}
			bins, err := devcluster.EnsureBinaries(cmd.Context(), opts)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "control-plane binaries in %s\n", bins.Dir)
			if !peers {
				return nil
			}
			p, err := devcluster.EnsurePeers(cmd.Context(), opts)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "flagger %s and its loadtester in %s\n", devcluster.FlaggerVersion, p.Dir)
			return nil
		},
	}
	cmd.Flags().BoolVar(&peers, "peers", false, "also build Flagger and flagger-loadtester, used by the end-to-end tests and the demo")
	cmd.Flags().BoolVar(&realNode, "real-node", false, "also build the kubelet and kube-proxy of the real node lane")
	cmd.Flags().BoolVar(&helm, "helm", false, "also build helm, which the chart's tests use")
	return cmd
}

func dirFlag(o *devOptions) string {
	if o.dir == "" {
		return ""
	}
	return " --dir " + o.dir
}
