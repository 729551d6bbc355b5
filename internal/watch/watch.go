package watch

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Event reasons: the kubelet's, which the watcher counts, and its own.
const (
	ReasonFailedPreStopHook   = "FailedPreStopHook"
	ReasonFailedPostStartHook = "FailedPostStartHook"
	ReasonKilledAtDeadline    = "KilledAtDeadline"
)

// sigkillExitCode is what a runtime reports for a container ended by
// SIGKILL (128 + 9).
const sigkillExitCode = 137

// deadlineSlack covers deletionTimestamp's whole seconds and the kubelet's
// own timer: a container killed within it of the deadline was killed at it.
const deadlineSlack = 2 * time.Second

// Watcher follows Warning Events about pods and pods being deleted.
type Watcher struct {
	client kubernetes.Interface
	runs   client.Client // reads pods and policies, creates runs; nil: none
	// failed holds the failed preStop hooks whose runs are to be started,
	// off the informers' goroutines (it reads and writes the API); its
	// workers belong to Start.
	failed   workqueue.TypedRateLimitingInterface[failedHook]
	recorder record.EventRecorder
	log      *slog.Logger
	m        metrics

	mu sync.Mutex
	// counted is, per kubelet Event, the count already added to the
	// metric: the kubelet updates one Event's count rather than making new
	// ones.
	counted map[types.UID]int32
	// killed remembers the containers already reported, per pod.
	killed map[types.UID]map[string]bool

	// What the informers replay when the watcher starts (a new leader)
	// happened before it: it is remembered, not counted or reported again,
	// so that a leader change shows no burst of old failures.
	eventsLive, podsLive liveFlag
}

// liveFlag says whether a handler is past the informer's initial replay.
type liveFlag struct {
	reg atomic.Pointer[cache.ResourceEventHandlerRegistration]
}

func (f *liveFlag) set(r cache.ResourceEventHandlerRegistration) { f.reg.Store(&r) }

func (f *liveFlag) live() bool {
	r := f.reg.Load()
	return r != nil && (*r).HasSynced()
}

// New makes a Watcher; recorder emits its Events, reg holds its metrics.
// With runs set, a failed preStop hook starts the runs of the policies that
// ask for it (runOnFailedPreStop); runs reads pods and policies (a cached
// client is right) and creates TerminationRuns.
func New(kube kubernetes.Interface, runs client.Client, recorder record.EventRecorder, reg prometheus.Registerer, log *slog.Logger) (*Watcher, error) {
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &Watcher{client: kube, runs: runs, recorder: recorder, log: log, m: m,
		counted: map[types.UID]int32{}, killed: map[types.UID]map[string]bool{}}, nil
}

// Live says whether the watcher is past the initial replay of Events and
// pods: from then on, what happens is counted and reported.
func (w *Watcher) Live() bool { return w.eventsLive.live() && w.podsLive.live() }

// Informer is the part of a pod informer the watcher uses: the server
// passes the one its controller cache already has, rather than holding
// every pod twice.
type Informer interface {
	AddEventHandler(handler cache.ResourceEventHandler) (cache.ResourceEventHandlerRegistration, error)
	RemoveEventHandler(handle cache.ResourceEventHandlerRegistration) error
}

// runWorkers start the runs of failed preStop hooks; two keep one slow API
// call from holding up the next pod.
const runWorkers = 2

