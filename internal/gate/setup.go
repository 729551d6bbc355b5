package gate

import (
	"context"

	"fmt"
	"log/slog"

	discoveryv1 "k8s.io/api/discovery/v1"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
	"github.com/lastcall-dev/lastcall/internal/auth"
)

// New builds a Server on a controller-runtime manager: its cache answers
// checks and its client writes. The informers the checks read are started
// with the manager rather than on the first call; until they have synced,
// the gate answers 503 NotSynced.
// Flagger's Canary kind is used only if the API server knows it now.
func New(mgr manager.Manager, authn *auth.Authenticator, authz *auth.Authorizer, opts Options) (*Server, error) {
	c := clients{
		Cache:     mgr.GetCache(),
		Synced:    mgr.GetCache().WaitForCacheSync,
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorderFor("lastcall-gate"),
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	log := opts.Logger
	informers := []client.Object{&v1alpha1.TerminationRun{}, &v1alpha1.Gate{}}
	_, err := mgr.GetRESTMapper().RESTMapping(CanaryGVK.GroupKind(), CanaryGVK.Version)
	switch {
	case err == nil:
		c.Canaries = &canaries{Cache: mgr.GetCache(), DefaultProvider: opts.MeshProvider}
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(CanaryGVK)
		// Where traffic goes: the apex Service's endpoints (provider
		// kubernetes) and Gateway API routes (gatewayapi), if installed.
		informers = append(informers, u, &discoveryv1.EndpointSlice{})
		if _, err := mgr.GetRESTMapper().RESTMapping(HTTPRouteGVK.GroupKind(), HTTPRouteGVK.Version); err == nil {
			r := &unstructured.Unstructured{}
			r.SetGroupVersionKind(HTTPRouteGVK)
			informers = append(informers, r)
			c.Routes = true
		}
	case meta.IsNoMatchError(err):
		log.Warn("Flagger's Canary kind is not installed: the gate starts no runs until it is (restart lastcall server after installing Flagger)")
	default:
		// Not knowing would silently skip the canary checks: fail instead.
		return nil, fmt.Errorf("look up Flagger's Canary kind: %w", err)
	}
	for _, obj := range informers {
		_, err := mgr.GetCache().GetInformer(context.Background(), obj, cache.BlockUntilSynced(false))
		if meta.IsNoMatchError(err) {
			// The gates.lastcall.dev CRD is missing: manual gates hold
			// (403) until it is applied.
			log.Error("CRD not installed; apply charts/lastcall/crds", "kind", fmt.Sprintf("%T", obj), "err", err)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("informer for %T: %w", obj, err)
		}
	}
	return newServer(c, authn, authz, opts), nil
}
