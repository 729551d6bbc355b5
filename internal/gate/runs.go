package gate

import (
	"cmp"
	"context"
	"fmt"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
	"github.com/lastcall-dev/lastcall/internal/run"
)

// Labels on gate runs, for `kubectl get terminationruns -l`.
const (
	LabelCanary = "lastcall.dev/canary"
	LabelHook   = "lastcall.dev/hook"
)

// RunName is the name of the gate run for one canary revision (checksum),
// hook type and explicit policy: the same for every call, replica and
// restart, so that creating it twice fails instead of starting a second run.
func RunName(p Payload, hook HookType) string {
	return run.DeterministicName(runNamePrefix(p), runKey(p, hook)...)
}

func runNamePrefix(p Payload) string { return p.Name + "-gate" }

func runKey(p Payload, hook HookType) []string {
	return []string{p.Namespace, p.Name, p.Checksum, string(hook), p.Metadata[MetaPolicy]}
}

// notDrainedError: the old primary pods still carry traffic, so the drain
// policy does not run at this call; the gate passes (see passUndrained).
type notDrainedError struct {
	policy string
	t      traffic
}

func (e *notDrainedError) Error() string { return e.t.why }

// blockedError says why no run can be started; the gate holds and tells
// Flagger what to fix.
type blockedError struct{ msg string }

func (e *blockedError) Error() string { return e.msg }

func blocked(format string, args ...any) error {
	return &blockedError{msg: fmt.Sprintf(format, args...)}
}

// startRun creates the gate run for a revision from the policy that covers
// the canary's primary pods, or returns the run another call created first.
func (s *Server) startRun(ctx context.Context, p Payload, hook HookType) (*v1alpha1.TerminationRun, error) {
	rev, err := s.checkRevision(ctx, p, hook)
	if err != nil {
		return nil, err
	}
	if err := s.oneActiveRun(ctx, p, hook); err != nil {
		return nil, err
	}
	policy, err := s.resolvePolicy(ctx, p, rev.kind, rev.target)
	if err != nil {
		return nil, err
	}
	if hook == HookConfirmPromotion && policy.Spec.Gate.Drains() {
		t, err := s.traffic(ctx, p.Namespace, rev.routing)
		if err != nil {
			return nil, err
		}
		if t.onPrimary {
			return nil, &notDrainedError{policy: policy.Name, t: t}
		}
	}
	pods, err := run.PolicyPods(ctx, s.c.Cache, policy)
	if err != nil {
		return nil, blocked("policy %s: %v", policy.Name, err)
	}
	reason := fmt.Sprintf("Flagger %s hook of canary %s/%s, revision %s", hook, p.Namespace, p.Name, p.Checksum)
	req := run.Request{Policy: policy, Pods: pods, Key: runKey(p, hook), NamePrefix: runNamePrefix(p), TTL: s.opts.RunTTL,
		Trigger: v1alpha1.Trigger{Source: v1alpha1.TriggerGate, Reason: reason,
			Canary: &v1alpha1.CanaryRef{Name: p.Name, Namespace: p.Namespace, Checksum: p.Checksum, HookType: string(hook)}},
		Labels: map[string]string{LabelHook: string(hook)}}
	if len(validation.IsValidLabelValue(p.Name)) == 0 {
		req.Labels[LabelCanary] = p.Name
	}
	r, created, err := s.starter.Start(ctx, req)
	if err != nil || !created {
		return r, err
	}
	s.metrics.runs.WithLabelValues(string(hook)).Inc()
	s.log.Info("gate run started", "namespace", r.Namespace, "run", r.Name, "canary", p.Name, "hook", string(hook), "checksum", p.Checksum, "pods", len(pods))
	return r, nil
}

