package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"

	"github.com/lastcall-dev/lastcall/internal/node/logind"
)

// Logind is the OS side of a node shutdown: logind's delay lock and its
// signals. *logind.Client implements it (its Run must run alongside the
// Agent's); tests use a fake.
type Logind interface {
	// EnsureInhibitDelay makes logind wait at least want if it can and
	// reports what it grants.
	EnsureInhibitDelay(ctx context.Context, want time.Duration) (logind.Delay, error)
	// Events delivers shutdowns, cancellations and logind restarts.
	Events() <-chan logind.Event
}

// Options holds the Agent's optional dependencies. The zero value means the
// defaults documented on each field.
type Options struct {
	// Runs starts termination runs before evictions. Nil: no policies are
	// configured (the agent says so at start).
	Runs RunStarter
	// Recorder gets Events for the node and its pods. Nil: no Events.
	Recorder record.EventRecorder
	// Metrics are updated as shutdowns go. Nil: unregistered metrics.
	Metrics *Metrics
	// Clock times budgets, deadlines and backoff. Nil: the real clock.
	Clock clock.Clock
	// Logger gets one line per pod and per step. Nil: slog.Default().
	Logger *slog.Logger
}

// Agent runs a node's graceful shutdown when logind announces it.
type Agent struct {
	cfg     Config
	client  kubernetes.Interface
	logind  Logind
	runs    RunStarter
	rec     record.EventRecorder
	metrics *Metrics
	clock   clock.Clock
	log     *slog.Logger
	nodes   nodes
	evictor *evictor

	configured []Group // the budgets as configured

	// Set by Run before any shutdown starts, and again after a logind
	// restart; a shutdown uses the groups of its start.
	groups []Group // the configured budgets, scaled to what logind grants
	delay  logind.Delay
	watch  *podWatch
}

// NewAgent checks cfg (zero fields take their defaults) and returns an
// Agent for cfg.NodeName.
func NewAgent(cfg Config, client kubernetes.Interface, lg Logind, opts Options) (*Agent, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("node agent config: %w", err)
	}
	if opts.Recorder == nil {
		opts.Recorder = &record.FakeRecorder{} // drops events
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	a := &Agent{
		cfg: cfg, client: client, logind: lg, runs: opts.Runs, rec: opts.Recorder,
		metrics: opts.Metrics, clock: opts.Clock, log: opts.Logger.With("node", cfg.NodeName),
		nodes:      nodes{client: client, name: cfg.NodeName},
		configured: cfg.Groups(),
	}
	a.evictor = &evictor{
		client: client, clock: opts.Clock, mode: cfg.PDB, margin: cfg.PDBMargin.Duration,
		sem: make(chan struct{}, cfg.Parallelism), backoff: evictBackoff,
	}
	return a, nil
}

// Run prepares the node (uncordons it if lastcall cordoned it before a
// reboot, watches its pods, asks logind for the delay) and then handles
// logind's events until ctx ends. A shutdown in progress when ctx ends is
// stopped and its lock released.
func (a *Agent) Run(ctx context.Context) error {
	if err := a.uncordonAfterReboot(ctx); err != nil {
		return err
	}
	a.checkRuns(ctx)
	watch, err := newPodWatch(a.client, a.cfg.NodeName)
	if err != nil {
		return err
	}
	pdbs, err := newPDBWatch(a.client)
	if err != nil {
		return err
	}
	wctx, stopWatch := context.WithCancel(ctx)
	defer func() { stopWatch(); watch.stop(); pdbs.factory.Shutdown() }()
	// PDBs only speed up retries: the agent does not wait for their cache.
	pdbs.factory.Start(wctx.Done())
	if err := watch.start(wctx); err != nil {
		return err
	}
	a.watch, a.evictor.pdbs = watch, pdbs
	if err := a.ensureDelay(ctx); err != nil {
		return err
	}

	var cur *inflight // the shutdown in progress, if any
	stop := func(cause error) {
		if cur != nil {
			cur.stop(cause)
			cur = nil
		}
	}
	defer stop(context.Canceled)
	for {
		var done <-chan struct{}
		if cur != nil {
			done = cur.done
		}
		select {
		case <-ctx.Done():
			return nil
		case <-done:
			cur = nil
		case ev := <-a.logind.Events():
			switch ev.Kind {
			case logind.ShutdownStarted:
				if cur != nil {
					a.log.Info("node agent: shutdown already in progress")
					continue
				}
				cur = a.startShutdown(ctx, a.groups, a.delay.Granted, ev.Release)
			case logind.ShutdownCancelled:
				stop(errCancelled)
				a.undoCancelled(ctx)
			case logind.LogindRestarted:
				// The new logind read its configuration afresh: a drop-in
				// may have changed meanwhile, so ask again and re-plan.
				a.log.Info("node agent: logind restarted; delay lock re-taken")
				if err := a.ensureDelay(ctx); err != nil {
					a.log.Error("node agent: cannot read logind's inhibit delay after its restart; keeping the previous budgets", "err", err)
				}
			}
		}
	}
}

