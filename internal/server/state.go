package server

import (
	"context"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/manager"

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
}

// DefaultStateURL is where a single replica keeps state on its volume.
const DefaultStateURL = "file:///var/lib/lastcall/state"

// setupState opens the store and mounts the state API. Every replica serves
// it; pruning runs on the leader only, so that two replicas sharing a bucket
// do not race over the same deletions.
func (s *Server) setupState(ctx context.Context) (*state.Store, error) {
	store, err := state.OpenStore(ctx, s.cfg.State.URL)
	if err != nil {
		return nil, err
	}
	srv := state.NewServer(store, s.Authn, s.Authz, state.Options{
		MaxObjectBytes: s.cfg.State.MaxObjectBytes,
		MaxSaveBytes:   s.cfg.State.MaxSaveBytes,
		KeepVersions:   s.cfg.State.KeepVersions,
		Retention:      s.cfg.State.Retention,
		PruneInterval:  s.cfg.State.PruneInterval,
		Logger:         s.log.With("component", "state"),
		Registerer:     s.registry,
	})
	srv.Register(s.Mux)
	if err := s.mgr.Add(manager.RunnableFunc(srv.Run)); err != nil {
		return nil, err
	}
	return store, nil
}
