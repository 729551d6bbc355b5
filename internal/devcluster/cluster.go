package devcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/lastcall-dev/lastcall/internal/devcluster/netns"
)

// AnnotationExitAfter on a pod makes kwok remove it that long after its
// deletion (a Go duration) instead of at the end of its grace period.
const AnnotationExitAfter = "devcluster.lastcall.dev/exit-after"

// Options configures Start. The zero value means the defaults.
type Options struct {
	// Dir holds certificates, etcd data, logs and the kubeconfig. Empty means
	// a temporary directory that Stop removes; a set Dir is kept, so a dev
	// cluster survives `down` and `up`.
	Dir string
	// Nodes is the number of fake nodes to create; default 3.
	Nodes int
	// PodCIDR is kwok's pod CIDR, inside 127.0.0.0/8 so that a test can serve
	// a pod's IP with a real server. Default: DevPodCIDR for a persistent Dir;
	// otherwise a /16 of 127.2–254 reserved for this cluster while it runs.
	PodCIDR string
	// ExecWorkDir is where kwok runs `kubectl exec` commands as local
	// processes; default Dir/exec.
	ExecWorkDir string
	// Detached leaves the processes running when this process exits.
	Detached bool
	// Build configures EnsureBinaries.
	Build BuildOptions
	// RealNode, when set, adds a real node (kubelet, containerd, runc,
	// kube-proxy) beside the kwok nodes; see RealNodeOptions.
	RealNode *RealNodeOptions
	// Progress receives startup progress; default io.Discard.
	Progress io.Writer
}

// Cluster is a running control plane.
type Cluster struct {
	dir       string
	temporary bool
	pki       pki
	ports     ports
	procs     []*process
	config    *rest.Config
	progress  io.Writer
	podCIDR   string
	cidrLease *cidrLease
	node      *realNode
	// cleanupErr is what Stop could not undo.
	cleanupErr error
	buildOpts  BuildOptions
	// StartupTime is how long Start took after the binaries were available.
	StartupTime time.Duration
}

type ports struct {
	EtcdClient, EtcdPeer, APIServer, ControllerManager, Scheduler, Kwok int
}

