package run

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
)

// PolicySelector returns the label selector of a policy's pods: its own, or
// that of the workload its targetRef names.
func PolicySelector(ctx context.Context, c client.Reader, p *v1alpha1.TerminationPolicy) (labels.Selector, error) {
	ls := p.Spec.Selector
	if ref := p.Spec.TargetRef; ref != nil {
		key := client.ObjectKey{Namespace: p.Namespace, Name: ref.Name}
		var obj client.Object
		switch ref.Kind {
		case "Deployment":
			obj = &appsv1.Deployment{}
		case "StatefulSet":
			obj = &appsv1.StatefulSet{}
		case "DaemonSet":
			obj = &appsv1.DaemonSet{}
		default:
			return nil, fmt.Errorf("policy %s: unsupported targetRef kind %q", p.Name, ref.Kind)
		}
		if err := c.Get(ctx, key, obj); err != nil {
			return nil, fmt.Errorf("policy %s: get %s %s: %w", p.Name, ref.Kind, ref.Name, err)
		}
		switch o := obj.(type) {
		case *appsv1.Deployment:
			ls = o.Spec.Selector
		case *appsv1.StatefulSet:
			ls = o.Spec.Selector
		case *appsv1.DaemonSet:
			ls = o.Spec.Selector
		}
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

// NewRun builds a run of policy for pods. An empty name makes the API server
// generate one from the policy's name.
func NewRun(policy *v1alpha1.TerminationPolicy, name string, pods []corev1.Pod, trigger v1alpha1.Trigger) *v1alpha1.TerminationRun {
	refs := make([]v1alpha1.PodRef, len(pods))
	for i, p := range pods {
		refs[i] = v1alpha1.PodRef{Name: p.Name, UID: p.UID}
	}
	run := &v1alpha1.TerminationRun{
		ObjectMeta: metav1.ObjectMeta{Namespace: policy.Namespace, Name: name,
			Labels: map[string]string{"lastcall.dev/policy": policy.Name}},
		Spec: v1alpha1.TerminationRunSpec{PolicyRef: v1alpha1.PolicyRef{Name: policy.Name}, Pods: refs, Trigger: trigger},
	}
	if name == "" {
		run.GenerateName = policy.Name + "-"
	}
	return run
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
