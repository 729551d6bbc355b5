package server

import (
	"time"

	"github.com/lastcall-dev/lastcall/internal/gate"
)

// GateConfig configures the Flagger gate.
type GateConfig struct {
	// MaxBodyBytes limits a webhook body (413 beyond).
	MaxBodyBytes int64
	// RunTTL deletes a gate run that long after it completed.
	RunTTL time.Duration
	// MeshProvider is Flagger's -mesh-provider, for Canaries without
	// spec.provider.
	MeshProvider string
}

// setupGate mounts the Flagger gate and the loadtester-compatible manual
// gates on the API mux. Every replica answers them from its own cache.
func (s *Server) setupGate() error {
	g, err := gate.New(s.mgr, s.Authn, s.Authz, gate.Options{
		MaxBodyBytes: s.cfg.Gate.MaxBodyBytes,
		RunTTL:       s.cfg.Gate.RunTTL,
		MeshProvider: s.cfg.Gate.MeshProvider,
		Logger:       s.log.With("component", "gate"),
		Registerer:   s.registry,
	})
	if err != nil {
		return err
	}
	g.Register(s.muxFor("gate", s.cfg.gateAddr(), gateReadTimeout))
	return nil
}
