package run

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
)

// Waiter follows runs for those outside the server that wait for them (the
// node agent, `lastcall run watch`). It lists, then watches, through an
// informer (client-go's watchtools.UntilWithSync): a watch the API server
// ends, or an outage, is followed by a relist, and what changed meanwhile
// arrives as events; nothing is missed and nothing here reconnects by hand.
// Inside `lastcall server` the gate reads runs from the manager's cache.
type Waiter struct {
	Client client.WithWatch
}

// Selection says which objects to follow: a namespace ("" for all), and a
// label or a name selector.
type Selection struct {
	Namespace string
	Labels    labels.Selector
	Name      string
}

// Follow calls seen with the current state of every selected run, then
// with each change (deleted true when the run is gone), until seen returns
// true (nil) or ctx ends (ctx's error).
func (w *Waiter) Follow(ctx context.Context, sel Selection, seen func(run *v1alpha1.TerminationRun, deleted bool) (done bool)) error {
	return follow(ctx, w.Client, sel, func() client.ObjectList { return &v1alpha1.TerminationRunList{} }, &v1alpha1.TerminationRun{}, nil,
		func(obj runtime.Object, deleted bool) bool {
			run, ok := obj.(*v1alpha1.TerminationRun)
			return ok && seen(run, deleted)
		})
}

// follow is Follow for any kind: newList makes an empty list of it (with
// its kind set, for unstructured objects), obj is one of it. synced, when
// set, sees the store once the first list is in: true ends follow there
// (what is looked for is not there at all, say).
func follow(ctx context.Context, c client.WithWatch, sel Selection, newList func() client.ObjectList, obj runtime.Object,
	synced func(cache.Store) bool, seen func(obj runtime.Object, deleted bool) bool) error {
	opts := func(o metav1.ListOptions) *client.ListOptions {
		lo := &client.ListOptions{Namespace: sel.Namespace, LabelSelector: sel.Labels, Raw: &o}
		if sel.Name != "" {
			lo.FieldSelector = fields.OneTermEqualSelector("metadata.name", sel.Name)
		}
		return lo
	}
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			list := newList()
			err := c.List(ctx, list, opts(o))
			return list, err
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return c.Watch(ctx, newList(), opts(o))
		},
	}
	var pre watchtools.PreconditionFunc
	if synced != nil {
		pre = func(store cache.Store) (bool, error) { return synced(store), nil }
	}
	_, err := watchtools.UntilWithSync(ctx, lw, obj, pre, func(ev watch.Event) (bool, error) {
		return seen(ev.Object, ev.Type == watch.Deleted), nil
	})
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}
