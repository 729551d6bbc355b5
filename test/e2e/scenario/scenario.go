package scenario

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
	"github.com/lastcall-dev/lastcall/internal/devcluster"
	"github.com/lastcall-dev/lastcall/internal/run"
)

// Config configures a scenario. Zero values mean the defaults.
type Config struct {
	// Cluster is an admin config of the cluster and Kubeconfig the same as
	// a file, for the processes the scenario starts.
	Cluster    *rest.Config
	Kubeconfig string
	// Namespace must exist; Flagger watches only it.
	Namespace string
	// LogDir receives the logs of Flagger and of each lastcall server start.
	LogDir string
	// LastcallBinary and FlaggerBinary are the programs to run (see
	// BuildLastcall and devcluster.EnsurePeers).
	LastcallBinary, FlaggerBinary string
	// Helm, when set, installs lastcall with its chart on the cluster's
	// real node instead of running LastcallBinary as a process.
	Helm *HelmInstall
	// Mode is how Flagger moves the traffic; default ModeBlueGreen, the
	// main scenario (with its faults). The other modes play a plain
	// rollout.
	Mode Mode
	// Replicas of the app; default 3.
	Replicas int32
	// Interval is Flagger's analysis interval; default and minimum 10s
	// (Flagger raises shorter ones). A held canary asks the gate every
	// second interval.
	Interval time.Duration
	// DrainTime is how long a healthy pod takes to drain; default 1s.
	DrainTime time.Duration
	// RetryBackoff is the policy's wait before retrying a failed attempt;
	// default 2×Interval+5s, longer than Flagger's check period, so that the
	// gate is asked before the retry.
	RetryBackoff time.Duration
	// Timeout bounds Run; default 8m.
	Timeout time.Duration
	// Log receives each change the scenario sees, already timestamped.
	Log func(line string)
}

// Scenario is one run of the main scenario; see the package doc.
type Scenario struct {
	cfg  Config
	cs   kubernetes.Interface
	dyn  dynamic.Interface
	c    client.Client
	pods *podServers
	obs  *observer
	gate *gateRecorder

	bgCancel context.CancelFunc
	gateSrv  *http.Server
	gateURL  string
	lastcall lastcallRunner
	flagger  *devcluster.Process

	recovered  atomic.Bool   // the failing pod drains from now on
	lastcallUp atomic.Bool   // lastcall should be running (false while killed)
	hungOnce   atomic.Bool   // one healthy drain has been held
	inFlight   chan struct{} // closed when the held drain arrived
	killed     chan struct{} // closed when lastcall was killed; releases the held drain

	// mu may be taken while the observer or the pod servers hold theirs
	// (they log), so never take theirs while holding mu.
	mu     sync.Mutex
	closed bool
	stage  string
	log    []string
	report Report
}

// New checks cfg and prepares clients; Run starts everything.
func New(cfg Config) (*Scenario, error) {
	if cfg.Cluster == nil || cfg.Kubeconfig == "" || cfg.Namespace == "" || (cfg.LastcallBinary == "" && cfg.Helm == nil) || cfg.FlaggerBinary == "" || cfg.LogDir == "" {
		return nil, errors.New("scenario: Cluster, Kubeconfig, Namespace, LogDir, LastcallBinary (or Helm) and FlaggerBinary are required")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&cfg.Interval, 10*time.Second)
	def(&cfg.DrainTime, time.Second)
	def(&cfg.RetryBackoff, 2*cfg.Interval+5*time.Second)
	def(&cfg.Timeout, 8*time.Minute)
	if cfg.Replicas == 0 {
		cfg.Replicas = 3
	}
	if cfg.Mode == "" {
		cfg.Mode = ModeBlueGreen
	}
	s := &Scenario{cfg: cfg, inFlight: make(chan struct{}), killed: make(chan struct{})}
	var err error
	if s.cs, err = kubernetes.NewForConfig(cfg.Cluster); err != nil {
		return nil, err
	}
	if s.dyn, err = dynamic.NewForConfig(cfg.Cluster); err != nil {
		return nil, err
	}
	if s.c, err = client.New(cfg.Cluster, client.Options{Scheme: run.Scheme()}); err != nil {
		return nil, err
	}
	s.pods = newPodServers(cfg.Namespace, s.drain, s.logf)
	s.obs = newObserver(cfg.Namespace, s.logf)
	if cfg.Helm != nil {
		s.lastcall = newHelmLastcall(*cfg.Helm, s.cs, cfg.Kubeconfig, cfg.LogDir)
	} else if s.lastcall, err = newLastcallServer(cfg.LastcallBinary, cfg.Kubeconfig, cfg.LogDir); err != nil {
		return nil, err
	}
	s.gate = newGateRecorder(&url.URL{Scheme: "http", Host: s.lastcall.addr()}, s.logf)
	return s, nil
}

