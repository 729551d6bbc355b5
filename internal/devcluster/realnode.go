package devcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/lastcall-dev/lastcall/internal/devcluster/netns"
)

// RealNodeOptions adds a real node (the kubelet with containerd and runc)
// beside the kwok nodes. It runs only inside a network and mount namespace
// of the test's own (netns.Enter).
type RealNodeOptions struct {
	// Images are image archives (OCI layout or docker-save tars) imported
	// into the node's containerd before the kubelet starts; pods use them
	// with imagePullPolicy Never or IfNotPresent. The sandbox image is
	// always imported.
	Images []string
	// KubeletConfig is appended to the KubeletConfiguration (YAML keys), e.g.
	// shutdownGracePeriod for the node-shutdown tests.
	KubeletConfig string
	// Env is added to the kubelet's environment, e.g.
	// DBUS_SYSTEM_BUS_ADDRESS for a private logind.
	Env []string
}

// realNode is the running node: containerd, the kubelet and kube-proxy,
// started after the control plane and stopped before it.
type realNode struct {
	paths   nodePaths
	host    *hostChanges
	procs   []*process
	started time.Time
	ready   time.Time
}

const (
	binContainerd = "containerd"
	binCtr        = "ctr"
)

// startRealNode starts containerd, imports the images, then starts the
// kubelet and kube-proxy and waits for the node to be Ready.
func (c *Cluster) startRealNode(ctx context.Context, bins Binaries, opts *RealNodeOptions) error {
	for _, b := range []string{binContainerd, binCtr, "runc", "/usr/lib/cni/bridge"} {
		if _, err := exec.LookPath(b); err != nil {
			return fmt.Errorf("the real node needs %s (Debian's containerd, runc and containernetworking-plugins: make deps): %w", b, err)
		}
	}
	n := &realNode{paths: nodePaths{dir: filepath.Join(c.dir, "node")}, started: time.Now()}
	c.node = n
	if err := netns.AddAddress(NodeIP + "/32"); err != nil {
		return err
	}
	// A node has a default route; this one has only the Service range, so
	// that the test reaches Services as a process on a node does.
	if err := netns.AddLocalRoute(ServiceCIDR, NodeIP); err != nil {
		return err
	}
	var err error
	if n.host, err = prepareHost(n.paths); err != nil {
		return err
	}
	kubeletCert, kubeletKey, err := c.pki.issue("kubelet-serving", RealNodeName, nil, []net.IP{net.ParseIP(NodeIP)})
	if err != nil {
		return err
	}
	clientCert, clientKey, err := c.pki.issue("kubelet-client", "system:node:"+RealNodeName, []string{"system:nodes"}, nil)
	if err != nil {
		return err
	}
	kc := &rest.Config{Host: c.config.Host, TLSClientConfig: rest.TLSClientConfig{CAFile: c.pki.caCert(), CertFile: clientCert, KeyFile: clientKey}}
	if err := writeKubeconfig(n.paths.kubeletKubeconfig(), kc); err != nil {
		return err
	}
	if err := writeFiles(map[string]string{
		n.paths.containerdConfig():                                    n.paths.containerdConfigText(),
		filepath.Join(n.paths.cniConfDir(), "10-devcluster.conflist"): n.paths.cniConfigText(),
		n.paths.kubeletConfig():                                       n.paths.kubeletConfigText(c.pki, kubeletCert, kubeletKey, "/"+n.host.cgroupRoot, opts.KubeletConfig),
	}); err != nil {
		return err
	}
	logs := filepath.Join(c.dir, "logs")
	start := func(name, bin string, args []string, env []string) error {
		p, err := startProcessEnv(name, bin, args, logs, false, env)
		if err != nil {
			return err
		}
		n.procs = append(n.procs, p)
		return nil
	}
	if err := start(binContainerd, binContainerd, []string{"--config", n.paths.containerdConfig()}, nil); err != nil {
		return err
	}
	if err := n.waitContainerd(ctx); err != nil {
		return err
	}
	pause, err := LocalImage(ctx, c.buildOpts, "lastcall-pause", "./cmd/lastcall-pause", SandboxImage, n.paths.path("images"))
	if err != nil {
		return err
	}
	if err := n.importImages(ctx, append([]string{pause}, opts.Images...)); err != nil {
		return err
	}
	if err := start(BinKubelet, bins.Path(BinKubelet), []string{
		"--config=" + n.paths.kubeletConfig(),
		"--kubeconfig=" + n.paths.kubeletKubeconfig(),
		"--root-dir=" + n.paths.kubeletRoot(),
		"--cert-dir=" + n.paths.path("kubelet-pki"),
		"--hostname-override=" + RealNodeName,
		"--node-ip=" + NodeIP,
		"--node-labels=" + RealNodeLabel + "=true",
		"--v=1",
	}, opts.Env); err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(c.config)
	if err != nil {
		return err
	}
	if err := n.waitReady(ctx, cs, n.started); err != nil {
		return err
	}
	// kube-proxy reads the node's IP from the Node object: start it once the
	// kubelet has registered it.
	if err := start(BinKubeProxy, bins.Path(BinKubeProxy), []string{
		"--kubeconfig=" + c.KubeconfigPath(),
		"--hostname-override=" + RealNodeName,
		"--proxy-mode=iptables",
		"--cluster-cidr=" + RealPodCIDR,
		// Replies between two pods on the bridge would skip the host's
		// conntrack without br_netfilter; masquerading every Service
		// connection sends them back through it.
		"--masquerade-all",
		// The conntrack table is the machine's, not the namespace's.
		"--conntrack-max-per-core=0",
		"--conntrack-tcp-timeout-established=0",
		"--conntrack-tcp-timeout-close-wait=0",
		"--healthz-bind-address=127.0.0.1:10256",
		"--metrics-bind-address=127.0.0.1:10249",
		"--v=1",
	}, nil); err != nil {
		return err
	}
	if err := c.waitHTTP(ctx, BinKubeProxy, "http://127.0.0.1:10256/healthz", 30*time.Second); err != nil {
		return fmt.Errorf("kube-proxy healthz: %w", err)
	}
	n.ready = time.Now()
	return nil
}

