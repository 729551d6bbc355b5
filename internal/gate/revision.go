package gate

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"

	"github.com/davecgh/go-spew/spew"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// FlaggerChecksum is the revision checksum Flagger puts in every webhook
// payload (pkg/controller/webhook.go, canaryChecksum): an FNV-32a hash of a
// spew dump of the Canary's status.trackedConfigs and status.lastAppliedSpec,
// encoded with apimachinery's SafeEncodeString. The gate recomputes it from
// the Canary so that only Flagger's calls for the revision it is rolling out
// can start a run; the e2e test checks it against the real Flagger's.
func FlaggerChecksum(trackedConfigs *map[string]string, lastAppliedSpec string) string {
	// The anonymous struct's shape is part of the dump: it must stay
	// Flagger's, field for field.
	fields := struct {
		TrackedConfigs  *map[string]string
		LastAppliedSpec string
	}{trackedConfigs, lastAppliedSpec}
	h := fnv.New32a()
	printer := spew.ConfigState{Indent: " ", SortKeys: true, DisableMethods: true, SpewKeys: true}
	printer.Fprintf(h, "%#v", fields)
	return rand.SafeEncodeString(fmt.Sprint(h.Sum32()))
}

// hookPhases are the Canary phases in which Flagger calls a hook type
// (pkg/controller/scheduler.go): confirm-promotion once the analysis is
// done, rollback while the canary is analysed or waits. Other hook types
// are called around a rollout in any phase but a deleted canary's.
var hookPhases = map[HookType][]string{
	HookConfirmPromotion: {"Progressing", "WaitingPromotion"},
	HookRollback:         {"Progressing", "Waiting", "WaitingPromotion"},
}

var deadPhases = []string{"Terminating", "Terminated"}

// canaryRevision is what a gate call is checked against: the Canary as the
// informer has it.
type canaryRevision struct {
	phase, checksum string
	kind, target    string
	routing         routing
}

// revision reads the Canary ns/name from the informer.
func (c *canaries) revision(ctx context.Context, ns, name string) (*canaryRevision, error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(CanaryGVK)
	if err := c.Cache.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, u); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("%w: %s/%s", errNoCanary, ns, name)
		}
		return nil, fmt.Errorf("read canary %s/%s: %w", ns, name, err)
	}
	r := &canaryRevision{}
	r.phase, _, _ = unstructured.NestedString(u.Object, "status", "phase")
	r.kind, _, _ = unstructured.NestedString(u.Object, "spec", "targetRef", "kind")
	r.target, _, _ = unstructured.NestedString(u.Object, "spec", "targetRef", "name")
	applied, _, _ := unstructured.NestedString(u.Object, "status", "lastAppliedSpec")
	var tracked *map[string]string
	if m, found, err := unstructured.NestedStringMap(u.Object, "status", "trackedConfigs"); err == nil && found {
		tracked = &m
	}
	r.checksum = FlaggerChecksum(tracked, applied)
	r.routing = routingOf(u, cmp.Or(c.DefaultProvider, DefaultMeshProvider))
	if r.target == "" {
		return nil, fmt.Errorf("canary %s/%s has no spec.targetRef.name", ns, name)
	}
	return r, nil
}

// checkRevision refuses (with a blockedError, so the gate holds and starts
// nothing) a call that is not Flagger calling hook for the revision it is
// rolling out now: the Canary must exist, be in a phase in which Flagger
// calls that hook, and carry the payload's checksum. It reads only the
// informer: an unauthenticated caller costs no API request. It returns the
// canary's target workload.
func (s *Server) checkRevision(ctx context.Context, p Payload, hook HookType) (*canaryRevision, error) {
	if s.c.Canaries == nil {
		return nil, blocked("Flagger's Canary kind is not installed: the gate starts runs only for canaries Flagger is rolling out")
	}
	rev, err := s.c.Canaries.revision(ctx, p.Namespace, p.Name)
	if err != nil {
		if errors.Is(err, errNoCanary) {
			return nil, blocked("%v: the gate starts runs only for existing canaries", err)
		}
		return nil, err
	}
	if phases, ok := hookPhases[hook]; ok && !slices.Contains(phases, rev.phase) {
		return nil, blocked("canary %s/%s is %s: Flagger calls %s hooks only when it is %v", p.Namespace, p.Name, phaseOrNone(rev.phase), hook, phases)
	}
	if slices.Contains(deadPhases, rev.phase) {
		return nil, blocked("canary %s/%s is %s", p.Namespace, p.Name, rev.phase)
	}
	if p.Checksum != rev.checksum {
		return nil, blocked("checksum %q is not the revision canary %s/%s is rolling out", p.Checksum, p.Namespace, p.Name)
	}
	if t := p.Metadata[MetaTarget]; t != "" && t != rev.target {
		return nil, blocked("metadata.target %q is not canary %s/%s's target %s", t, p.Namespace, p.Name, rev.target)
	}
	return rev, nil
}

func phaseOrNone(p string) string {
	if p == "" {
		return "not initialized"
	}
	return p
}
