//go:build integration && bench

package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/lastcall-dev/lastcall/internal/devcluster"
	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
)

// spareNode is where the Deployments' replacement pods go, so that their
// PDBs allow the next eviction (on one node they never would).
const spareNode = "kwok-node-1"

// benchSet is the benchmark's pod set: 110 pods in three priority classes,
// two Deployments behind maxUnavailable=1 PDBs, and a few pods that use
// their whole grace period.
type benchSet struct {
	bare        []podSpec
	deployments []benchDeployment
	longest     time.Duration // the longest time a pod takes to go
}

type benchDeployment struct {
	name     string
	class    string
	replicas int32
}

func newBenchSet(cl map[int32]string, withPDBs bool) benchSet {
	var s benchSet
	add := func(n int, prefix string, prio int32, grace int64, exit string) {
		for i := range n {
			s.bare = append(s.bare, podSpec{name: fmt.Sprintf("%s-%02d", prefix, i), class: cl[prio], grace: grace, exitAfter: exit, app: prefix})
		}
	}
	low, mid := 50, 35
	if withPDBs {
		low, mid = 45, 30
		s.deployments = []benchDeployment{{name: "low-db", class: cl[100], replicas: 5}, {name: "mid-api", class: cl[10000], replicas: 5}}
	}
	add(low, "low", 100, 30, "300ms")
	add(mid, "mid", 10000, 30, "300ms")
	add(22, "high", 1000000, 30, "300ms")
	add(3, "long", 1000000, 3, "") // use their whole 3 s
	s.longest = 3 * time.Second
	return s
}

func (s benchSet) size() int {
	n := len(s.bare)
	for _, d := range s.deployments {
		n += int(d.replicas)
	}
	return n
}

// create puts the set on the kwok node (the spare node is cordoned
// meanwhile) and waits until every pod runs and every PDB allows one
// disruption.
func (s benchSet) create(t *testing.T, cs kubernetes.Interface, ns string) {
	t.Helper()
	setUnschedulable(t, cs, spareNode, true)
	for _, d := range s.deployments {
		labels := map[string]string{"app": d.name}
		dep := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: d.name},
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To(d.replicas),
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{devcluster.AnnotationExitAfter: "300ms"}},
					Spec: corev1.PodSpec{
						PriorityClassName:             d.class,
						TerminationGracePeriodSeconds: ptr.To[int64](30),
						Containers:                    []corev1.Container{{Name: "app", Image: "registry.invalid/app"}},
					},
				},
			},
		}
		if _, err := cs.AppsV1().Deployments(ns).Create(context.Background(), dep, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	createPods(t, cs, ns, s.bare)
	clustertest.Eventually(t, 90*time.Second, func(ctx context.Context) (bool, error) {
		n, err := podsOnNode(ctx, cs, ns, kwokNode)
		return n == s.size(), err
	}, "%d pods running on %s", s.size(), kwokNode)
	for _, d := range s.deployments {
		pdb := &policyv1.PodDisruptionBudget{
			ObjectMeta: metav1.ObjectMeta{Name: d.name},
			Spec: policyv1.PodDisruptionBudgetSpec{
				MaxUnavailable: ptr.To(intstr.FromInt32(1)),
				Selector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app": d.name}},
			},
		}
		if _, err := cs.PolicyV1().PodDisruptionBudgets(ns).Create(context.Background(), pdb, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitPDB(t, cs, ns, d.name, d.replicas, 1)
	}
	setUnschedulable(t, cs, spareNode, false)
}

// podsOnNode counts the running, not terminating pods of ns on node.
func podsOnNode(ctx context.Context, cs kubernetes.Interface, ns, node string) (int, error) {
	list, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + node})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, p := range list.Items {
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
			n++
		}
	}
	return n, nil
}

// podsLeft counts pods of ns still on node, terminating or not.
func podsLeft(ctx context.Context, cs kubernetes.Interface, ns, node string) (int, error) {
	list, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + node})
	if err != nil {
		return 0, err
	}
	return len(list.Items), nil
}

func setUnschedulable(t *testing.T, cs kubernetes.Interface, name string, on bool) {
	t.Helper()
	patch := fmt.Appendf(nil, `{"spec":{"unschedulable":%v}}`, on)
	if _, err := cs.CoreV1().Nodes().Patch(context.Background(), name, "application/merge-patch+json", patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

// addSpareNode creates a second kwok node and waits until it is Ready and
// schedulable.
func addSpareNode(t *testing.T, cs kubernetes.Interface) {
	t.Helper()
	_, err := cs.CoreV1().Nodes().Create(context.Background(), devcluster.NewNode(spareNode), metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.CoreV1().Nodes().Delete(context.Background(), spareNode, metav1.DeleteOptions{}) })
	clustertest.Eventually(t, 60*time.Second, func(ctx context.Context) (bool, error) {
		n, err := cs.CoreV1().Nodes().Get(ctx, spareNode, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		ready := false
		for _, c := range n.Status.Conditions {
			ready = ready || (c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue)
		}
		if !ready {
			return false, nil
		}
		// As devcluster does: drop the not-ready taint the lifecycle
		// controller would remove on its next pass.
		kept := n.Spec.Taints[:0:0]
		for _, tt := range n.Spec.Taints {
			if tt.Key != corev1.TaintNodeNotReady {
				kept = append(kept, tt)
			}
		}
		if len(kept) == len(n.Spec.Taints) {
			return true, nil
		}
		n.Spec.Taints = kept
		_, err = cs.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
		return err == nil, nil
	}, "node %s to be Ready and untainted", spareNode)
}

// keepNodesFresh renews the Ready heartbeat of the benchmark's nodes every
// 5 s until the test ends. kwok's heartbeat Stage patches it every 20–25 s
// and renews no node Lease; on a loaded 2-core machine a late heartbeat
// lets the node-lifecycle controller call the node NotReady and mark its
// pods not ready for good, and then no PDB allows an eviction (drain waits
// out its timeout). This plays the kubelet's heartbeat, nothing else.
func keepNodesFresh(t *testing.T, cs kubernetes.Interface, nodes ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			for _, n := range nodes {
				patch := fmt.Appendf(nil, `{"status":{"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady","lastHeartbeatTime":%q}]}}`,
					time.Now().UTC().Format(time.RFC3339))
				_, _ = cs.CoreV1().Nodes().PatchStatus(ctx, n, patch)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// groupSeconds returns how long each group took, from the agent's metric.
func (r *agentRun) groupSeconds(t *testing.T) map[string]float64 {
	t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "lastcall_node_shutdown_group_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[m.GetLabel()[0].GetValue()] = m.GetHistogram().GetSampleSum()
		}
	}
	return out
}
