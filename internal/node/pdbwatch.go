package node

import (
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	policylisters "k8s.io/client-go/listers/policy/v1"
	"k8s.io/client-go/tools/cache"
)

// pdbWatch follows PodDisruptionBudgets so that an eviction refused by one
// is retried the moment its status allows the next disruption, instead of
// after a blind backoff (kubectl drain waits 5 s).
type pdbWatch struct {
	factory informers.SharedInformerFactory
	lister  policylisters.PodDisruptionBudgetLister

	mu      sync.Mutex
	changed map[string]chan struct{} // by namespace; closed at its next change
}

func newPDBWatch(client kubernetes.Interface) (*pdbWatch, error) {
	f := informers.NewSharedInformerFactory(client, 0)
	inf := f.Policy().V1().PodDisruptionBudgets()
	w := &pdbWatch{factory: f, lister: inf.Lister(), changed: map[string]chan struct{}{}}
	poke := func(obj any) {
		if m, err := objectMeta(obj); err == nil {
			w.poke(m.GetNamespace())
		}
	}
	if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    poke,
		UpdateFunc: func(_, obj any) { poke(obj) },
		DeleteFunc: poke,
	}); err != nil {
		return nil, fmt.Errorf("watch PodDisruptionBudgets: %w", err)
	}
	return w, nil
}

func objectMeta(obj any) (metav1.Object, error) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("not an object: %T", obj)
	}
	return m, nil
}

func (w *pdbWatch) poke(ns string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if ch, ok := w.changed[ns]; ok {
		close(ch)
		delete(w.changed, ns)
	}
}

// Changed is closed at the next change of a PDB in namespace ns.
func (w *pdbWatch) Changed(ns string) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	ch, ok := w.changed[ns]
	if !ok {
		ch = make(chan struct{})
		w.changed[ns] = ch
	}
	return ch
}

// Allows reports whether every PDB that selects pod allows a disruption now,
// as far as the cache knows.
func (w *pdbWatch) Allows(pod *corev1.Pod) bool {
	pdbs, err := w.lister.PodDisruptionBudgets(pod.Namespace).List(labels.Everything())
	if err != nil {
		return true
	}
	for _, p := range pdbs {
		if selects(p, pod) && p.Status.DisruptionsAllowed < 1 {
			return false
		}
	}
	return true
}

func selects(pdb *policyv1.PodDisruptionBudget, pod *corev1.Pod) bool {
	if pdb.Spec.Selector == nil {
		return false
	}
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	return err == nil && !sel.Empty() && sel.Matches(labels.Set(pod.Labels))
}
