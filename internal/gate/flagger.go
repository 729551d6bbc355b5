package gate

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
	"github.com/lastcall-dev/lastcall/internal/auth"
)

// flaggerGate answers POST /flagger/gate: 200 once the revision's run lets
// the canary go on, 403 with an Answer while it does not. The first call of
// a revision creates the run; every later call, on any replica, is answered
// from the informer cache.
func (s *Server) flaggerGate(w http.ResponseWriter, r *http.Request) (string, string) {
	p, err := s.readPayload(w, r)
	if err != nil {
		return s.fail(w, r, err), hookNone
	}
	hook, err := p.Hook(HookConfirmPromotion)
	if err != nil {
		return s.fail(w, r, err), hookNone
	}
	ctx := r.Context()
	key := client.ObjectKey{Namespace: p.Namespace, Name: RunName(p, hook)}
	run, err := cached[v1alpha1.TerminationRun](ctx, s.c.Cache, key.Namespace, key.Name)
	if err == nil && run == nil {
		run, err = s.startRun(ctx, p, hook)
	}
	var notDrained *notDrainedError
	if errors.As(err, &notDrained) {
		return s.passUndrained(ctx, w, p, notDrained), string(hook)
	}
	if err != nil {
		return s.hold(w, r, err), string(hook)
	}
	return s.answer(ctx, w, run), string(hook)
}

// answer writes the gate's decision for a run.
func (s *Server) answer(ctx context.Context, w http.ResponseWriter, run *v1alpha1.TerminationRun) string {
	open, a := Decide(run, s.onFailure(ctx, run))
	// The check takes no token: its answer names no pod address (step
	// messages carry the URLs they called). `lastcall gate status` and the
	// run itself show them to those who may read runs.
	a.Message = redactAddresses(a.Message)
	if open {
		writeJSON(w, http.StatusOK, a)
		return resultOpen
	}
	writeJSON(w, http.StatusForbidden, a)
	return resultClosed
}

// onFailure reads the policy's gate.onFailure, only for a failed run; a
// policy that is gone holds.
func (s *Server) onFailure(ctx context.Context, run *v1alpha1.TerminationRun) v1alpha1.GateFailureAction {
	if run.Status.Phase != v1alpha1.RunFailed {
		return v1alpha1.GateHold
	}
	var pol v1alpha1.TerminationPolicy
	if err := s.c.Cache.Get(ctx, client.ObjectKey{Namespace: run.Namespace, Name: run.Spec.PolicyRef.Name}, &pol, noCopy); err != nil {
		return v1alpha1.GateHold
	}
	return pol.Spec.Gate.OnFailure
}

// hold answers 403 when no run could be found or started: never a 5xx,
// which Flagger retries at once.
func (s *Server) hold(w http.ResponseWriter, r *http.Request, err error) string {
	a := Answer{Phase: PhaseNoRun, Message: err.Error()}
	var b *blockedError
	if !errors.As(err, &b) {
		s.log.Error("gate run", "method", r.Method, "path", r.URL.Path, "err", err)
		a.Message = "cannot start the gate run now; lastcall's log has the cause"
	}
	writeJSON(w, http.StatusForbidden, a)
	if b != nil {
		return resultClosed
	}
	return resultError
}

// passUndrained answers 200 without a run: the old primary pods carry
// traffic, and draining them would drop it. Before a Blue/Green switch the
// drain comes at the next call, once Flagger has routed everything to the
// canary. Where that moment never comes, the pods are left to leave through
// their own preStop hook as Flagger replaces them, and a Warning Event on
// the Canary says so.
func (s *Server) passUndrained(ctx context.Context, w http.ResponseWriter, p Payload, e *notDrainedError) string {
	a := Answer{Phase: PhaseDeferred, Message: fmt.Sprintf("not draining yet: %s; policy %s runs at the call where the primary carries no traffic", e.t.why, e.policy)}
	reason, typ := ReasonDrainDeferred, "Normal"
	if e.t.never {
		a.Phase = PhaseNotDrained
		a.Message = fmt.Sprintf("not draining the old primary pods: %s. Policy %s drains traffic, so it does not run; the pods leave through their preStop hook (lastcall prestop) as Flagger replaces them (docs/gate.md)", e.t.why, e.policy)
		reason, typ = ReasonDrainSkipped, "Warning"
	}
	s.metrics.undrained.WithLabelValues(a.Phase).Inc()
	if ref, err := s.canaryRef(ctx, p); err == nil {
		s.c.Recorder.Event(ref, typ, reason, short(a.Message))
	}
	writeJSON(w, http.StatusOK, a)
	return resultOpen
}

// override answers POST /flagger/gate/open and /flagger/gate/close: it
// records who forced the gate's answer on the revision's run, and answers
// with the gate's new decision.
func (s *Server) override(open bool) handlerFunc {
	action := v1alpha1.GateOverrideClosed
	if open {
		action = v1alpha1.GateOverrideOpen
	}
	return func(w http.ResponseWriter, r *http.Request) (string, string) {
		u, p, err := s.control(w, r)
		if err != nil {
			return s.fail(w, r, err), hookNone
		}
		hook, err := p.Hook(HookConfirmPromotion)
		if err != nil {
			return s.fail(w, r, err), hookNone
		}
		ctx := r.Context()
		// From the API server: a run created a moment ago, by this replica
		// or another, may not be in the cache yet.
		found, err := FindRun(ctx, s.c.APIReader, p, hook)
		if err != nil {
			return s.fail(w, r, err), string(hook)
		}
		// The caller was authorised for the canary the body names; a run
		// named by metadata.run must be that canary's, or the override
		// would reach another canary's promotion.
		if c := found.Spec.Trigger.Canary; c == nil || c.Name != p.Name || c.Namespace != p.Namespace {
			return s.fail(w, r, fmt.Errorf("%w: run %s is not a gate run of canary %s/%s", auth.ErrForbidden, found.Name, p.Namespace, p.Name)), string(hook)
		}
		run, err := s.store.OverrideRun(ctx, client.ObjectKeyFromObject(found), action, u.Name)
		if err != nil {
			return s.fail(w, r, err), string(hook)
		}
		s.awaitCache(ctx, run, &v1alpha1.TerminationRun{})
		s.log.Info("gate overridden", "namespace", run.Namespace, "run", run.Name, "canary", p.Name, "action", string(action), "by", u.Name)
		_, a := Decide(run, s.onFailure(ctx, run))
		writeJSON(w, http.StatusOK, a)
		return resultAccepted, string(hook)
	}
}
