package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"k8s.io/utils/clock"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
	"github.com/lastcall-dev/lastcall/internal/run"
	"github.com/lastcall-dev/lastcall/internal/state"
)

// StateConfig configures the state service.
type StateConfig struct {
	// URL is a gocloud.dev/blob URL: file://, s3:// (or mem:// for tests).
	URL            string
	MaxObjectBytes int64
	MaxSaveBytes   int64
	KeepVersions   int
	Retention      time.Duration
	PruneInterval  time.Duration
	// NamespaceMaxBytes and NamespaceMaxKeys bound one namespace's state.
	NamespaceMaxBytes int64
	NamespaceMaxKeys  int
}

// DefaultStateURL is where a single replica keeps state on its volume.
const DefaultStateURL = "file:///var/lib/lastcall/state"

// setupState opens the store and mounts the state API. Every replica serves
// it; pruning runs on the leader only, so that two replicas sharing a bucket
// do not race over the same deletions.
func (s *Server) setupState(ctx context.Context) (*state.Store, error) {
	if strings.HasPrefix(s.cfg.State.URL, "file://") && s.cfg.LeaderElect {
		// With leader election the server expects replicas; a file:// store
		// tolerates one. The Lease is held until Run ends.
		lctx, cancel := context.WithCancel(context.Background())
		if err := claimStoreLease(lctx, s.Kube, s.cfg.LeaderElectionNamespace, s.log); err != nil {
			cancel()
			return nil, err
		}
		s.releaseStore = cancel
	}
	store, err := state.OpenStore(ctx, s.cfg.State.URL)
	if err != nil {
		s.releaseStore()
		return nil, err
	}
	srv := state.NewServer(store, s.Authn, s.Authz, state.Options{
		MaxObjectBytes:    s.cfg.State.MaxObjectBytes,
		MaxSaveBytes:      s.cfg.State.MaxSaveBytes,
		KeepVersions:      s.cfg.State.KeepVersions,
		Retention:         s.cfg.State.Retention,
		PruneInterval:     s.cfg.State.PruneInterval,
		NamespaceMaxBytes: s.cfg.State.NamespaceMaxBytes,
		NamespaceMaxKeys:  s.cfg.State.NamespaceMaxKeys,
		Logger:            s.log.With("component", "state"),
		Registerer:        s.registry,
	})
	srv.Register(s.muxFor("state", s.cfg.stateAddr(), stateReadTimeout))
	s.stateSrv = srv
	s.terms.add("prune", srv.Run)
	return store, nil
}

// runActions are the built-in step kinds plus saveState, which writes to
// store in-process under the API's size limit and retention.
func (s *Server) runActions(store *state.Store, hc *http.Client) run.Actions {
	clk := clock.RealClock{}
	actions := run.DefaultActions(s.mgr, hc, clk)
	actions[v1alpha1.StepSaveState] = run.SaveStateAction{Client: hc, Store: &stepStore{
		store:  store,
		put:    s.stateSrv.Put,
		max:    s.cfg.State.MaxObjectBytes,
		policy: state.Policy{Keep: s.cfg.State.KeepVersions, MaxAge: s.cfg.State.Retention},
		clock:  clk,
		log:    s.log.With("component", "state"),
	}}
	return actions
}

// stepStore adapts the state store to run.StateStore.
type stepStore struct {
	store *state.Store
	// put writes within the namespace quota (the state API's Put).
	put    func(context.Context, state.PutOptions, io.Reader, int64) (state.Meta, error)
	max    int64
	policy state.Policy
	clock  clock.PassiveClock
	log    *slog.Logger
}

// errStateTooLarge ends a pod's answer that crosses the object size limit.
var errStateTooLarge = errors.New("state larger than the limit")

// PutState implements run.StateStore. Errors that a retry cannot fix (a key
// template rendering an invalid key, a payload over the limit) are marked
// permanent; the rest (the pod's answer cut short, storage) are retried by
// the step's policy.
func (w *stepStore) PutState(ctx context.Context, in run.StateToSave) (run.SavedState, error) {
	body := &limitReader{r: in.Body, left: w.max}
	m, err := w.put(ctx, state.PutOptions{
		Namespace:   in.Namespace,
		Key:         in.Key,
		Pod:         in.Pod,
		ContentType: in.ContentType,
		SHA256:      in.SHA256,
		Created:     w.clock.Now(),
	}, body, -1)
	switch {
	case body.over:
		return run.SavedState{}, fmt.Errorf("%w: %w of %d bytes (--state-max-object-bytes)", run.ErrPermanent, errStateTooLarge, w.max)
	case errors.Is(err, state.ErrInvalidKey), errors.Is(err, state.ErrInvalidNamespace),
		errors.Is(err, state.ErrInvalidPod), errors.Is(err, state.ErrInvalidChecksum), errors.Is(err, state.ErrQuotaExceeded):
		return run.SavedState{}, fmt.Errorf("%w: %w", run.ErrPermanent, err)
	case err != nil:
		return run.SavedState{}, err
	}
	// Retention as after an API write; a failure here loses nothing.
	if _, err := w.store.Prune(ctx, m.Namespace, m.Key, w.policy, w.clock.Now()); err != nil {
		w.log.Error("prune state key", "namespace", m.Namespace, "key", m.Key, "err", err)
	}
	return run.SavedState{Version: m.ID, Size: m.Size, SHA256: m.SHA256}, nil
}

// limitReader fails the read that would go past left bytes.
type limitReader struct {
	r    io.Reader
	left int64
	over bool
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		// One byte more tells a body of exactly the limit from a longer one.
		var one [1]byte
		n, err := l.r.Read(one[:])
		if n > 0 {
			l.over = true
			return 0, errStateTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}
