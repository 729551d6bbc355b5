package gate

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// CanaryGVK is Flagger's Canary kind.
var CanaryGVK = schema.GroupVersionKind{Group: "flagger.app", Version: "v1beta1", Kind: "Canary"}

// canaries reads Flagger's Canary objects from an informer: for Events,
// and to check that a gate call is Flagger's for the revision it rolls out.
type canaries struct {
	Cache client.Reader
	// DefaultProvider is Flagger's -mesh-provider, for Canaries without
	// spec.provider.
	DefaultProvider string
}

// errNoCanary answers 404 on /flagger/event and holds /flagger/gate.
var errNoCanary = fmt.Errorf("canary %w", errNotFound)

// Ref returns an object reference to the canary, with its UID so that
// `kubectl describe canary` lists Events recorded on it.
func (c *canaries) Ref(ctx context.Context, namespace, name string) (*corev1.ObjectReference, error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(CanaryGVK)
	if err := c.Cache.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, u); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("%w: %s/%s", errNoCanary, namespace, name)
		}
		return nil, fmt.Errorf("read canary %s/%s: %w", namespace, name, err)
	}
	return &corev1.ObjectReference{APIVersion: CanaryGVK.GroupVersion().String(), Kind: CanaryGVK.Kind,
		Namespace: namespace, Name: name, UID: u.GetUID(), ResourceVersion: u.GetResourceVersion()}, nil
}

// canaryRef is the reference Events are recorded on: the Canary with its
// UID when Flagger's CRD is known and the canary is cached, else a
// reference by name, which `kubectl get events` still shows.
func (s *Server) canaryRef(ctx context.Context, p Payload) (*corev1.ObjectReference, error) {
	if s.c.Canaries != nil {
		return s.c.Canaries.Ref(ctx, p.Namespace, p.Name)
	}
	return &corev1.ObjectReference{APIVersion: CanaryGVK.GroupVersion().String(), Kind: CanaryGVK.Kind,
		Namespace: p.Namespace, Name: p.Name}, nil
}
