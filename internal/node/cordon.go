package node

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

const (
	// TaintKey is the NoSchedule taint lastcall puts on a node that shuts
	// down, on top of the cordon: it also keeps off pods that tolerate
	// unschedulable nodes (DaemonSet pods do).
	TaintKey = "lastcall.dev/shutdown"
	// AnnotationShutdown records on the node what lastcall changed and the
	// boot it happened in (JSON, see ShutdownRecord).
	AnnotationShutdown = "lastcall.dev/node-shutdown"
)

// ShutdownRecord is the value of AnnotationShutdown.
type ShutdownRecord struct {
	// BootID is the node's status.nodeInfo.bootID when lastcall cordoned it;
	// a different one later means the node rebooted.
	BootID string `json:"bootID"`
	// Cordoned is true when lastcall set spec.unschedulable (it was not set
	// before): only then does lastcall uncordon.
	Cordoned bool `json:"cordoned"`
	// Since is when the shutdown began.
	Since time.Time `json:"since"`
}

// Record reads lastcall's annotation from node.
func Record(node *corev1.Node) (ShutdownRecord, bool) {
	var r ShutdownRecord
	v, ok := node.Annotations[AnnotationShutdown]
	if !ok || json.Unmarshal([]byte(v), &r) != nil {
		return r, false
	}
	return r, true
}

// nodes changes one Node with patches that carry its resourceVersion, so a
// concurrent writer (the node controller, an admin's cordon) is never
// overwritten: a conflict re-reads the node and recomputes the change.
type nodes struct {
	client kubernetes.Interface
	name   string
}

// modify applies change to a fresh copy of the node and patches the
// difference; change returns false when there is nothing to do.
func (n nodes) modify(ctx context.Context, change func(*corev1.Node) bool) error {
	return retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		node, err := n.client.CoreV1().Nodes().Get(ctx, n.name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		mod := node.DeepCopy()
		if !change(mod) {
			return nil
		}
		patch, err := guardedPatch(node, mod)
		if err != nil {
			return err
		}
		_, err = n.client.CoreV1().Nodes().Patch(ctx, n.name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
		return err
	})
}

// guardedPatch is the strategic merge patch from old to mod with old's
// resourceVersion as a precondition.
func guardedPatch(old, mod *corev1.Node) ([]byte, error) {
	a, err := json.Marshal(old)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(mod)
	if err != nil {
		return nil, err
	}
	p, err := strategicpatch.CreateTwoWayMergePatch(a, b, corev1.Node{})
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(p, &m); err != nil {
		return nil, err
	}
	meta, _ := m["metadata"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
		m["metadata"] = meta
	}
	meta["resourceVersion"] = old.ResourceVersion
	return json.Marshal(m)
}

// cordon marks the node unschedulable, adds the NoSchedule taint and
// records both in the annotation, keeping what an earlier shutdown of the
// same boot recorded. It returns the record as written.
func (n nodes) cordon(ctx context.Context, now time.Time) (ShutdownRecord, error) {
	var rec ShutdownRecord
	err := n.modify(ctx, func(node *corev1.Node) bool {
		var ok bool
		rec, ok = Record(node)
		if !ok || rec.BootID != node.Status.NodeInfo.BootID {
			rec = ShutdownRecord{BootID: node.Status.NodeInfo.BootID, Since: now.UTC().Truncate(time.Second)}
		}
		if !node.Spec.Unschedulable {
			node.Spec.Unschedulable = true
			rec.Cordoned = true
		}
		if !hasTaint(node) {
			node.Spec.Taints = append(node.Spec.Taints, corev1.Taint{Key: TaintKey, Effect: corev1.TaintEffectNoSchedule})
		}
		b, _ := json.Marshal(rec)
		if node.Annotations == nil {
			node.Annotations = map[string]string{}
		}
		node.Annotations[AnnotationShutdown] = string(b)
		return true
	})
	if err != nil {
		return ShutdownRecord{}, fmt.Errorf("cordon node %s: %w", n.name, err)
	}
	return rec, nil
}

// uncordon undoes what the annotation says lastcall did, if when agrees:
// removes the taint, clears spec.unschedulable if lastcall set it, removes
// the annotation. It reports whether it changed the node.
func (n nodes) uncordon(ctx context.Context, when func(ShutdownRecord, *corev1.Node) bool) (bool, error) {
	done := false
	err := n.modify(ctx, func(node *corev1.Node) bool {
		rec, ok := Record(node)
		if _, present := node.Annotations[AnnotationShutdown]; !present || (ok && !when(rec, node)) {
			done = false
			return false
		}
		kept := node.Spec.Taints[:0:0]
		for _, t := range node.Spec.Taints {
			if t.Key != TaintKey {
				kept = append(kept, t)
			}
		}
		node.Spec.Taints = kept
		if rec.Cordoned {
			node.Spec.Unschedulable = false
		}
		delete(node.Annotations, AnnotationShutdown)
		done = true
		return true
	})
	if err != nil {
		return false, fmt.Errorf("uncordon node %s: %w", n.name, err)
	}
	return done, nil
}

// always undoes a cancelled shutdown's changes.
func always(ShutdownRecord, *corev1.Node) bool { return true }

// rebooted is true when the node's boot ID differs from the recorded one.
func rebooted(rec ShutdownRecord, node *corev1.Node) bool {
	boot := node.Status.NodeInfo.BootID
	return rec.BootID != "" && boot != "" && rec.BootID != boot
}

func hasTaint(node *corev1.Node) bool {
	for _, t := range node.Spec.Taints {
		if t.Key == TaintKey {
			return true
		}
	}
	return false
}
