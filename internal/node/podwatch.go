package node

import (
	"context"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// podWatch keeps the node's pods in an informer cache and wakes waiters at
// every change, so that a group ends the moment its last pod is gone.
type podWatch struct {
	node    string
	factory informers.SharedInformerFactory
	lister  corelisters.PodLister
	synced  cache.InformerSynced

	mu      sync.Mutex
	changed chan struct{} // closed and replaced at every change
}

func newPodWatch(client kubernetes.Interface, node string) (*podWatch, error) {
	f := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", node).String()
	}))
	inf := f.Core().V1().Pods()
	w := &podWatch{node: node, factory: f, lister: inf.Lister(), synced: inf.Informer().HasSynced, changed: make(chan struct{})}
	poke := func(any) { w.poke() }
	if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    poke,
		UpdateFunc: func(any, any) { w.poke() },
		DeleteFunc: poke,
	}); err != nil {
		return nil, fmt.Errorf("watch pods of node %s: %w", node, err)
	}
	return w, nil
}

// start runs the informer until ctx ends and waits for its first sync.
func (w *podWatch) start(ctx context.Context) error {
	w.factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), w.synced) {
		return fmt.Errorf("watch pods of node %s: cache not synced: %w", w.node, context.Cause(ctx))
	}
	return nil
}

// stop waits for the informer's goroutines after start's ctx ended.
func (w *podWatch) stop() { w.factory.Shutdown() }

func (w *podWatch) poke() {
	w.mu.Lock()
	close(w.changed)
	w.changed = make(chan struct{})
	w.mu.Unlock()
}

// Changed is closed at the next change of any pod of the node.
func (w *podWatch) Changed() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.changed
}

// pods returns copies of the node's pods as the cache has them.
func (w *podWatch) pods() ([]corev1.Pod, error) {
	list, err := w.lister.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	out := make([]corev1.Pod, 0, len(list))
	for _, p := range list {
		if p.Spec.NodeName == w.node {
			out = append(out, *p.DeepCopy())
		}
	}
	return out, nil
}

// gone reports whether pod no longer runs: deleted, replaced by a pod of the
// same name, or terminal.
func (w *podWatch) gone(pod *corev1.Pod) bool {
	cur, err := w.lister.Pods(pod.Namespace).Get(pod.Name)
	if err != nil {
		return true // not found in the cache
	}
	return cur.UID != pod.UID || cur.Status.Phase == corev1.PodSucceeded || cur.Status.Phase == corev1.PodFailed
}
