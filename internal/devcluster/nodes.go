package devcluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// NodeAnnotation marks the nodes kwok manages (value "fake").
const NodeAnnotation = "kwok.x-k8s.io/node"

// NodeName is the name of the i-th fake node.
func NodeName(i int) string { return fmt.Sprintf("kwok-node-%d", i) }

// NewNode returns a fake node that kwok will manage, with a fresh boot ID.
func NewNode(name string) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{NodeAnnotation: "fake"},
			Labels: map[string]string{
				corev1.LabelHostname:   name,
				corev1.LabelOSStable:   "linux",
				corev1.LabelArchStable: "amd64",
				"type":                 "kwok",
			},
		},
		Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{BootID: newBootID()}},
	}
}

func newBootID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func ensureNodes(ctx context.Context, cs kubernetes.Interface, n int) error {
	for i := 0; i < n; i++ {
		_, err := cs.CoreV1().Nodes().Create(ctx, NewNode(NodeName(i)), metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create node %s: %w", NodeName(i), err)
		}
	}
	return nil
}

// nodesSchedulable counts fake nodes that are Ready and carry no not-ready
// taint. The node-lifecycle controller removes that taint on its next pass
// (up to 5 s); we remove it as soon as kwok made the node Ready, which is
// what that controller would do, to keep startup short.
func nodesSchedulable(ctx context.Context, cs kubernetes.Interface) (int, error) {
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, err
	}
	ready := 0
	for i := range nodes.Items {
		node := &nodes.Items[i]
		if node.Annotations[NodeAnnotation] != "fake" || !nodeReady(node) {
			continue
		}
		kept := node.Spec.Taints[:0:0]
		for _, t := range node.Spec.Taints {
			if t.Key != corev1.TaintNodeNotReady {
				kept = append(kept, t)
			}
		}
		if len(kept) != len(node.Spec.Taints) {
			node.Spec.Taints = kept
			if _, err := cs.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{}); err != nil {
				return ready, nil // conflict with the controller: look again
			}
		}
		ready++
	}
	return ready, nil
}

func nodeReady(node *corev1.Node) bool {
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
