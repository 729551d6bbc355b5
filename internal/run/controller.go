package run

import (
	"context"
	"fmt"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
)

// Options configures a Controller. The zero value means the defaults.
type Options struct {
	// Actions implement the step kinds; default: every built-in kind.
	Actions Actions
	// HTTPClient is used by http and waitDrained steps and by notify exit
	// handlers; default a client with no overall timeout (steps carry theirs).
	HTTPClient *http.Client
	Clock      clock.Clock
	Metrics    *Metrics
	// CallbackURL is given to Argo Workflows as a parameter (the server's
	// external address); optional.
	CallbackURL string
	// MaxConcurrentRuns bounds the runs this process executes at once;
	// the others stay Pending until a slot frees. Default
	// DefaultMaxConcurrentRuns.
	MaxConcurrentRuns int
	// URLPrefixes are the URL prefixes policies may make the server call
	// (a step's endpoint.url, a notify exit handler); none by default.
	URLPrefixes []string
	// LeadByCaller says the caller calls Lead for each term in which this
	// process is the leader (lastcall server, which keeps serving when it
	// loses the Lease). False: the controller is added to the manager and
	// executes runs whenever the manager runs its leader-elected work.
	LeadByCaller bool
}

// DefaultMaxConcurrentRuns is enough for every Deployment of a large
// rollout at once, and keeps a flood of runs from starving the API server.
const DefaultMaxConcurrentRuns = 20

// queuedRecheck is how often a run waiting for an execution slot looks again.
const queuedRecheck = time.Second

// Controller reconciles TerminationRuns: for each run that is not complete
// it keeps one execution going, which owns the run's status until the run
// ends. Runs resume from their status after a restart or a leader change.
//
// The reconciler runs on every replica, so that its cache and queue are warm,
// but acts only while Lead runs: a replica that is not the leader leaves runs
// alone, and a new term re-reads every run.
type Controller struct {
	client   client.Client
	reader   client.Reader
	recorder record.EventRecorder
	clock    clock.Clock
	actions  Actions
	http     *http.Client
	metrics  *Metrics
	argo     *argoBackend
	urls     *URLAllowList

	max int
	// kick re-queues every run when a leader term begins.
	kick    chan event.GenericEvent
	mu      sync.Mutex
	base    context.Context // set while Lead runs; executions outlive a Reconcile call
	running map[types.UID]bool
	waiting map[types.UID]bool // runs held back by max
	wg      sync.WaitGroup
}

// NewController builds the controller and registers it with mgr.
func NewController(mgr manager.Manager, opts Options) (*Controller, error) {
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{}
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	if opts.MaxConcurrentRuns <= 0 {
		opts.MaxConcurrentRuns = DefaultMaxConcurrentRuns
	}
	c := &Controller{
		client:   mgr.GetClient(),
		reader:   mgr.GetAPIReader(),
		recorder: mgr.GetEventRecorderFor("lastcall"),
		clock:    opts.Clock,
		http:     opts.HTTPClient,
		metrics:  opts.Metrics,
		running:  map[types.UID]bool{},
		waiting:  map[types.UID]bool{},
		max:      opts.MaxConcurrentRuns,
		kick:     make(chan event.GenericEvent),
	}
	watcher, err := client.NewWithWatch(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper()})
	if err != nil {
		return nil, fmt.Errorf("client for Argo Workflows: %w", err)
	}
	c.argo = &argoBackend{client: mgr.GetClient(), reader: mgr.GetAPIReader(), watch: watcher, callbackURL: opts.CallbackURL}
	if c.urls, err = NewURLAllowList(opts.URLPrefixes); err != nil {
		return nil, err
	}
	c.actions = opts.Actions
	if c.actions == nil {
		c.actions = DefaultActions(mgr, opts.HTTPClient, opts.Clock)
	}
	if !opts.LeadByCaller {
		if err := mgr.Add(c); err != nil {
			return nil, err
		}
	}
	// Start the pod and policy informers with the manager rather than on
	// first use, so the first step does not wait
	// for a list of every pod.
	for _, obj := range []client.Object{&corev1.Pod{}, &v1alpha1.TerminationPolicy{}} {
		if _, err := mgr.GetCache().GetInformer(context.Background(), obj, cache.BlockUntilSynced(false)); err != nil {
			return nil, fmt.Errorf("informer for %T: %w", obj, err)
		}
	}
	err = ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.TerminationRun{}).
		WatchesRawSource(source.Channel(c.kick, &handler.EnqueueRequestForObject{})).
		Named("terminationrun").
		WithOptions(controller.Options{
			// Tests run several managers in one process; metrics names
			// are per-process anyway.
			SkipNameValidation: ptr.To(true),
			// Reconcile acts only during a term (Lead).
			NeedLeaderElection: ptr.To(false),
		}).
		Complete(c)
	return c, err
}