// Start builds what is missing, then starts etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler and kwok, creates the fake nodes
// and waits until they are Ready and schedulable.
func Start(ctx context.Context, opts Options) (c *Cluster, err error) {
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	if opts.Progress == nil {
		opts.Progress = io.Discard
	}
	if opts.RealNode != nil {
		if !netns.Private() {
			return nil, errors.New("devcluster: a real node runs only in a network namespace of the test's own: call netns.Enter first (from TestMain)")
		}
		opts.Build.RealNode = true
	}
	bins, err := EnsureBinaries(ctx, opts.Build)
	if err != nil {
		return nil, err
	}
	begin := time.Now()
	c = &Cluster{dir: opts.Dir, progress: opts.Progress, buildOpts: opts.Build}
	if c.dir == "" {
		if c.dir, err = os.MkdirTemp("", "lastcall-devcluster-"); err != nil {
			return nil, err
		}
		c.temporary = true
	}
	// started, not c: `return nil, err` sets c to nil before this runs.
	started := c
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w\n%s", err, started.LogTails(30))
			started.Stop()
		}
	}()
	switch {
	case opts.PodCIDR != "":
		c.podCIDR = opts.PodCIDR
	case opts.RealNode != nil:
		// Pods on the real node must reach kwok's pods too, which loopback
		// addresses of the namespace would not allow; a test serves one of
		// these IPs by adding it to the namespace's loopback first.
		c.podCIDR = KwokPodCIDRWithRealNode
	case !c.temporary:
		c.podCIDR = DevPodCIDR
	default:
		if c.cidrLease, err = leasePodCIDR(); err != nil {
			return nil, err
		}
		c.podCIDR = c.cidrLease.cidr
	}
	c.pki = pki{dir: filepath.Join(c.dir, "pki")}
	if err := c.pki.ensure(); err != nil {
		return nil, fmt.Errorf("create certificates: %w", err)
	}
	if _, _, err := c.pki.issue(apiServerKubeletClient, "kube-apiserver-kubelet-client", []string{"system:masters"}, nil); err != nil {
		return nil, fmt.Errorf("create certificates: %w", err)
	}
	for _, d := range []string{"logs", "etcd", "exec"} {
		if err := os.MkdirAll(filepath.Join(c.dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	if opts.ExecWorkDir == "" {
		opts.ExecWorkDir = filepath.Join(c.dir, "exec")
	}
	if p, ok := reusePorts(c.dir); ok && !c.temporary {
		c.ports = p
	} else if c.ports, err = freePorts(); err != nil {
		return nil, err
	}
	token, err := c.pki.token()
	if err != nil {
		return nil, err
	}
	c.config = &rest.Config{
		Host:            "https://127.0.0.1:" + strconv.Itoa(c.ports.APIServer),
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAFile: c.pki.caCert()},
		QPS:             200,
		Burst:           400,
	}
	if err := writeKubeconfig(c.KubeconfigPath(), c.config); err != nil {
		return nil, err
	}
	if err := c.writeKwokConfig(opts.ExecWorkDir); err != nil {
		return nil, err
	}

	step := func(name string, f func() error) error {
		t := time.Now()
		if err := f(); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		fmt.Fprintf(c.progress, "devcluster: %s ready in %s\n", name, time.Since(t).Round(time.Millisecond))
		return nil
	}
	start := func(name string, args []string) error {
		p, err := startProcess(name, bins.Path(name), args, filepath.Join(c.dir, "logs"), opts.Detached)
		if err != nil {
			return err
		}
		c.procs = append(c.procs, p)
		return nil
	}
	if err := step("etcd", func() error {
		if err := start(BinEtcd, c.etcdArgs()); err != nil {
			return err
		}
		return c.waitHTTP(ctx, BinEtcd, fmt.Sprintf("http://127.0.0.1:%d/health", c.ports.EtcdClient), 30*time.Second)
	}); err != nil {
		return nil, err
	}
	if err := step("kube-apiserver", func() error {
		if err := start(BinKubeAPIServer, c.apiServerArgs(opts.RealNode != nil)); err != nil {
			return err
		}
		return c.waitAPIServer(ctx, 60*time.Second)
	}); err != nil {
		return nil, err
	}
	for _, s := range []struct {
		name string
		args []string
	}{
		{BinKubeControllerManager, c.controllerManagerArgs()},
		{BinKubeScheduler, c.schedulerArgs()},
		{BinKwok, c.kwokArgs(c.podCIDR)},
	} {
		if err := start(s.name, s.args); err != nil {
			return nil, err
		}
	}
	cs, err := kubernetes.NewForConfig(c.config)
	if err != nil {
		return nil, err
	}
	if err := step("controllers, scheduler, kwok and nodes", func() error {
		return c.waitComponents(ctx, cs, opts.Nodes)
	}); err != nil {
		return nil, err
	}
	if opts.RealNode != nil {
		if err := step("real node (containerd, kubelet, kube-proxy)", func() error {
			return c.startRealNode(ctx, bins, opts.RealNode)
		}); err != nil {
			return nil, err
		}
	}
	c.StartupTime = time.Since(begin)
	fmt.Fprintf(c.progress, "devcluster: control plane up in %s (kubeconfig %s)\n", c.StartupTime.Round(time.Millisecond), c.KubeconfigPath())
	return c, nil
}

// Config returns a copy of the admin client config.
func (c *Cluster) Config() *rest.Config { return rest.CopyConfig(c.config) }

// KubeconfigPath is the admin kubeconfig file, usable with kubectl.
func (c *Cluster) KubeconfigPath() string { return filepath.Join(c.dir, "kubeconfig") }

// Dir is the cluster's directory (certificates, data, logs).
func (c *Cluster) Dir() string { return c.dir }

// PodCIDR is the range kwok gives pod IPs from.
func (c *Cluster) PodCIDR() string { return c.podCIDR }

// CAFile is the cluster CA, which also signed kwok's kubelet certificate.
func (c *Cluster) CAFile() string { return c.pki.caCert() }

// ServiceAccountIssuer is the issuer of the cluster's service-account tokens.
func (c *Cluster) ServiceAccountIssuer() string { return serviceAccountIssuer }

// Stop ends every component (SIGTERM to its process group, then SIGKILL) in
// reverse start order and removes a temporary directory. A real node goes
// first, with its containers and what it changed on the host; what could
// not be undone is printed to the progress writer. It is safe to call more
// than once.
func (c *Cluster) Stop() {
	if err := c.node.stop(); err != nil {
		c.cleanupErr = fmt.Errorf("real node cleanup: %w", err)
		fmt.Fprintf(c.progress, "devcluster: %v\n", c.cleanupErr)
	}
	c.node = nil
	for i := len(c.procs) - 1; i >= 0; i-- {
		c.procs[i].stop(5 * time.Second)
	}
	c.procs = nil
	c.cidrLease.release()
	if c.temporary && c.dir != "" {
		_ = os.RemoveAll(c.dir)
		c.dir = ""
	}
}

// CleanupError is what Stop could not undo (a real node's leftover
// processes, cgroups or sysctls), or nil.
func (c *Cluster) CleanupError() error { return c.cleanupErr }

// LogTails returns the last n lines of every component's log, for a test
// failure report.
func (c *Cluster) LogTails(n int) string {
	var out string
	for _, name := range append([]string{BinEtcd, BinKubeAPIServer, BinKubeControllerManager, BinKubeScheduler, BinKwok}, c.realNodeLogs()...) {
		path := filepath.Join(c.dir, "logs", name+".log")
		tail, err := tailLines(path, n)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		out += fmt.Sprintf("----- %s (last %d lines of %s)\n%s\n", name, n, path, tail)
	}
	return out
}

// freePorts asks the kernel for free loopback ports. They are released before
// the components bind them; a collision makes Start fail with the log.
func freePorts() (ports, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	next := func() (int, error) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("find a free port: %w", err)
		}
		ls = append(ls, l)
		return l.Addr().(*net.TCPAddr).Port, nil
	}
	var p ports
	for _, dst := range []*int{&p.EtcdClient, &p.EtcdPeer, &p.APIServer, &p.ControllerManager, &p.Scheduler, &p.Kwok} {
		port, err := next()
		if err != nil {
			return p, err
		}
		*dst = port
	}
	return p, nil
}
