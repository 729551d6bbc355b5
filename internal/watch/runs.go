package watch

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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
	policies, err := run.CoveringPolicies(ctx, w.runs, ns, run.Covered{Kind: "Pod", Name: pod.Name, Labels: pod.Labels},
		func(p *v1alpha1.TerminationPolicy) bool { return p.Spec.RunOnFailedPreStop })
	if err != nil {
		return err
	}
	starter := run.Starter{Client: w.runs}
	var failed error
	for _, pol := range policies {
		r, created, err := starter.Start(ctx, run.Request{Policy: pol, Pods: []corev1.Pod{pod},
			NamePrefix: pol.Name + "-prestop", Key: []string{string(pod.UID), pol.Name},
			Trigger: v1alpha1.Trigger{Source: v1alpha1.TriggerWatcher, Node: pod.Spec.NodeName,
				Reason: fmt.Sprintf("the preStop hook of pod %s failed (%s on node %s)", pod.Name, h.container, h.node)}})
		if err != nil {
			failed = err
			continue
		}
		if !created {
			continue
		}
		w.m.runs.WithLabelValues(ns).Inc()
		w.recorder.Eventf(&pod, corev1.EventTypeNormal, ReasonRunStarted,
			"preStop hook failed: started TerminationRun %s of policy %s in its place", r.Name, pol.Name)
		w.log.Info("failed preStop: termination run started", "pod", ns+"/"+name, "policy", pol.Name, "run", r.Name)
	}
	return failed
}