// inflight is a shutdown running in its own goroutine.
type inflight struct {
	cancel context.CancelCauseFunc
	done   chan struct{}
}

func (a *Agent) startShutdown(ctx context.Context, groups []Group, granted time.Duration, release func() error) *inflight {
	ctx, cancel := context.WithCancelCause(ctx)
	f := &inflight{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(f.done)
		a.shutdown(ctx, groups, granted, release)
	}()
	return f
}

// stop cancels the shutdown with cause and waits for it to end.
func (f *inflight) stop(cause error) {
	f.cancel(cause)
	<-f.done
}

// ensureDelay asks logind for the total budget and scales the configured
// groups to what it grants.
func (a *Agent) ensureDelay(ctx context.Context) error {
	want := Total(a.configured)
	d, err := a.logind.EnsureInhibitDelay(ctx, want)
	if err != nil {
		return fmt.Errorf("ensure logind inhibit delay: %w", err)
	}
	a.delay = d
	a.groups = ScaleGroups(a.configured, d.Granted)
	a.metrics.inhibitDelay.Set(d.Granted.Seconds())
	a.metrics.budget.Set(Total(a.groups).Seconds())
	ref := nodeRef(a.cfg.NodeName)
	if d.Short() {
		a.log.Warn("node agent: logind grants less than the configured budget; group budgets scaled down",
			"requested", want, "granted", d.Granted, "dropIn", d.DropIn)
		a.rec.Eventf(ref, corev1.EventTypeWarning, ReasonInhibitDelay,
			"logind grants %s of the %s budget (InhibitDelayMaxSec; another drop-in may override %s): group budgets scaled to fit", d.Granted, want, d.DropIn)
		return nil
	}
	a.log.Info("node agent: logind inhibit delay", "requested", want, "before", d.Before, "granted", d.Granted, "dropIn", d.DropIn)
	a.rec.Eventf(ref, corev1.EventTypeNormal, ReasonInhibitDelay, "logind waits up to %s for the shutdown; budget %s", d.Granted, want)
	return nil
}

// undoCancelled uncordons the node after a cancelled shutdown, where
// lastcall cordoned it.
func (a *Agent) undoCancelled(ctx context.Context) {
	done, err := a.nodes.uncordon(ctx, always)
	switch {
	case err != nil:
		a.log.Error("node agent: shutdown cancelled but uncordon failed", "err", err)
	case done:
		a.log.Info("node agent: shutdown cancelled; node uncordoned")
		a.rec.Event(nodeRef(a.cfg.NodeName), corev1.EventTypeNormal, ReasonShutdownCancelled, "Shutdown cancelled: lastcall's cordon and taint removed")
	default:
		a.rec.Event(nodeRef(a.cfg.NodeName), corev1.EventTypeNormal, ReasonShutdownCancelled, "Shutdown cancelled")
	}
}

// uncordonAfterReboot undoes a cordon lastcall made before the node rebooted.
func (a *Agent) uncordonAfterReboot(ctx context.Context) error {
	done, err := a.nodes.uncordon(ctx, rebooted)
	if err != nil {
		return err
	}
	if done {
		a.log.Info("node agent: node rebooted since lastcall cordoned it; uncordoned")
		a.rec.Event(nodeRef(a.cfg.NodeName), corev1.EventTypeNormal, ReasonUncordoned, "Node rebooted since lastcall cordoned it for shutdown: uncordoned")
	}
	return nil
}

// shutdownResult classifies a finished shutdown for the metrics.
type shutdownResult string

const (
	resultDone        shutdownResult = "done"
	resultCancelled   shutdownResult = "cancelled"
	resultBudgetSpent shutdownResult = "budget_spent"
	resultFailed      shutdownResult = "failed"
)

func classify(ctx context.Context, now, deadline time.Time) shutdownResult {
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errBudgetSpent), cause == nil && !now.Before(deadline):
		return resultBudgetSpent
	case cause == nil:
		return resultDone
	default:
		return resultCancelled
	}
}
