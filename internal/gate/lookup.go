package gate

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// lookup reads cached objects of one kind by namespace and name. The
// objects are shared with the cache: callers only read them.
type lookup[T any] interface {
	// get returns nil, nil when there is no such object.
	get(ctx context.Context, namespace, name string) (*T, error)
}

// indexerLookup reads straight from a shared informer's indexer: no copy
// and no allocation but the key, which matters on the check endpoints.
type indexerLookup[T any] struct{ indexer toolscache.Indexer }

func (l indexerLookup[T]) get(_ context.Context, namespace, name string) (*T, error) {
	obj, ok, err := l.indexer.GetByKey(namespace + "/" + name)
	if err != nil || !ok {
		return nil, err
	}
	t, ok := obj.(*T)
	if !ok {
		return nil, fmt.Errorf("cache holds a %T, want a %T", obj, new(T))
	}
	return t, nil
}

// readerLookup reads through a client.Reader; it is used when the cache's
// informer does not expose its indexer (or does not exist).
type readerLookup[T any, PT interface {
	*T
	client.Object
}] struct{ r client.Reader }

func (l readerLookup[T, PT]) get(ctx context.Context, namespace, name string) (*T, error) {
	obj := PT(new(T))
	err := l.r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, obj, noCopy)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return (*T)(obj), nil
}

// lookupFor returns an indexer lookup on the manager's informer for the
// kind, or a reader lookup on its cache when there is none to use.
func lookupFor[T any, PT interface {
	*T
	client.Object
}](mgr manager.Manager) lookup[T] {
	inf, err := mgr.GetCache().GetInformer(context.Background(), PT(new(T)), cache.BlockUntilSynced(false))
	if err == nil {
		if sii, ok := inf.(toolscache.SharedIndexInformer); ok {
			return indexerLookup[T]{indexer: sii.GetIndexer()}
		}
	}
	return readerLookup[T, PT]{r: mgr.GetCache()}
}
