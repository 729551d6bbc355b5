package gate

import (
	"context"
	"net/http"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
)

// check answers /gate/check and /rollback/check as flagger-loadtester does:
// 200 "Approved" when the switch is open, 403 "Forbidden" otherwise,
// including when the canary has no Gate yet.
func (s *Server) check(sw Switch) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) (string, string) {
		p, err := s.readPayload(w, r)
		if err != nil {
			return s.fail(w, r, err), hookNone
		}
		hook := hookLabel(p)
		g, err := cached[v1alpha1.Gate](r.Context(), s.c.Cache, p.Namespace, p.Name)
		if err != nil {
			// Never a 5xx to Flagger (it retries those at once): hold.
			s.log.Error("read gate", "namespace", p.Namespace, "canary", p.Name, "err", err)
			writeText(w, http.StatusForbidden, "Forbidden")
			return resultError, hook
		}
		if g != nil && sw.Of(&g.Spec).IsOpen() {
			writeText(w, http.StatusOK, "Approved")
			return resultOpen, hook
		}
		writeText(w, http.StatusForbidden, "Forbidden")
		return resultClosed, hook
	}
}

// set answers /gate/open, /gate/close, /rollback/open and /rollback/close:
// 202 with no body once the change is stored and this replica's cache shows
// it.
func (s *Server) set(sw Switch, open bool) handlerFunc {
	state := v1alpha1.GateStateClosed
	if open {
		state = v1alpha1.GateStateOpen
	}
	return func(w http.ResponseWriter, r *http.Request) (string, string) {
		u, p, err := s.control(w, r)
		if err != nil {
			return s.fail(w, r, err), hookNone
		}
		g, err := s.store.SetSwitch(r.Context(), p.nn(), sw, state, u.Name)
		if err != nil {
			return s.fail(w, r, err), hookLabel(p)
		}
		if g != nil {
			s.awaitCache(r.Context(), g, &v1alpha1.Gate{})
		}
		s.log.Info("gate changed", "namespace", p.Namespace, "canary", p.Name, "switch", string(sw), "state", string(state), "by", u.Name)
		writeText(w, http.StatusAccepted, "")
		return resultAccepted, hookLabel(p)
	}
}

// awaitCache waits, within CacheWait, until this replica's cache holds obj
// at its generation or later. A timeout is logged, not failed: the write is
// stored and every cache converges on it.
func (s *Server) awaitCache(ctx context.Context, obj, into client.Object) {
	key := client.ObjectKeyFromObject(obj)
	err := wait.PollUntilContextTimeout(ctx, 2*time.Millisecond, s.opts.CacheWait, true, func(ctx context.Context) (bool, error) {
		if err := s.c.Cache.Get(ctx, key, into, noCopy); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		return into.GetGeneration() >= obj.GetGeneration(), nil
	})
	if err != nil {
		s.log.Warn("cache did not show a write in time", "object", key.String(), "err", err)
	}
}
