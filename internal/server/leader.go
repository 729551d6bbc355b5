package server

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// LeaderLeaseName is the Lease the replica that executes runs holds.
const LeaderLeaseName = "lastcall-controller"

// termWork is leader-only work: it runs until its term's context ends and
// then returns once it has stopped.
type termWork struct {
	name string
	run  func(ctx context.Context) error
}

// leaderTerms campaigns for the controller Lease for as long as the server
// runs, and runs the leader-only work (executing runs, the watcher, pruning)
// for each term it wins. Losing the Lease (an API server outage longer than
// the renew deadline) ends the term, not the process: the gate and the state
// API keep serving, the work stops, and the replica campaigns again.
// controller-runtime's own election would exit the process instead.
//
// Without election (one replica, or tests) the term is the process's life.
type leaderTerms struct {
	elect   bool
	kube    kubernetes.Interface
	ns      string
	cfg     Config
	work    []termWork
	log     *slog.Logger
	leading prometheus.Gauge
	lost    prometheus.Counter
}

func newLeaderTerms(cfg Config, kube kubernetes.Interface, reg prometheus.Registerer, log *slog.Logger) (*leaderTerms, error) {
	t := &leaderTerms{elect: cfg.LeaderElect, kube: kube, ns: cfg.LeaderElectionNamespace, cfg: cfg, log: log,
		leading: prometheus.NewGauge(prometheus.GaugeOpts{Name: "lastcall_leader",
			Help: "1 while this replica holds the controller Lease and executes runs."}),
		lost: prometheus.NewCounter(prometheus.CounterOpts{Name: "lastcall_leader_terms_lost_total",
			Help: "Terms that ended because the controller Lease could not be renewed (the replica kept serving and campaigned again)."}),
	}
	for _, c := range []prometheus.Collector{t.leading, t.lost} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func (t *leaderTerms) add(name string, run func(ctx context.Context) error) {
	t.work = append(t.work, termWork{name: name, run: run})
}

// NeedLeaderElection is false: leaderTerms is the election.
func (t *leaderTerms) NeedLeaderElection() bool { return false }

// Start implements manager.Runnable.
func (t *leaderTerms) Start(ctx context.Context) error {
	if !t.elect {
		t.term(ctx)
		return nil
	}
	id := electionID()
	for ctx.Err() == nil {
		if err := t.campaign(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// campaign waits for the Lease, runs one term, and returns when it ends.
func (t *leaderTerms) campaign(ctx context.Context, id string) error {
	var termDone sync.WaitGroup
	elector, err := leaseElector(t.kube, t.ns, LeaderLeaseName, id, t.cfg.LeaseDuration, t.cfg.RenewDeadline, t.cfg.RetryPeriod,
		leaderelection.LeaderCallbacks{
			OnStartedLeading: func(tctx context.Context) {
				termDone.Go(func() { t.term(tctx) })
			},
			// Called once the term's context is cancelled: the next
			// campaign starts only when this term's work has stopped, so
			// two terms never overlap in one process.
			OnStoppedLeading: func() {
				termDone.Wait()
				if ctx.Err() == nil {
					t.lost.Inc()
					t.log.Error("lost the controller Lease (API server unreachable?): stopped executing runs; the gate and the state API keep serving; campaigning again",
						"lease", t.ns+"/"+LeaderLeaseName)
				}
			},
		})
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	elector.Run(ctx)
	return nil
}

// term runs every piece of leader work until ctx ends and they have all
// returned. A piece that fails is logged; the others go on (the term is
// not worth ending for the watcher, say).
func (t *leaderTerms) term(ctx context.Context) {
	t.leading.Set(1)
	defer t.leading.Set(0)
	t.log.Info("leading: executing runs", "lease", t.ns+"/"+LeaderLeaseName)
	var wg sync.WaitGroup
	for _, w := range t.work {
		wg.Go(func() {
			if err := w.run(ctx); err != nil && ctx.Err() == nil {
				t.log.Error("leader work stopped", "work", w.name, "err", err)
			}
		})
	}
	wg.Wait()
}

// electionID names this process in a Lease: its host and a fresh UID.
func electionID() string {
	host, _ := os.Hostname()
	return host + "_" + string(uuid.NewUUID())
}

// leaseElector is client-go's elector on Lease ns/name for id, which
// releases the Lease when its context ends.
func leaseElector(cs kubernetes.Interface, ns, name, id string, lease, renew, retry time.Duration, cb leaderelection.LeaderCallbacks) (*leaderelection.LeaderElector, error) {
	return leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: ns, Name: name},
			Client:     cs.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: id},
		},
		LeaseDuration:   lease,
		RenewDeadline:   renew,
		RetryPeriod:     retry,
		ReleaseOnCancel: true,
		Name:            name,
		Callbacks:       cb,
	})
}
