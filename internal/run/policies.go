package run

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
)

// Workload kinds a policy's targetRef may name: the same everywhere a
// policy is matched (gate, node agent, watcher, CLI).
var workloadKinds = map[string]func() client.Object{
	"Deployment":  func() client.Object { return &appsv1.Deployment{} },
	"StatefulSet": func() client.Object { return &appsv1.StatefulSet{} },
	"DaemonSet":   func() client.Object { return &appsv1.DaemonSet{} },
	"ReplicaSet":  func() client.Object { return &appsv1.ReplicaSet{} },
}

// ErrUnsupportedKind: a targetRef to a kind lastcall cannot resolve.
var ErrUnsupportedKind = errors.New("unsupported workload kind")

// WorkloadTemplate reads a workload's pod selector and pod template labels.
func WorkloadTemplate(ctx context.Context, c client.Reader, namespace, kind, name string) (*metav1.LabelSelector, labels.Set, error) {
	newObj, ok := workloadKinds[kind]
	if !ok {
		return nil, nil, fmt.Errorf("%w %q (Deployment, StatefulSet, DaemonSet or ReplicaSet)", ErrUnsupportedKind, kind)
	}
	obj := newObj()
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, obj); err != nil {
		return nil, nil, err
	}
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return o.Spec.Selector, o.Spec.Template.Labels, nil
	case *appsv1.StatefulSet:
		return o.Spec.Selector, o.Spec.Template.Labels, nil
	case *appsv1.DaemonSet:
		return o.Spec.Selector, o.Spec.Template.Labels, nil
	case *appsv1.ReplicaSet:
		return o.Spec.Selector, o.Spec.Template.Labels, nil
	}
	panic("unreachable")
}

// PolicySelector returns the label selector of a policy's pods: its own, or
// that of the workload its targetRef names.
func PolicySelector(ctx context.Context, c client.Reader, p *v1alpha1.TerminationPolicy) (labels.Selector, error) {
	ls := p.Spec.Selector
	if ref := p.Spec.TargetRef; ref != nil {
		sel, _, err := WorkloadTemplate(ctx, c, p.Namespace, ref.Kind, ref.Name)
		if err != nil {
			return nil, fmt.Errorf("policy %s: %s %s: %w", p.Name, ref.Kind, ref.Name, err)
		}
		ls = sel
	}
	if ls == nil {
		return nil, fmt.Errorf("policy %s selects no pods", p.Name)
	}
	return metav1.LabelSelectorAsSelector(ls)
}

// PolicyPods lists the live pods a policy covers, sorted by name.
func PolicyPods(ctx context.Context, c client.Reader, p *v1alpha1.TerminationPolicy) ([]corev1.Pod, error) {
	sel, err := PolicySelector(ctx, c, p)
	if err != nil {
		return nil, err
	}
	var list corev1.PodList
	if err := c.List(ctx, &list, client.InNamespace(p.Namespace), client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return nil, fmt.Errorf("list pods of policy %s: %w", p.Name, err)
	}
	pods := list.Items[:0]
	for _, pod := range list.Items {
		if pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed {
			pods = append(pods, pod)
		}
	}
	sort.Slice(pods, func(i, j int) bool { return pods[i].Name < pods[j].Name })
	return pods, nil
}

// Covered is what a policy may cover: a workload (Kind and Name, with its
// pod template's labels) or a pod (Kind "Pod", its labels).
type Covered struct {
	Kind, Name string
	Labels     labels.Set
}

// Covers is the one answer to "does this policy cover that": its targetRef
// names the workload (any kind when w.Kind is empty), or its pod selector
// (its own, or its target's) matches w's pod labels. A policy whose target
// does not exist covers nothing.
func Covers(ctx context.Context, c client.Reader, p *v1alpha1.TerminationPolicy, w Covered) (bool, error) {
	if ref := p.Spec.TargetRef; ref != nil && ref.Name == w.Name && (w.Kind == "" || ref.Kind == w.Kind) {
		return true, nil
	}
	sel, err := PolicySelector(ctx, c, p)
	switch {
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, err
	}
	return sel.Matches(w.Labels), nil
}

// CoveringPolicies lists the policies in namespace that cover w, sorted by
// name; keep, when set, filters them first (a trigger a policy must ask
// for). A policy that cannot be evaluated (an unsupported targetRef kind)
// is skipped.
func CoveringPolicies(ctx context.Context, c client.Reader, namespace string, w Covered, keep func(*v1alpha1.TerminationPolicy) bool) ([]*v1alpha1.TerminationPolicy, error) {
	var list v1alpha1.TerminationPolicyList
	if err := c.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		return nil, fmt.Errorf("list TerminationPolicies in %s: %w", namespace, err)
	}
	var out []*v1alpha1.TerminationPolicy
	for i := range list.Items {
		pol := &list.Items[i]
		if keep != nil && !keep(pol) {
			continue
		}
		ok, err := Covers(ctx, c, pol, w)
		if err != nil && !errors.Is(err, ErrUnsupportedKind) {
			return nil, err
		}
		if ok {
			out = append(out, pol)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// DeterministicName derives a run name from parts (e.g. canary, checksum,
// hook), so that repeated requests for the same thing name the same run and
// creating it twice fails with AlreadyExists instead of starting a second run.
func DeterministicName(prefix string, parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	prefix = strings.TrimSuffix(prefix, "-")
	if len(prefix) > 40 {
		prefix = prefix[:40]
	}
	return strings.Trim(prefix, "-.") + "-" + hex.EncodeToString(sum[:])[:12]
}
