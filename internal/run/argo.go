package run

import (
	"context"

	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
)

// WorkflowGVK is Argo's Workflow kind.
var WorkflowGVK = schema.GroupVersionKind{Group: "argoproj.io", Version: "v1alpha1", Kind: "Workflow"}

// argoBackend runs an attempt as an Argo Workflow created from the policy's
// WorkflowTemplate and mirrors the Workflow's status.phase into the run.
type argoBackend struct {
	client client.Client
	// reader reads ServiceAccounts from the API server (not cached: the
	// server has no informer for them, and reads them once per attempt).
	reader client.Reader
	// watch follows the Workflow: the manager's client cannot watch, and
	// its cache would hold every Workflow of the cluster.
	watch       client.WithWatch
	callbackURL string
}

// argoPod is how the pods are passed to the Workflow (parameter "pods").
type argoPod struct {
	Name string `json:"name"`
	UID  string `json:"uid,omitempty"`
}

func (a *argoBackend) run(ctx context.Context, w *statusWriter, policy *v1alpha1.TerminationPolicy) error {
	var run *v1alpha1.TerminationRun
	w.read(func(r *v1alpha1.TerminationRun) { run = r.DeepCopy() })
	name := fmt.Sprintf("%s-a%d", run.Name, run.Status.Attempt)
	if msg, err := a.serviceAccountAllowed(ctx, run.Namespace, policy.Spec.Runner.Argo.ServiceAccountName); err != nil {
		return err
	} else if msg != "" {
		return a.finish(ctx, w, name, "NotAllowed", msg, v1alpha1.PodFailed)
	}
	wf, err := a.workflow(run, policy, name)
	if err != nil {
		return err
	}
	if err := a.client.Create(ctx, wf); err != nil && !apierrors.IsAlreadyExists(err) {
		msg := fmt.Sprintf("create Workflow %s: %v", name, err)
		if apierrors.IsNotFound(err) || isNoKind(err) {
			msg = fmt.Sprintf("create Workflow %s: Argo Workflows is not installed (no argoproj.io/v1alpha1 Workflow kind)", name)
		}
		return a.finish(ctx, w, name, "Error", msg, v1alpha1.PodFailed)
	}
	if err := w.sync(ctx, func(st *v1alpha1.TerminationRunStatus) {
		st.Workflow = &v1alpha1.WorkflowStatus{Name: name, Phase: "Pending"}
	}); err != nil {
		return err
	}
	// Follow the Workflow (list, then watch; relisted if the watch breaks)
	// and write the run's status only when its phase or message changed.
	var last v1alpha1.WorkflowStatus
	var result error
	done := func(err error) bool { result = err; return true }
	err = follow(ctx, a.watch, Selection{Namespace: run.Namespace, Name: name},
		func() client.ObjectList {
			l := &unstructured.UnstructuredList{}
			l.SetGroupVersionKind(WorkflowGVK.GroupVersion().WithKind(WorkflowGVK.Kind + "List"))
			return l
		}, workflowObject(),
		func(store cache.Store) bool {
			if len(store.List()) > 0 {
				return false
			}
			return done(a.finish(ctx, w, name, "Deleted", "the Workflow was deleted", v1alpha1.PodFailed))
		},
		func(obj runtime.Object, deleted bool) bool {
			got, ok := obj.(*unstructured.Unstructured)
			if !ok {
				return false
			}
			if deleted {
				return done(a.finish(ctx, w, name, "Deleted", "the Workflow was deleted", v1alpha1.PodFailed))
			}
			phase, _, _ := unstructured.NestedString(got.Object, "status", "phase")
			msg, _, _ := unstructured.NestedString(got.Object, "status", "message")
			switch phase {
			case "Succeeded":
				return done(a.finish(ctx, w, name, phase, msg, v1alpha1.PodSucceeded))
			case "Failed", "Error":
				return done(a.finish(ctx, w, name, phase, msg, v1alpha1.PodFailed))
			}
			now := v1alpha1.WorkflowStatus{Name: name, Phase: phase, Message: trim(msg)}
			if now == last {
				return false
			}
			last = now
			if err := w.sync(ctx, func(st *v1alpha1.TerminationRunStatus) {
				st.Workflow = &now
				for i := range st.Pods {
					if phase == "Running" && st.Pods[i].Phase == v1alpha1.PodPending {
						st.Pods[i].Phase = v1alpha1.PodRunning
					}
				}
			}); err != nil {
				return done(err)
			}
			return false
		})
	if err != nil {
		return err
	}
	return result
}