// resolvePolicy finds the policy of a gate run among those that cover the
// primary workload (run.Covers: a targetRef to it, or a selector matching
// its pods): the one metadata.policy names (it only narrows the choice: a
// policy that does not cover the canary is refused), else the only one.
func (s *Server) resolvePolicy(ctx context.Context, p Payload, kind, target string) (*v1alpha1.TerminationPolicy, error) {
	primary := target + "-primary"
	_, podLabels, err := run.WorkloadTemplate(ctx, s.c.Cache, p.Namespace, cmp.Or(kind, "Deployment"), primary)
	switch {
	case apierrors.IsNotFound(err):
		return nil, blocked("the primary workload %s/%s does not exist (yet): Flagger creates it when it initializes the canary", p.Namespace, primary)
	case err != nil:
		return nil, fmt.Errorf("read %s/%s: %w", p.Namespace, primary, err)
	}
	matches, err := run.CoveringPolicies(ctx, s.c.Cache, p.Namespace, run.Covered{Kind: kind, Name: primary, Labels: podLabels}, nil)
	if err != nil {
		return nil, err
	}
	if name := p.Metadata[MetaPolicy]; name != "" {
		for _, m := range matches {
			if m.Name == name {
				return m, nil
			}
		}
		return nil, blocked("metadata.policy names TerminationPolicy %s, which does not cover %s/%s (a targetRef to it or a selector matching its pods)", name, p.Namespace, primary)
	}
	switch len(matches) {
	case 0:
		return nil, blocked("no TerminationPolicy in %s covers %s (a targetRef to it or a selector matching its pods): create one", p.Namespace, primary)
	case 1:
		return matches[0], nil
	}
	names := make([]string, len(matches))
	for i, m := range matches {
		names[i] = m.Name
	}
	return nil, blocked("policies %s all cover %s: set metadata.policy", strings.Join(names, ", "), primary)
}

// oneActiveRun refuses to start a second run for a canary and hook type
// while the run of an earlier revision has not ended: a flood of checksums
// can never start more than one, and the old run is never cut short (its
// drain may be half done). Flagger calls again each interval; the new
// revision's run starts once the old one is complete.
func (s *Server) oneActiveRun(ctx context.Context, p Payload, hook HookType) error {
	runs, err := GateRuns(ctx, s.c.Cache, p.Namespace, p.Name)
	if err != nil {
		return err
	}
	for _, r := range runs {
		c := r.Spec.Trigger.Canary
		if c.HookType == string(hook) && c.Checksum != p.Checksum && !meta.IsStatusConditionTrue(r.Status.Conditions, v1alpha1.ConditionComplete) {
			return blocked("run %s for revision %s of canary %s/%s has not ended; the run for %s starts once it has", r.Name, c.Checksum, p.Namespace, p.Name, p.Checksum)
		}
	}
	return nil
}

// FindRun returns the gate run an override applies to: metadata.run when
// set; the run of the payload's checksum when it has one; else the newest
// gate run of the canary for the hook type.
func FindRun(ctx context.Context, r client.Reader, p Payload, hook HookType) (*v1alpha1.TerminationRun, error) {
	var out v1alpha1.TerminationRun
	if name := p.Metadata[MetaRun]; name != "" || p.Checksum != "" {
		if name == "" {
			name = RunName(p, hook)
		}
		if err := r.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: name}, &out); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, fmt.Errorf("%w: no gate run %s in %s", errNotFound, name, p.Namespace)
			}
			return nil, err
		}
		return &out, nil
	}
	runs, err := GateRuns(ctx, r, p.Namespace, p.Name)
	if err != nil {
		return nil, err
	}
	for i := range runs {
		if runs[i].Spec.Trigger.Canary.HookType == string(hook) {
			return &runs[i], nil
		}
	}
	return nil, fmt.Errorf("%w: canary %s/%s has no %s gate run", errNotFound, p.Namespace, p.Name, hook)
}

// GateRuns lists the gate runs of a canary (all canaries when canary is
// empty) in a namespace, newest first.
func GateRuns(ctx context.Context, r client.Reader, namespace, canary string) ([]v1alpha1.TerminationRun, error) {
	var list v1alpha1.TerminationRunList
	if err := r.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		return nil, fmt.Errorf("list runs in %s: %w", namespace, err)
	}
	var out []v1alpha1.TerminationRun
	for _, run := range list.Items {
		c := run.Spec.Trigger.Canary
		if run.Spec.Trigger.Source == v1alpha1.TriggerGate && c != nil && c.Namespace == namespace && (canary == "" || c.Name == canary) {
			out = append(out, run)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		ti, tj := out[i].CreationTimestamp, out[j].CreationTimestamp
		if !ti.Equal(&tj) {
			return tj.Before(&ti)
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}