func (n *realNode) ctr(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, binCtr, append([]string{"--address", n.paths.containerdSocket(), "--namespace", "k8s.io"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (n *realNode) waitContainerd(ctx context.Context) error {
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		if err := n.exited(); err != nil {
			return false, err
		}
		_, err := n.ctr(ctx, "version")
		return err == nil, nil
	})
}

// importImages loads image archives into the node's containerd.
func (n *realNode) importImages(ctx context.Context, archives []string) error {
	for _, a := range archives {
		if _, err := n.ctr(ctx, "images", "import", a); err != nil {
			return fmt.Errorf("import %s: %w", a, err)
		}
	}
	return nil
}

// waitReady waits for the kubelet's healthz and a Ready node whose
// heartbeat is newer than since: after a restart the Node object still
// says Ready from the previous kubelet.
func (n *realNode) waitReady(ctx context.Context, cs kubernetes.Interface, since time.Time) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	return wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		if err := n.exited(); err != nil {
			return false, err
		}
		resp, err := hc.Get("http://127.0.0.1:10248/healthz")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		node, err := cs.CoreV1().Nodes().Get(ctx, RealNodeName, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, cond := range node.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue && !cond.LastHeartbeatTime.Time.Before(since.Truncate(time.Second)) {
				return untaintNotReady(ctx, cs, node), nil
			}
		}
		return false, nil
	})
}

// untaintNotReady removes the not-ready taint from a Ready node, as the
// node-lifecycle controller would on its next pass (up to 5 s later).
func untaintNotReady(ctx context.Context, cs kubernetes.Interface, node *corev1.Node) bool {
	kept := node.Spec.Taints[:0:0]
	for _, t := range node.Spec.Taints {
		if t.Key != corev1.TaintNodeNotReady {
			kept = append(kept, t)
		}
	}
	if len(kept) == len(node.Spec.Taints) {
		return true
	}
	node.Spec.Taints = kept
	_, err := cs.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{})
	return err == nil
}

