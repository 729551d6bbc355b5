package server

import (
	"net/http"

	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// addHealth serves /healthz and /readyz on HealthAddr. It is a manager
// HTTP server, which the manager stops last, so /readyz answers 503 through
// the whole drain (controller-runtime's own probe answers 500).
//
// /readyz is 200 once every API listener is bound, and 503 from the moment
// the server starts stopping. It does not wait for the caches: the state
// API needs none and must serve a replica that starts during an API server
// outage; the gate answers 503 NotSynced by itself until its cache has.
func (s *Server) addHealth() error {
	if s.cfg.HealthAddr == "" || s.cfg.HealthAddr == "0" {
		return nil
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if why := s.notReady(); why != "" {
			http.Error(w, why, http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	return s.mgr.Add(&manager.Server{
		Name:            "health probe",
		Server:          &http.Server{Addr: s.cfg.HealthAddr, Handler: mux, ReadHeaderTimeout: readHeaderTimeout, MaxHeaderBytes: maxHeaderBytes},
		ShutdownTimeout: &s.cfg.ShutdownTimeout,
	})
}

// notReady says why the server should get no traffic, or "".
func (s *Server) notReady() string {
	switch {
	case s.draining.Load():
		return "shutting down"
	case s.wantListening == 0 || s.listening.Load() < s.wantListening:
		return "listeners not bound yet"
	}
	return ""
}
