package gate

import (
	"cmp"
	"context"
	"fmt"
	"strings"

	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// HTTPRouteGVK is the Gateway API route Flagger's gatewayapi:v1 provider
// writes the primary and canary weights into.
var HTTPRouteGVK = schema.GroupVersionKind{Group: "gateway.networking.k8s.io", Version: "v1", Kind: "HTTPRoute"}

// DefaultMeshProvider is the provider assumed for a Canary without
// spec.provider when --flagger-mesh-provider is not given. Flagger's own
// default is istio, whose routing lastcall does not read; kubernetes is
// the one in which the old pods never stop taking traffic, so assuming it
// errs on the side of never draining a pod in service.
const DefaultMeshProvider = "kubernetes"

// routing is what a Canary says about where traffic goes (spec and status
// as the informer has them).
type routing struct {
	provider        string // spec.provider, else the server's default
	apex            string // the Service (and HTTPRoute) Flagger routes through
	iterations      int64  // spec.analysis.iterations: > 0 is Blue/Green (or A/B with match)
	abTesting       bool   // spec.analysis.match set
	maxWeight       int64  // the weight progressive traffic stops at (100 unless set lower)
	statusIteration int64
	canaryWeight    int64
}

func routingOf(u *unstructured.Unstructured, defaultProvider string) routing {
	s := func(path ...string) string { v, _, _ := unstructured.NestedString(u.Object, path...); return v }
	n := func(path ...string) int64 { v, _, _ := unstructured.NestedInt64(u.Object, path...); return v }
	rt := routing{provider: s("spec", "provider"), apex: s("spec", "service", "name"),
		iterations: n("spec", "analysis", "iterations"), maxWeight: n("spec", "analysis", "maxWeight"),
		statusIteration: n("status", "iterations"), canaryWeight: n("status", "canaryWeight")}
	if rt.provider == "" {
		rt.provider = defaultProvider
	}
	if rt.apex == "" {
		rt.apex = s("spec", "targetRef", "name")
	}
	if steps, _, _ := unstructured.NestedSlice(u.Object, "spec", "analysis", "stepWeights"); len(steps) > 0 {
		if last, ok := steps[len(steps)-1].(int64); ok {
			rt.maxWeight = min(last, 100)
		}
	}
	if rt.maxWeight <= 0 {
		rt.maxWeight = 100
	}
	if m, _, _ := unstructured.NestedSlice(u.Object, "spec", "analysis", "match"); len(m) > 0 {
		rt.abTesting = true
	}
	if rt.provider == "kubernetes" {
		rt.iterations = max(rt.iterations, 1) // Flagger runs Blue/Green for it whatever the spec says
	}
	return rt
}

// traffic is where a confirm-promotion call finds the old primary pods.
type traffic struct {
	// onPrimary: they carry traffic now, so they must not be drained now.
	onPrimary bool
	// never: they will carry it until Flagger replaces them, so no call
	// of this promotion is a safe moment to drain.
	never bool
	// why says so in words, with the evidence.
	why string
}

// mode names the strategy Flagger runs for the Canary.
func (rt routing) mode() string {
	switch {
	case rt.iterations > 0 && rt.abTesting:
		return "A/B testing"
	case rt.iterations > 0:
		return "Blue/Green"
	}
	return "progressive canary"
}

// decideTraffic applies what Flagger does (pkg/controller/scheduler.go) to
// the routing state read from the cluster: primaryWeight is the primary's
// total weight in the HTTPRoute (nil: not read), readyEndpoints the apex
// Service's ready endpoints (nil: not read).
func decideTraffic(rt routing, primaryWeight *int64, readyEndpoints *int) traffic {
	mode := rt.mode()
	switch {
	case rt.provider == "kubernetes":
		// The apex Service selects the primary pods until Promote rolls
		// the primary Deployment: there is no moment without traffic.
		if readyEndpoints != nil && *readyEndpoints == 0 {
			return traffic{why: fmt.Sprintf("Service %s has no ready endpoints", rt.apex)}
		}
		return traffic{onPrimary: true, never: true, why: fmt.Sprintf("provider kubernetes (%s): Service %s sends all traffic to the primary pods until Flagger replaces them", mode, rt.apex)}
	case rt.abTesting:
		// Only matching requests go to the canary; the rest stay on the
		// primary until it is replaced.
		return traffic{onPrimary: true, never: true, why: fmt.Sprintf("A/B testing: requests that do not match stay on the primary until Flagger replaces it (%s)", rt.provider)}
	case rt.iterations == 0 && rt.maxWeight < 100:
		return traffic{onPrimary: true, never: true, why: fmt.Sprintf("progressive canary with maxWeight %d: the primary keeps %d%% of the traffic until Flagger replaces it", rt.maxWeight, 100-rt.maxWeight)}
	case primaryWeight != nil:
		if *primaryWeight > 0 {
			return traffic{onPrimary: true, why: fmt.Sprintf("%s: HTTPRoute %s gives the primary weight %d", mode, rt.apex, *primaryWeight)}
		}
		return traffic{why: fmt.Sprintf("%s: HTTPRoute %s gives the primary weight 0", mode, rt.apex)}
	case rt.iterations > 0:
		// Flagger routes everything to the canary on the call after the
		// last iteration, and counts one more iteration.
		if rt.statusIteration > rt.iterations {
			return traffic{why: fmt.Sprintf("Blue/Green: all traffic routed to the canary (iteration %d of %d, from the Canary's status; %s routes are not read)", rt.statusIteration, rt.iterations, rt.provider)}
		}
		return traffic{onPrimary: true, why: fmt.Sprintf("Blue/Green: traffic is still on the primary (iteration %d of %d, from the Canary's status)", rt.statusIteration, rt.iterations)}
	case rt.canaryWeight >= 100:
		return traffic{why: "progressive canary at weight 100 (from the Canary's status)"}
	}
	return traffic{onPrimary: true, why: fmt.Sprintf("progressive canary at weight %d (from the Canary's status)", rt.canaryWeight)}
}

// traffic reads the routing state of the Canary's provider from the
// informers and decides.
func (s *Server) traffic(ctx context.Context, ns string, rt routing) (traffic, error) {
	switch {
	case rt.provider == "kubernetes":
		n, err := s.readyEndpoints(ctx, ns, rt.apex)
		if err != nil {
			return traffic{}, err
		}
		if n < 0 {
			return decideTraffic(rt, nil, nil), nil
		}
		return decideTraffic(rt, nil, &n), nil
	case strings.HasPrefix(rt.provider, "gatewayapi") && s.c.Routes:
		w, err := s.primaryWeight(ctx, ns, rt.apex)
		if err != nil {
			return traffic{}, err
		}
		return decideTraffic(rt, w, nil), nil
	}
	return decideTraffic(rt, nil, nil), nil
}

// readyEndpoints counts the ready endpoints of Service ns/name; -1 when it
// has no EndpointSlice at all (not made yet, or not seen yet): unknown,
// which the caller takes as "carries traffic".
func (s *Server) readyEndpoints(ctx context.Context, ns, name string) (int, error) {
	var slices discoveryv1.EndpointSliceList
	if err := s.c.Cache.List(ctx, &slices, client.InNamespace(ns), client.MatchingLabels{discoveryv1.LabelServiceName: name}); err != nil {
		return 0, fmt.Errorf("list EndpointSlices of %s/%s: %w", ns, name, err)
	}
	if len(slices.Items) == 0 {
		return -1, nil
	}
	n := 0
	for _, sl := range slices.Items {
		for _, e := range sl.Endpoints {
			if e.Conditions.Ready == nil || *e.Conditions.Ready {
				n++
			}
		}
	}
	return n, nil
}

// primaryWeight sums the weights of the HTTPRoute's backends that are the
// primary Service, in every rule; nil when Flagger has not made the route
// yet (then the primary is taken to carry everything).
func (s *Server) primaryWeight(ctx context.Context, ns, apex string) (*int64, error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(HTTPRouteGVK)
	err := s.c.Cache.Get(ctx, client.ObjectKey{Namespace: ns, Name: apex}, u, noCopy)
	switch {
	case apierrors.IsNotFound(err):
		w := int64(100)
		return &w, nil
	case err != nil:
		return nil, fmt.Errorf("read HTTPRoute %s/%s: %w", ns, apex, err)
	}
	var total int64
	rules, _, _ := unstructured.NestedSlice(u.Object, "spec", "rules")
	for _, r := range rules {
		rule, _ := r.(map[string]any)
		refs, _, _ := unstructured.NestedSlice(rule, "backendRefs")
		for _, b := range refs {
			ref, _ := b.(map[string]any)
			if name, _, _ := unstructured.NestedString(ref, "name"); name != apex+"-primary" {
				continue
			}
			w, found, _ := unstructured.NestedInt64(ref, "weight")
			if !found {
				w = 1 // the Gateway API default
			}
			total += w
		}
	}
	return &total, nil
}

// NeverDrains says whether, in the mode a Canary's spec gives Flagger, the
// old primary pods carry traffic at every confirm-promotion call until they
// are replaced, so that the gate never runs a draining policy for it, and
// why. defaultProvider stands for Flagger's -mesh-provider when the Canary
// has no spec.provider. It reads only the spec: `lastcall lint` uses it on
// manifests.
func NeverDrains(canary *unstructured.Unstructured, defaultProvider string) (bool, string) {
	t := decideTraffic(routingOf(canary, cmp.Or(defaultProvider, DefaultMeshProvider)), nil, nil)
	return t.never, t.why
}