func workflowObject() *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(WorkflowGVK)
	return u
}

// AnnotationWorkflowRunner on a ServiceAccount lets policies run Argo
// Workflows as it ("true"). The server creates the Workflow with its own
// rights, so without the namespace owner's consent a policy author could
// run code as any ServiceAccount of the namespace, including ones they may
// not use themselves.
const AnnotationWorkflowRunner = "lastcall.dev/workflow-runner"

// serviceAccountAllowed says why the Workflow may not run as sa ("" when
// it may); an error is worth retrying.
func (a *argoBackend) serviceAccountAllowed(ctx context.Context, ns, sa string) (string, error) {
	if sa == "" {
		return "", nil // the namespace's default, as for any Workflow
	}
	var acct corev1.ServiceAccount
	err := a.reader.Get(ctx, client.ObjectKey{Namespace: ns, Name: sa}, &acct)
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Sprintf("ServiceAccount %s/%s does not exist", ns, sa), nil
	case err != nil:
		return "", fmt.Errorf("read ServiceAccount %s/%s: %w", ns, sa, err)
	case acct.Annotations[AnnotationWorkflowRunner] != "true":
		return fmt.Sprintf("ServiceAccount %s/%s is not annotated %s=true: the namespace's owner must allow policies to run Workflows as it", ns, sa, AnnotationWorkflowRunner), nil
	}
	return "", nil
}

// finish mirrors a terminal Workflow phase into every pod of the attempt.
func (a *argoBackend) finish(ctx context.Context, w *statusWriter, name, phase, msg string, pods v1alpha1.PodPhase) error {
	return w.sync(ctx, func(st *v1alpha1.TerminationRunStatus) {
		st.Workflow = &v1alpha1.WorkflowStatus{Name: name, Phase: phase, Message: trim(msg)}
		for i := range st.Pods {
			if st.Pods[i].Phase != v1alpha1.PodGone {
				st.Pods[i].Phase = pods
				if pods == v1alpha1.PodFailed {
					st.Pods[i].Message = trim(fmt.Sprintf("workflow %s %s: %s", name, phase, msg))
				}
			}
		}
		countPods(st)
	})
}

func (a *argoBackend) workflow(run *v1alpha1.TerminationRun, policy *v1alpha1.TerminationPolicy, name string) (*unstructured.Unstructured, error) {
	pods := make([]argoPod, len(run.Spec.Pods))
	for i, p := range run.Spec.Pods {
		pods[i] = argoPod{Name: p.Name, UID: string(p.UID)}
	}
	podsJSON, err := json.Marshal(pods)
	if err != nil {
		return nil, err
	}
	params := []any{
		map[string]any{"name": "run-name", "value": run.Name},
		map[string]any{"name": "namespace", "value": run.Namespace},
		map[string]any{"name": "pods", "value": string(podsJSON)},
		map[string]any{"name": "attempt", "value": fmt.Sprint(run.Status.Attempt)},
		map[string]any{"name": "callback-url", "value": a.callbackURL},
	}
	spec := map[string]any{
		"workflowTemplateRef": map[string]any{"name": policy.Spec.Runner.Argo.WorkflowTemplateRef.Name},
		"arguments":           map[string]any{"parameters": params},
	}
	if sa := policy.Spec.Runner.Argo.ServiceAccountName; sa != "" {
		spec["serviceAccountName"] = sa
	}
	wf := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	wf.SetGroupVersionKind(WorkflowGVK)
	wf.SetName(name)
	wf.SetNamespace(run.Namespace)
	wf.SetLabels(map[string]string{"lastcall.dev/run": run.Name})
	if err := controllerutil.SetControllerReference(run, wf, a.client.Scheme()); err != nil {
		return nil, err
	}
	return wf, nil
}

// isNoKind reports that the API server does not serve Workflows.
func isNoKind(err error) bool { return meta.IsNoMatchError(err) }