// Start watches until ctx ends. Only Warning Events about pods are listed
// (a field selector), in an informer of the watcher's own; pods come from
// the given informer, which the caller runs.
func (w *Watcher) Start(ctx context.Context, pods Informer) error {
	// Start may run again (a new leader term): each term has its own queue
	// and handlers, and ends with them.
	w.failed = workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[failedHook](),
		workqueue.TypedRateLimitingQueueConfig[failedHook]{Name: "lastcall-watch-failed-prestop"})
	var workers sync.WaitGroup
	defer func() {
		w.failed.ShutDown()
		workers.Wait()
	}()
	events := informers.NewSharedInformerFactoryWithOptions(w.client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = "type=Warning,involvedObject.kind=Pod"
	}))
	defer events.Shutdown()
	reg, err := events.Core().V1().Events().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { w.onEvent(obj) },
		UpdateFunc: func(_, obj any) { w.onEvent(obj) },
		DeleteFunc: func(obj any) { w.forgetEvent(obj) },
	})
	if err != nil {
		return err
	}
	w.eventsLive.set(reg)
	reg, err = pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { w.onPod(obj) },
		UpdateFunc: func(_, obj any) { w.onPod(obj) },
		DeleteFunc: func(obj any) { w.forgetPod(obj) },
	})
	if err != nil {
		return err
	}
	defer func() { _ = pods.RemoveEventHandler(reg) }()
	w.podsLive.set(reg)
	for range runWorkers {
		workers.Go(func() {
			for w.startNext(ctx) {
			}
		})
	}
	events.Start(ctx.Done())
	for typ, ok := range events.WaitForCacheSync(ctx.Done()) {
		if !ok && ctx.Err() == nil {
			return fmt.Errorf("watch: %v cache did not sync", typ)
		}
	}
	<-ctx.Done()
	return nil
}

func (w *Watcher) onEvent(obj any) {
	ev, ok := obj.(*corev1.Event)
	if !ok {
		return
	}
	var hook string
	switch ev.Reason {
	case ReasonFailedPreStopHook:
		hook = "preStop"
	case ReasonFailedPostStartHook:
		hook = "postStart"
	default:
		return
	}
	count := max(ev.Count, 1)
	w.mu.Lock()
	added := count - w.counted[ev.UID]
	w.counted[ev.UID] = count
	w.mu.Unlock()
	if added <= 0 {
		return
	}
	if hook == "preStop" && w.runs != nil {
		// Runs are idempotent, so a replayed Event may start one a
		// previous leader did not get to.
		w.failed.Add(failedHookOf(ev))
	}
	if !w.eventsLive.live() {
		return
	}
	w.m.hookFailures.WithLabelValues(ev.InvolvedObject.Namespace, hook).Add(float64(added))
	w.log.Warn("hook failed", "pod", ev.InvolvedObject.Namespace+"/"+ev.InvolvedObject.Name,
		"container", ev.InvolvedObject.FieldPath, "hook", hook, "count", count, "node", ev.Source.Host, "message", ev.Message)
}

func (w *Watcher) forgetEvent(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if ev, ok := obj.(*corev1.Event); ok {
		w.mu.Lock()
		delete(w.counted, ev.UID)
		w.mu.Unlock()
	}
}

// onPod reports each container of a terminating pod that ended by SIGKILL
// at the pod's deadline (not by the OOM killer).
func (w *Watcher) onPod(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok || pod.DeletionTimestamp == nil {
		return
	}
	deadline := pod.DeletionTimestamp.Time
	for _, cs := range append(pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses...) {
		t := cs.State.Terminated
		if t == nil || t.ExitCode != sigkillExitCode || t.Reason == "OOMKilled" || t.FinishedAt.Time.Before(deadline.Add(-deadlineSlack)) {
			continue
		}
		w.mu.Lock()
		seen := w.killed[pod.UID][cs.Name]
		if !seen {
			if w.killed[pod.UID] == nil {
				w.killed[pod.UID] = map[string]bool{}
			}
			w.killed[pod.UID][cs.Name] = true
		}
		w.mu.Unlock()
		if seen || !w.podsLive.live() {
			continue
		}
		grace := "its grace period"
		if g := pod.DeletionGracePeriodSeconds; g != nil {
			grace = fmt.Sprintf("its %d s grace period", *g)
		}
		w.m.killed.WithLabelValues(pod.Namespace).Inc()
		w.recorder.Eventf(pod, corev1.EventTypeWarning, ReasonKilledAtDeadline,
			"Container %s was SIGKILLed at the end of %s: its preStop hook and shutdown did not finish in time (see lastcall lint)", cs.Name, grace)
		w.log.Warn("container killed at its termination deadline", "pod", pod.Namespace+"/"+pod.Name,
			"container", cs.Name, "deadline", deadline, "finished", t.FinishedAt.Time, "node", pod.Spec.NodeName)
	}
}

func (w *Watcher) forgetPod(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if pod, ok := obj.(*corev1.Pod); ok {
		w.mu.Lock()
		delete(w.killed, pod.UID)
		w.mu.Unlock()
	}
}