// Start implements manager.Runnable (leader-elected): one term that lasts
// as long as the manager's leadership.
func (c *Controller) Start(ctx context.Context) error { return c.Lead(ctx) }

// Lead executes runs until ctx ends (the term of this process as leader),
// then stops every execution and returns once they have stopped. Runs stay
// as their status left them, and the next leader resumes them.
func (c *Controller) Lead(ctx context.Context) error {
	c.mu.Lock()
	c.base = ctx
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.base = nil
		clear(c.waiting)
		c.metrics.waiting.Set(0)
		c.mu.Unlock()
		c.wg.Wait()
	}()
	// Runs were left alone while another process led: look at each again.
	var runs v1alpha1.TerminationRunList
	if err := c.client.List(ctx, &runs); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("list runs at the start of a term: %w", err)
	}
	for i := range runs.Items {
		select {
		case c.kick <- event.GenericEvent{Object: &runs.Items[i]}:
		case <-ctx.Done():
			return nil
		}
	}
	<-ctx.Done()
	return nil
}

// Reconcile makes sure an execution runs for every run that is not complete.
func (c *Controller) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	c.mu.Lock()
	leading := c.base != nil
	c.mu.Unlock()
	if !leading {
		return ctrl.Result{}, nil // Lead re-queues every run when a term begins
	}
	var run v1alpha1.TerminationRun
	if err := c.client.Get(ctx, req.NamespacedName, &run); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if complete(&run) {
		c.unqueue(run.UID)
		return c.expire(ctx, &run)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	base := c.base
	if base == nil {
		return ctrl.Result{}, nil // the term ended meanwhile
	}
	if c.running[run.UID] {
		return ctrl.Result{}, nil
	}
	if len(c.running) >= c.max {
		if !c.waiting[run.UID] {
			c.waiting[run.UID] = true
			c.metrics.waiting.Set(float64(len(c.waiting)))
			log.FromContext(ctx).Info("run waits for an execution slot", "executing", len(c.running), "max", c.max)
		}
		return ctrl.Result{RequeueAfter: queuedRecheck}, nil
	}
	if c.waiting[run.UID] {
		delete(c.waiting, run.UID)
		c.metrics.waiting.Set(float64(len(c.waiting)))
	}
	c.running[run.UID] = true
	c.wg.Add(1)
	c.metrics.active.Inc()
	go func() {
		defer c.wg.Done()
		defer c.metrics.active.Dec()
		lctx := log.IntoContext(base, log.FromContext(ctx).WithValues("run", req.NamespacedName.String()))
		err := c.executeSafely(lctx, &run)
		c.mu.Lock()
		delete(c.running, run.UID)
		c.mu.Unlock()
		if err != nil && base.Err() == nil {
			log.FromContext(lctx).Error(err, "run execution stopped; it resumes on the next reconcile")
		}
	}()
	return ctrl.Result{}, nil
}

// unqueue forgets a run that no longer waits for a slot.
func (c *Controller) unqueue(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.waiting[uid] {
		delete(c.waiting, uid)
		c.metrics.waiting.Set(float64(len(c.waiting)))
	}
}

// expire deletes a complete run once its spec.ttlSecondsAfterFinished has
// passed since it completed, and otherwise comes back when it will have.
func (c *Controller) expire(ctx context.Context, run *v1alpha1.TerminationRun) (ctrl.Result, error) {
	ttl := run.Spec.TTLSecondsAfterFinished
	done := meta.FindStatusCondition(run.Status.Conditions, v1alpha1.ConditionComplete)
	if ttl == nil || done == nil {
		return ctrl.Result{}, nil
	}
	left := done.LastTransitionTime.Add(time.Duration(*ttl) * time.Second).Sub(c.now().Time)
	if left > 0 {
		return ctrl.Result{RequeueAfter: left}, nil
	}
	err := c.client.Delete(ctx, run, client.Preconditions{UID: &run.UID})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return ctrl.Result{}, fmt.Errorf("delete expired run: %w", err)
	}
	log.FromContext(ctx).Info("deleted a run past its ttlSecondsAfterFinished", "ttl", *ttl)
	return ctrl.Result{}, nil
}

