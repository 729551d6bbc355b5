// Command demo plays lastcall's main scenario (test/e2e/scenario) on a
// private local control plane and shows it live: Flagger's canary, the
// gate's answers and the TerminationRun's per-pod progress, then a summary
// and the properties the run proved. `make demo` runs it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/lastcall-dev/lastcall/internal/devcluster"
	"github.com/lastcall-dev/lastcall/internal/devcluster/netns"
	"github.com/lastcall-dev/lastcall/test/e2e/scenario"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	refresh := flag.Duration("refresh", 500*time.Millisecond, "how often the live view is redrawn (on a terminal)")
	realNode := flag.Bool("real-node", false, "install lastcall with its Helm chart on a real node (kubelet, containerd) instead of running it as a process; needs root")
	flag.Parse()
	if *realNode {
		// The real node lives in a network namespace of its own; this
		// re-executes the demo inside it (everything is built already).
		if err := netns.Enter(); err != nil {
			return err
		}
	}
	work, err := os.MkdirTemp("", "lastcall-demo-")
	if err != nil {
		return err
	}
	failed := true // keep the logs of a failed demo
	defer func() {
		if failed {
			fmt.Printf("logs kept in %s\n", work)
			return
		}
		_ = os.RemoveAll(work)
	}()

	say("starting a private control plane (etcd, kube-apiserver, controllers, scheduler, kwok); the first run builds it")
	opts := devcluster.Options{Nodes: 2, Progress: os.Stderr}
	if *realNode {
		say("with a real node: the kubelet, kube-proxy, containerd and runc, in a network namespace of the demo's own")
		opts.RealNode = &devcluster.RealNodeOptions{}
	}
	c, err := devcluster.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer c.Stop()
	say("preparing Flagger %s, the CRDs and the lastcall binary", devcluster.FlaggerVersion)
	sc, err := setup(ctx, c, work, *realNode)
	if err != nil {
		return err
	}
	defer sc.Close()

	tty := isTerminal(os.Stdout)
	if !tty {
		say("stdout is not a terminal: printing changes as they happen")
	}
	var rep *scenario.Report
	var runErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		rep, runErr = sc.Run(ctx)
	}()
	live(sc, done, tty, *refresh)

	fmt.Println()
	scenario.WriteSummary(os.Stdout, rep)
	fmt.Println()
	if runErr != nil {
		return fmt.Errorf("%w\ncontrol plane:\n%s", runErr, c.LogTails(15))
	}
	ok := true
	for _, check := range rep.Verify() {
		mark := "ok  "
		if len(check.Problems) > 0 {
			mark, ok = "FAIL", false
		}
		fmt.Printf("%s %s\n", mark, check.Name)
		for _, p := range check.Problems {
			fmt.Printf("       %s\n", p)
		}
	}
	if !ok {
		return errors.New("the scenario did not show every property")
	}
	failed = false
	return nil
}

// setup installs the CRDs, builds lastcall and prepares the scenario in a
// namespace of its own.
func setup(ctx context.Context, c *devcluster.Cluster, work string, realNode bool) (*scenario.Scenario, error) {
	peers, err := devcluster.EnsurePeers(ctx, devcluster.BuildOptions{})
	if err != nil {
		return nil, err
	}
	flaggerCRDs, err := devcluster.FlaggerCRDPath(ctx)
	if err != nil {
		return nil, err
	}
	ours, err := filepath.Glob("charts/lastcall/crds/lastcall.dev_*.yaml")
	if err != nil || len(ours) == 0 {
		return nil, fmt.Errorf("no CRDs in charts/lastcall/crds: run from the checkout's root (make demo)")
	}
	gatewayCRDs, err := devcluster.GatewayAPICRDPaths(ctx)
	if err != nil {
		return nil, err
	}
	if err := devcluster.InstallCRDs(ctx, c.Config(), append(append(ours, flaggerCRDs), gatewayCRDs...)...); err != nil {
		return nil, err
	}
	var bin string
	var helm *scenario.HelmInstall
	if realNode {
		say("building the lastcall image and importing it into the node's containerd; helm installs it")
		const repo, tag = "ghcr.io/lastcall-dev/lastcall", "demo"
		archive, err := devcluster.LocalImage(ctx, devcluster.BuildOptions{}, "lastcall", "./cmd/lastcall", repo+":"+tag, work)
		if err != nil {
			return nil, err
		}
		if err := c.ImportImages(ctx, archive); err != nil {
			return nil, err
		}
		helm = &scenario.HelmInstall{Chart: "charts/lastcall", Image: repo, Tag: tag}
	} else if bin, err = scenario.BuildLastcall(ctx, ".", work); err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(c.Config())
	if err != nil {
		return nil, err
	}
	const ns = "demo"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("create namespace: %w", err)
	}
	logs := filepath.Join(work, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return nil, err
	}
	cfg := scenario.Config{Cluster: c.Config(), Kubeconfig: c.KubeconfigPath(), Namespace: ns, LogDir: logs,
		LastcallBinary: bin, FlaggerBinary: peers.Flagger(), Helm: helm}
	if !isTerminal(os.Stdout) {
		cfg.Log = func(line string) { fmt.Println(line) }
	}
	fmt.Printf("    kubectl --kubeconfig %s -n %s get canary,terminationruns,pods\n", c.KubeconfigPath(), ns)
	return scenario.New(cfg)
}

// live redraws the scenario's state until done; without a terminal the
// scenario's Log prints instead.
func live(sc *scenario.Scenario, done <-chan struct{}, tty bool, every time.Duration) {
	if !tty {
		<-done
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		finished := false
		select {
		case <-done:
			finished = true // draw the final state once more
		case <-t.C:
		}
		fmt.Print("\033[H\033[2J") // home, clear screen
		_ = scenario.WriteSnapshot(os.Stdout, sc.Snapshot(12))
		if finished {
			return
		}
	}
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func say(format string, args ...any) { fmt.Printf("==> "+format+"\n", args...) }