// logf records a line for the live view and passes it to Config.Log, but
// not after Close: Log may be a testing.T's, which must not be called once
// the test is over, and watches can still deliver an event while stopping.
func (s *Scenario) logf(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	line := fmt.Sprintf("%6.1fs  ", time.Since(s.report.Start).Seconds()) + fmt.Sprintf(format, args...)
	s.log = append(s.log, line)
	if s.cfg.Log != nil {
		s.cfg.Log(line)
	}
}

// drain is the app's answer to POST /drain. The failing pod refuses until
// the gate has been seen holding its failed run; the first healthy old pod
// to be drained holds the request until lastcall is killed, so the kill
// lands mid-run whatever the timing; the others take DrainTime.
func (s *Scenario) drain(ctx context.Context, pod string) int {
	s.mu.Lock()
	failing := s.report.FailingPod
	s.mu.Unlock()
	if pod == failing && !s.recovered.Load() {
		return http.StatusServiceUnavailable
	}
	if s.cfg.Mode == ModeBlueGreen && s.isOldPrimary(pod) && s.hungOnce.CompareAndSwap(false, true) {
		s.mu.Lock()
		s.report.HeldPod = pod
		s.mu.Unlock()
		close(s.inFlight)
		select {
		case <-s.killed:
		case <-ctx.Done():
		}
		return http.StatusOK
	}
	t := time.NewTimer(s.cfg.DrainTime)
	defer t.Stop()
	select {
	case <-t.C:
		return http.StatusOK
	case <-ctx.Done():
		return http.StatusServiceUnavailable
	}
}

func (s *Scenario) isOldPrimary(pod string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.report.OldPrimary {
		if p == pod {
			return true
		}
	}
	return false
}

// setStage names what the scenario waits for, for the live view.
func (s *Scenario) setStage(stage string) {
	s.mu.Lock()
	s.stage = stage
	s.mu.Unlock()
	s.logf("== %s", stage)
}

// Close stops Flagger, lastcall and the pod servers. The namespace and its
// objects are the caller's to delete.
func (s *Scenario) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	if s.flagger != nil {
		s.flagger.Stop(5 * time.Second)
	}
	s.lastcall.stop()
	if s.gateSrv != nil {
		_ = s.gateSrv.Close()
	}
	if s.bgCancel != nil {
		s.bgCancel()
	}
	s.pods.close()
}

// startAll starts the watches, the gate recorder, lastcall and Flagger.
func (s *Scenario) startAll(ctx context.Context) error {
	bg, cancel := context.WithCancel(context.Background())
	s.bgCancel = cancel
	if err := s.pods.run(bg, s.cs); err != nil {
		return err
	}
	if err := s.obs.run(bg, s.cs, s.dyn, s.cfg.Mode.gatewayAPI()); err != nil {
		return err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	s.gateURL = "http://" + l.Addr().String() + "/flagger/gate"
	s.gateSrv = &http.Server{Handler: s.gate, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.gateSrv.Serve(l) }()
	if err := s.lastcall.start(ctx); err != nil {
		return err
	}
	s.lastcallUp.Store(true)
	s.flagger, err = startFlagger(s.cfg.FlaggerBinary, s.cfg.Kubeconfig, s.cfg.Namespace, s.cfg.LogDir)
	return err
}

// waitFor polls cond every 100 ms until it holds, fails, or timeout passes.
func (s *Scenario) waitFor(ctx context.Context, timeout time.Duration, what string, cond func() (bool, error)) error {
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		if err := s.pods.err(); err != nil {
			return false, err
		}
		if s.flagger != nil {
			select {
			case <-s.flagger.Exited():
				return false, fmt.Errorf("flagger exited:\n%s", s.flagger.LogTail(20))
			default:
			}
		}
		if tail := s.lastcall.exited(); tail != "" && s.lastcallUp.Load() {
			return false, fmt.Errorf("lastcall server exited:\n%s", tail)
		}
		return cond()
	})
	if err != nil {
		return fmt.Errorf("waiting %s for %s: %w", timeout, what, err)
	}
	return nil
}

// gateRun returns the gate's run as last seen, or nil before it exists.
func (s *Scenario) gateRun() *v1alpha1.TerminationRun {
	s.obs.mu.Lock()
	defer s.obs.mu.Unlock()
	for _, name := range s.obs.runOrder {
		if r := s.obs.runs[name]; r.Spec.Trigger.Source == v1alpha1.TriggerGate {
			return r.DeepCopy()
		}
	}
	return nil
}