// executeSafely is execute with a panic turned into the run's failure
// (reason Panic, a Warning Event): a bug outside any one step must not take
// the process down, nor leave the run to be retried into the same panic.
func (c *Controller) executeSafely(ctx context.Context, run *v1alpha1.TerminationRun) (err error) {
	defer func() {
		if r := recover(); r != nil {
			log.FromContext(ctx).Error(fmt.Errorf("%v", r), "run execution panicked", "stack", string(debug.Stack()))
			w := newStatusWriter(c.client, c.reader, run)
			wctx, stop := context.WithCancel(ctx)
			defer stop()
			go w.loop(wctx)
			err = c.fail(ctx, w, run, "Panic", fmt.Sprintf("lastcall panicked executing this run: %v (a lastcall bug: please report it with the server log)", r))
		}
	}()
	return c.execute(ctx, run)
}

// execute drives a run from its persisted status to the end, attempt after
// attempt.
func (c *Controller) execute(ctx context.Context, run *v1alpha1.TerminationRun) error {
	w := newStatusWriter(c.client, c.reader, run)
	wctx, stopWriter := context.WithCancel(ctx)
	defer stopWriter()
	go w.loop(wctx)

	var policy v1alpha1.TerminationPolicy
	key := client.ObjectKey{Namespace: run.Namespace, Name: run.Spec.PolicyRef.Name}
	err := c.client.Get(ctx, key, &policy)
	if apierrors.IsNotFound(err) {
		// The cache may not show yet a policy created just before the run
		// (the node agent, a script): the API server decides.
		err = c.reader.Get(ctx, key, &policy)
	}
	if apierrors.IsNotFound(err) {
		return c.fail(ctx, w, run, "PolicyNotFound", fmt.Sprintf("TerminationPolicy %s not found", run.Spec.PolicyRef.Name))
	}
	if err != nil {
		return err
	}
	if run.Status.Phase == "" || run.Status.Phase == v1alpha1.RunPending {
		if err := c.begin(ctx, w, run); err != nil {
			return err
		}
	}
	for {
		if err := c.waitForAttempt(ctx, w); err != nil {
			return err
		}
		var phase v1alpha1.RunPhase
		w.read(func(r *v1alpha1.TerminationRun) { phase = r.Status.Phase })
		if phase == v1alpha1.RunRunning {
			if err := c.runAttempt(ctx, w, &policy); err != nil {
				return err
			}
		}
		again, err := c.exitHandlers(ctx, w, &policy)
		if err != nil || !again {
			return err
		}
	}
}

// begin initialises the status of a new run. The write is queued, not
// waited for, so the first step starts at once; a crash before it lands
// leaves the run Pending, and it begins again.
func (c *Controller) begin(ctx context.Context, w *statusWriter, run *v1alpha1.TerminationRun) error {
	w.update(func(st *v1alpha1.TerminationRunStatus) {
		now := c.now()
		st.Phase, st.Attempt, st.StartTime, st.ObservedGeneration = v1alpha1.RunRunning, 1, &now, run.Generation
		st.Pods = make([]v1alpha1.PodStatus, len(run.Spec.Pods))
		for i, p := range run.Spec.Pods {
			st.Pods[i] = v1alpha1.PodStatus{Name: p.Name, UID: p.UID, Phase: v1alpha1.PodPending}
		}
		countPods(st)
		st.Reason, st.Message = "Started", fmt.Sprintf("policy %s on %d pods", run.Spec.PolicyRef.Name, len(run.Spec.Pods))
	})
	c.metrics.started.Inc()
	c.recorder.Eventf(run, corev1.EventTypeNormal, "Started", "running policy %s on %d pods (trigger %s)", run.Spec.PolicyRef.Name, len(run.Spec.Pods), run.Spec.Trigger.Source)
	return nil
}

