package node

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func TestCordonPatchCarriesTheResourceVersionAndRetriesOnConflict(t *testing.T) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: testNode, ResourceVersion: "7"}, Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{BootID: "b"}}}
	cs := fake.NewClientset(node)
	var (
		mu      sync.Mutex
		patches []string
	)
	cs.PrependReactor("patch", "nodes", func(a k8stesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		defer mu.Unlock()
		patches = append(patches, string(a.(k8stesting.PatchAction).GetPatch()))
		if len(patches) == 1 {
			return true, nil, apierrors.NewConflict(corev1.Resource("nodes"), testNode, nil)
		}
		return false, nil, nil
	})
	n := nodes{client: cs, name: testNode}
	if _, err := n.cordon(context.Background(), time.Now()); err != nil {
		t.Fatal(err)
	}
	if len(patches) != 2 {
		t.Fatalf("%d patches, want 2 (a conflict, then a retry)", len(patches))
	}
	if !strings.Contains(patches[0], `"resourceVersion":"7"`) {
		t.Errorf("patch %s has no resourceVersion precondition", patches[0])
	}
	got, _ := cs.CoreV1().Nodes().Get(context.Background(), testNode, metav1.GetOptions{})
	if !got.Spec.Unschedulable || !hasTaint(got) {
		t.Errorf("node not cordoned after the retry: %+v", got.Spec)
	}
}
