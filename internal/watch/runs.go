package watch

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
	"github.com/lastcall-dev/lastcall/internal/run"
)

// ReasonRunStarted is the Event put on a pod whose failed preStop hook made
// the watcher start a TerminationRun for it.
const ReasonRunStarted = "TerminationRunStarted"

// startRuns starts, for a terminating pod whose preStop hook failed, a run
// of each policy that selects it and asks for it (runOnFailedPreStop). The
// run's name comes from the pod's UID and the policy, so a repeated or
// re-read Event (another count, a new leader) never starts a second one.
func (w *Watcher) startRuns(ctx context.Context, ev *corev1.Event) {
	if w.runs == nil {
		return
	}
	ns, name := ev.InvolvedObject.Namespace, ev.InvolvedObject.Name
	var pod corev1.Pod
	if err := w.runs.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &pod); err != nil {
		if !apierrors.IsNotFound(err) {
			w.log.Error("failed preStop: cannot read the pod", "pod", ns+"/"+name, "err", err)
		}
		return
	}
	if pod.DeletionTimestamp == nil || (ev.InvolvedObject.UID != "" && ev.InvolvedObject.UID != pod.UID) {
		return // not terminating, or a pod of the same name that came after
	}
	var policies v1alpha1.TerminationPolicyList
	if err := w.runs.List(ctx, &policies, client.InNamespace(ns)); err != nil {
		w.log.Error("failed preStop: cannot list TerminationPolicies", "namespace", ns, "err", err)
		return
	}
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
				Reason: fmt.Sprintf("the preStop hook of pod %s failed (%s on node %s)", pod.Name, ev.InvolvedObject.FieldPath, ev.Source.Host)})
		err = w.runs.Create(ctx, r)
		switch {
		case apierrors.IsAlreadyExists(err):
			continue
		case err != nil:
			w.log.Error("failed preStop: cannot start a termination run", "pod", ns+"/"+name, "policy", pol.Name, "err", err)
			continue
		}
		w.m.runs.WithLabelValues(ns).Inc()
		w.recorder.Eventf(&pod, corev1.EventTypeNormal, ReasonRunStarted,
			"preStop hook failed: started TerminationRun %s of policy %s in its place", r.Name, pol.Name)
		w.log.Info("failed preStop: termination run started", "pod", ns+"/"+name, "policy", pol.Name, "run", r.Name)
	}
}