// waitForAttempt sleeps through a retry's backoff, then starts the attempt.
func (c *Controller) waitForAttempt(ctx context.Context, w *statusWriter) error {
	var next *time.Time
	w.read(func(r *v1alpha1.TerminationRun) {
		if r.Status.NextAttemptTime != nil {
			t := r.Status.NextAttemptTime.Time
			next = &t
		}
	})
	if next == nil {
		return nil
	}
	if d := next.Sub(c.clock.Now()); d > 0 {
		select {
		case <-c.clock.After(d):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return w.sync(ctx, func(st *v1alpha1.TerminationRunStatus) {
		now := c.now()
		st.NextAttemptTime, st.StartTime, st.Phase = nil, &now, v1alpha1.RunRunning
		st.Reason, st.Message = "Retrying", fmt.Sprintf("attempt %d", st.Attempt)
	})
}

// runAttempt runs the current attempt to its end within the policy deadline
// and records the outcome.
func (c *Controller) runAttempt(ctx context.Context, w *statusWriter, policy *v1alpha1.TerminationPolicy) error {
	deadline := defaultDeadline
	if policy.Spec.Deadline != nil && policy.Spec.Deadline.Duration > 0 {
		deadline = policy.Spec.Deadline.Duration
	}
	var started time.Time
	w.read(func(r *v1alpha1.TerminationRun) { started = r.Status.StartTime.Time })
	actx, cancel := context.WithDeadline(ctx, started.Add(deadline))
	defer cancel()

	if policy.Spec.Runner.Type == v1alpha1.RunnerArgo {
		if err := c.argo.run(actx, w, policy); err != nil && ctx.Err() != nil {
			return err
		}
	} else {
		e := &execution{c: c, w: w, policy: policy}
		e.runPods(actx)
	}
	if ctx.Err() != nil {
		return ctx.Err() // shutdown or lost leadership: the next leader resumes
	}
	return c.finishAttempt(ctx, w, actx.Err() != nil)
}

// finishAttempt sets the attempt's phase from its pods.
func (c *Controller) finishAttempt(ctx context.Context, w *statusWriter, deadlineHit bool) error {
	var run *v1alpha1.TerminationRun
	// Queued: the exit handlers' write that follows persists it with them.
	w.update(func(st *v1alpha1.TerminationRunStatus) {
		now := c.now()
		if deadlineHit {
			for i := range st.Pods {
				if !st.Pods[i].Phase.Done() {
					st.Pods[i].Phase, st.Pods[i].Message = v1alpha1.PodFailed, "run deadline exceeded before this pod was done"
				}
			}
		}
		countPods(st)
		st.CompletionTime = &now
		st.Phase, st.Reason, st.Message = v1alpha1.RunSucceeded, "Succeeded", fmt.Sprintf("%d/%d pods done", st.PodsDone, st.PodsTotal)
		if st.PodsFailed > 0 {
			st.Phase, st.Reason, st.Message = v1alpha1.RunFailed, "PodsFailed", failureMessage(st)
			if deadlineHit {
				st.Reason = "DeadlineExceeded"
			}
		}
	})
	w.read(func(r *v1alpha1.TerminationRun) { run = r.DeepCopy() })
	c.metrics.finished.WithLabelValues(string(run.Status.Phase)).Inc()
	c.metrics.duration.Observe(run.Status.CompletionTime.Sub(run.Status.StartTime.Time).Seconds())
	typ := corev1.EventTypeNormal
	if run.Status.Phase == v1alpha1.RunFailed {
		typ = corev1.EventTypeWarning
	}
	c.recorder.Event(run, typ, run.Status.Reason, run.Status.Message)
	return nil
}

// failureMessage names the first failed pod, its step and cause.
func failureMessage(st *v1alpha1.TerminationRunStatus) string {
	for _, p := range st.Pods {
		if p.Phase == v1alpha1.PodFailed {
			msg := fmt.Sprintf("pod %s: %s", p.Name, p.Message)
			if st.PodsFailed > 1 {
				msg += fmt.Sprintf(" (and %d more pods failed)", st.PodsFailed-1)
			}
			return trim(msg)
		}
	}
	return ""
}

// fail ends a run that cannot start.
func (c *Controller) fail(ctx context.Context, w *statusWriter, run *v1alpha1.TerminationRun, reason, msg string) error {
	c.recorder.Event(run, corev1.EventTypeWarning, reason, msg)
	return w.sync(ctx, func(st *v1alpha1.TerminationRunStatus) {
		now := c.now()
		if st.Attempt == 0 {
			st.Attempt = 1
		}
		st.Phase, st.Reason, st.Message, st.CompletionTime = v1alpha1.RunFailed, reason, msg, &now
		setComplete(st, now, reason, msg)
	})
}

func (c *Controller) now() metav1.Time { return metav1.NewTime(c.clock.Now()) }
