package watch

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
	"github.com/lastcall-dev/lastcall/internal/run"
)

// ReasonRunStarted is the Event put on a pod whose failed preStop hook made
// the watcher start a TerminationRun for it.
const ReasonRunStarted = "TerminationRunStarted"

// failedHook is what the watcher needs of a FailedPreStopHook Event to
// start runs: a comparable value, so the queue holds each hook once.
type failedHook struct {
	namespace, pod  string
	uid             types.UID
	container, node string
}

func failedHookOf(ev *corev1.Event) failedHook {
	return failedHook{namespace: ev.InvolvedObject.Namespace, pod: ev.InvolvedObject.Name, uid: ev.InvolvedObject.UID,
		container: ev.InvolvedObject.FieldPath, node: ev.Source.Host}
}

// maxStartAttempts bounds the retries of one failed hook's runs: the pod
// is gone within its grace period anyway.
const maxStartAttempts = 5

// startNext starts the runs of one queued hook; false once the queue is
// shut down.
func (w *Watcher) startNext(ctx context.Context) bool {
	h, shutdown := w.failed.Get()
	if shutdown {
		return false
	}
	defer w.failed.Done(h)
	err := w.startRuns(ctx, h)
	switch {
	case err == nil || ctx.Err() != nil:
		w.failed.Forget(h)
	case w.failed.NumRequeues(h) < maxStartAttempts:
		w.log.Warn("failed preStop: cannot start its runs yet; retrying", "pod", h.namespace+"/"+h.pod, "err", err)
		w.failed.AddRateLimited(h)
	default:
		w.log.Error("failed preStop: gave up starting its runs", "pod", h.namespace+"/"+h.pod, "attempts", maxStartAttempts, "err", err)
		w.failed.Forget(h)
	}
	return true
}

// startRuns starts, for a terminating pod whose preStop hook failed, a run
// of each policy that selects it and asks for it (runOnFailedPreStop). The
// run's name comes from the pod's UID and the policy, so a repeated or
// re-read Event (another count, a new leader) never starts a second one.
// An error is worth retrying.
func (w *Watcher) startRuns(ctx context.Context, h failedHook) error {
	ns, name := h.namespace, h.pod
	var pod corev1.Pod
	if err := w.runs.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &pod); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("read the pod: %w", err)
	}
	if pod.DeletionTimestamp == nil || (h.uid != "" && h.uid != pod.UID) {
		return nil // not terminating, or a pod of the same name that came after
	}
	var policies v1alpha1.TerminationPolicyList
	if err := w.runs.List(ctx, &policies, client.InNamespace(ns)); err != nil {
		return fmt.Errorf("list TerminationPolicies: %w", err)
	}
	var failed error
	for i := range policies.Items {
		pol := &policies.Items[i]
		if !pol.Spec.RunOnFailedPreStop {
			continue
		}
		sel, err := run.PolicySelector(ctx, w.runs, pol)
		if err != nil || !sel.Matches(labels.Set(pod.Labels)) {
			continue
		}
		r := run.NewRun(pol, run.DeterministicName(pol.Name+"-prestop", string(pod.UID), pol.Name), []corev1.Pod{pod},
			v1alpha1.Trigger{Source: v1alpha1.TriggerWatcher, Node: pod.Spec.NodeName,
				Reason: fmt.Sprintf("the preStop hook of pod %s failed (%s on node %s)", pod.Name, h.container, h.node)})
		err = w.runs.Create(ctx, r)
		switch {
		case apierrors.IsAlreadyExists(err):
			continue
		case err != nil:
			failed = fmt.Errorf("start a run of policy %s: %w", pol.Name, err)
			continue
		}
		w.m.runs.WithLabelValues(ns).Inc()
		w.recorder.Eventf(&pod, corev1.EventTypeNormal, ReasonRunStarted,
			"preStop hook failed: started TerminationRun %s of policy %s in its place", r.Name, pol.Name)
		w.log.Info("failed preStop: termination run started", "pod", ns+"/"+name, "policy", pol.Name, "run", r.Name)
	}
	return failed
}
