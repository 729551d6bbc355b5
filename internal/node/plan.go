package node

import (
	"context"
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// SkipReason says why a pod of the node is not evicted.
type SkipReason string

// Pods the shutdown leaves alone, as `kubectl drain` and the kubelet do.
const (
	SkipDaemonSet SkipReason = "DaemonSet"  // its controller ignores cordons and would recreate it
	SkipMirror    SkipReason = "static pod" // a mirror pod: the kubelet owns it, the API cannot evict it
	SkipTerminal  SkipReason = "terminal"   // Succeeded or Failed: nothing runs
	SkipOtherNode SkipReason = "other node" // not scheduled on this node
)

// mirrorAnnotation marks the API's mirror of a kubelet static pod.
const mirrorAnnotation = "kubernetes.io/config.mirror"

// defaultGraceSeconds is the API server's default terminationGracePeriodSeconds.
const defaultGraceSeconds = 30

// Plan is the order and the budgets of one shutdown of a node.
type Plan struct {
	Node string
	// Groups, lowest priority first; empty groups are kept (they cost no time).
	Groups  []PlanGroup
	Skipped []SkippedPod
	// Policies are, by pod, the TerminationPolicies whose runs it would
	// wait for (PolicyRuns.AddPolicies); nil when not looked up.
	Policies map[types.NamespacedName][]string
}

// PlanGroup is one priority group and the pods that fall into it.
type PlanGroup struct {
	Group
	Pods []PlannedPod
}

// PlannedPod is a pod and the grace it gets if evicted at its group's start.
type PlannedPod struct {
	Pod *corev1.Pod
	// Grace is min(terminationGracePeriodSeconds, the group's budget), at least 1 s.
	Grace time.Duration
}

// SkippedPod is a pod of the node that the shutdown leaves alone.
type SkippedPod struct {
	Pod    *corev1.Pod
	Reason SkipReason
}

// NewPlan sorts the node's pods into the groups (lowest priority first), as
// the kubelet does: a pod falls into the group with the highest priority
// not above its own; pods below the lowest group join the lowest.
func NewPlan(node string, groups []Group, pods []corev1.Pod) Plan {
	p := Plan{Node: node, Groups: make([]PlanGroup, len(groups))}
	sorted := append([]Group(nil), groups...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Priority < sorted[j].Priority })
	for i, g := range sorted {
		p.Groups[i].Group = g
	}
	for i := range pods {
		pod := &pods[i]
		if reason, skip := skipReason(node, pod); skip {
			p.Skipped = append(p.Skipped, SkippedPod{Pod: pod, Reason: reason})
			continue
		}
		if len(p.Groups) == 0 {
			continue
		}
		g := &p.Groups[groupIndex(sorted, podPriority(pod))]
		g.Pods = append(g.Pods, PlannedPod{Pod: pod, Grace: graceFor(pod, g.Budget)})
	}
	for _, g := range p.Groups {
		sort.SliceStable(g.Pods, func(i, j int) bool {
			a, b := g.Pods[i].Pod, g.Pods[j].Pod
			if a.Namespace != b.Namespace {
				return a.Namespace < b.Namespace
			}
			return a.Name < b.Name
		})
	}
	return p
}

// PlanFor lists the node's pods now and plans their shutdown.
func PlanFor(ctx context.Context, client kubernetes.Interface, node string, groups []Group) (Plan, error) {
	list, err := client.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("spec.nodeName", node).String(),
	})
	if err != nil {
		return Plan{}, fmt.Errorf("list pods of node %s: %w", node, err)
	}
	return NewPlan(node, groups, list.Items), nil
}

// PodCount counts the pods to evict.
func (p Plan) PodCount() int {
	n := 0
	for _, g := range p.Groups {
		n += len(g.Pods)
	}
	return n
}

// groupIndex finds the group with the highest priority not above prio;
// below the lowest group, the lowest.
func groupIndex(groups []Group, prio int32) int {
	i := sort.Search(len(groups), func(i int) bool { return groups[i].Priority > prio })
	if i == 0 {
		return 0
	}
	return i - 1
}

func skipReason(node string, pod *corev1.Pod) (SkipReason, bool) {
	switch {
	case pod.Spec.NodeName != node:
		return SkipOtherNode, true
	case pod.Annotations[mirrorAnnotation] != "":
		return SkipMirror, true
	case pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed:
		return SkipTerminal, true
	}
	if ref := metav1.GetControllerOf(pod); ref != nil && ref.Kind == "DaemonSet" {
		return SkipDaemonSet, true
	}
	return "", false
}

func podPriority(pod *corev1.Pod) int32 {
	if pod.Spec.Priority != nil {
		return *pod.Spec.Priority
	}
	return 0
}

// graceFor is min(the pod's terminationGracePeriodSeconds, left), in whole
// seconds (left is rounded to the nearest: the API takes seconds), and at
// least 1 s, as Karpenter clamps it.
func graceFor(pod *corev1.Pod, left time.Duration) time.Duration {
	g := min(ownGrace(pod), left.Round(time.Second))
	return max(g, time.Second)
}

// ownGrace is the pod's terminationGracePeriodSeconds (the API's default
// when unset).
func ownGrace(pod *corev1.Pod) time.Duration {
	if s := pod.Spec.TerminationGracePeriodSeconds; s != nil {
		return time.Duration(*s) * time.Second
	}
	return time.Duration(defaultGraceSeconds) * time.Second
}
