package devcluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// devState is what `lastcall-dev up` leaves in the cluster dir so that
// `down` and `status` can find the detached processes.
type devState struct {
	Ports     ports          `json:"ports"`
	Processes map[string]int `json:"processes"`
	Started   time.Time      `json:"started"`
	// Holder is the pid of the `lastcall-dev up --real-node` process that
	// holds a real node's network namespace and stops it all on SIGTERM.
	Holder int `json:"holder,omitempty"`
}

func statePath(dir string) string { return filepath.Join(dir, "state.json") }

// SaveState records the running processes and ports of a detached cluster.
func (c *Cluster) SaveState() error {
	st := devState{Ports: c.ports, Processes: map[string]int{}, Started: time.Now()}
	if c.node != nil {
		st.Holder = os.Getpid()
	}
	for _, p := range c.procs {
		st.Processes[p.name] = p.pid
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(statePath(c.dir), b, 0o644)
}

func loadState(dir string) (devState, error) {
	var st devState
	b, err := os.ReadFile(statePath(dir))
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(b, &st)
}

// reusePorts returns the ports a persistent cluster used last time when they
// are all still free, so that etcd's stored peer URL and kubeconfigs copied
// elsewhere stay valid.
func reusePorts(dir string) (ports, bool) {
	st, err := loadState(dir)
	if err != nil {
		return ports{}, false
	}
	p := st.Ports
	for _, port := range []int{p.EtcdClient, p.EtcdPeer, p.APIServer, p.ControllerManager, p.Scheduler, p.Kwok} {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			return ports{}, false
		}
		l.Close()
	}
	return p, true
}

// Down stops the processes of a detached cluster in dir. Data is kept.
func Down(dir string) error {
	st, err := loadState(dir)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no dev cluster state in %s", dir)
	}
	if err != nil {
		return err
	}
	if st.Holder != 0 {
		// The holder stops the real node and the control plane itself.
		h := &process{name: "lastcall-dev", pid: st.Holder}
		if h.running() {
			_ = syscall.Kill(st.Holder, syscall.SIGTERM)
			for i := 0; i < 1200 && h.running(); i++ {
				time.Sleep(50 * time.Millisecond)
			}
			if h.running() {
				return fmt.Errorf("lastcall-dev (pid %d) holding the real node did not stop within 60 s", st.Holder)
			}
		}
		st.Holder = 0
	}
	for _, name := range []string{BinKwok, BinKubeScheduler, BinKubeControllerManager, BinKubeAPIServer, BinEtcd} {
		pid, ok := st.Processes[name]
		if !ok {
			continue
		}
		p := &process{name: name, pid: pid}
		if p.running() {
			p.stop(10 * time.Second)
		}
	}
	st.Processes = nil
	b, _ := json.MarshalIndent(st, "", "  ")
	return os.WriteFile(statePath(dir), b, 0o644)
}

// Status describes a detached dev cluster.
type Status struct {
	Dir        string
	Kubeconfig string
	Processes  map[string]bool // name -> running
	APIServer  string          // "ok" or the error
	NodesReady int
	NodesTotal int
}

// Holder returns the pid of the process holding the real node's network
// namespace of the dev cluster in dir, or 0 without a real node.
func Holder(dir string) int {
	st, err := loadState(dir)
	if err != nil || st.Holder == 0 || syscall.Kill(st.Holder, 0) != nil {
		return 0
	}
	return st.Holder
}

// GetStatus reports what runs of the dev cluster in dir.
func GetStatus(ctx context.Context, dir string) (Status, error) {
	s := Status{Dir: dir, Kubeconfig: filepath.Join(dir, "kubeconfig"), Processes: map[string]bool{}}
	st, err := loadState(dir)
	if errors.Is(err, os.ErrNotExist) {
		return s, fmt.Errorf("no dev cluster in %s (run `lastcall-dev up`)", dir)
	}
	if err != nil {
		return s, err
	}
	for name, pid := range st.Processes {
		s.Processes[name] = syscall.Kill(pid, 0) == nil
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", s.Kubeconfig)
	if err != nil {
		s.APIServer = err.Error()
		return s, nil
	}
	cfg.Timeout = 3 * time.Second
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		s.APIServer = err.Error()
		return s, nil
	}
	body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
	if err != nil {
		s.APIServer = err.Error()
		return s, nil
	}
	s.APIServer = string(body)
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err == nil {
		s.NodesTotal = len(nodes.Items)
		for i := range nodes.Items {
			if nodeReady(&nodes.Items[i]) {
				s.NodesReady++
			}
		}
	}
	return s, nil
}