func (n *realNode) exited() error {
	for _, p := range n.procs {
		if !p.running() {
			return fmt.Errorf("%s exited; see %s", p.name, p.logPath)
		}
	}
	return nil
}

// stop ends kube-proxy and the kubelet, removes every container (they
// outlive containerd: each has its own shim), stops containerd and undoes
// the host changes. It returns what it could not clean up.
func (n *realNode) stop() error {
	if n == nil {
		return nil
	}
	var errs []error
	var containerd *process
	for i := len(n.procs) - 1; i >= 0; i-- {
		if n.procs[i].name == binContainerd {
			containerd = n.procs[i]
			continue
		}
		n.procs[i].stop(10 * time.Second)
	}
	if containerd != nil && containerd.running() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		errs = append(errs, n.removeContainers(ctx))
		cancel()
		containerd.stop(10 * time.Second)
	}
	n.procs = nil
	errs = append(errs, n.host.restore())
	if left := processesMentioning(n.paths.dir); len(left) > 0 {
		errs = append(errs, fmt.Errorf("processes left running: %s", strings.Join(left, "; ")))
	}
	return errors.Join(errs...)
}

// processesMentioning describes the processes whose command line names
// dir: every process the node starts (containerd, its shims, the kubelet)
// does.
func processesMentioning(dir string) []string {
	var out []string
	for _, pid := range pidsMentioning(dir) {
		b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
		out = append(out, strconv.Itoa(pid)+" "+strings.ReplaceAll(strings.TrimRight(string(b), "\x00"), "\x00", " "))
	}
	return out
}

// pidsMentioning lists the processes whose command line names dir.
func pidsMentioning(dir string) []int {
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var out []int
	for _, f := range cmdlines {
		b, err := os.ReadFile(f)
		if err != nil || !strings.Contains(string(b), dir) {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(f))); err == nil && pid != os.Getpid() {
			out = append(out, pid)
		}
	}
	return out
}

// removeContainers kills and deletes every task and container in the CRI's
// namespace, so that no shim or container process outlives the node.
func (n *realNode) removeContainers(ctx context.Context) error {
	out, err := n.ctr(ctx, "tasks", "ls", "-q")
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range strings.Fields(out) {
		_, _ = n.ctr(ctx, "tasks", "kill", "--signal", "SIGKILL", id)
	}
	for _, id := range strings.Fields(out) {
		if _, err := n.ctr(ctx, "tasks", "delete", "--force", id); err != nil && !strings.Contains(err.Error(), "not found") {
			errs = append(errs, err)
		}
	}
	if out, err = n.ctr(ctx, "containers", "ls", "-q"); err != nil {
		return err
	}
	for _, id := range strings.Fields(out) {
		if _, err := n.ctr(ctx, "containers", "delete", id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ImportImages loads image archives (LocalImage's) into the real node's
// containerd, for pods with imagePullPolicy Never or IfNotPresent.
func (c *Cluster) ImportImages(ctx context.Context, archives ...string) error {
	if c.node == nil {
		return errors.New("devcluster: ImportImages needs a real node (Options.RealNode)")
	}
	return c.node.importImages(ctx, archives)
}

// realNodeLogs names the real node's component logs, for LogTails.
func (c *Cluster) realNodeLogs() []string {
	if c.node == nil {
		return nil
	}
	return []string{binContainerd, BinKubelet, BinKubeProxy}
}

// NodeStartupTime is how long the real node took from containerd's start
// to Ready, or zero without a real node.
func (c *Cluster) NodeStartupTime() time.Duration {
	if c.node == nil {
		return 0
	}
	return c.node.ready.Sub(c.node.started)
}
