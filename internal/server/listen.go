package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"golang.org/x/net/netutil"
)

// Bounds of every API listener. Headers carry at most a bearer token
// (about 1 KiB) and a few short fields; a client that has not sent them
// within ReadHeaderTimeout is cut, as is one idle longer than IdleTimeout.
const (
	maxHeaderBytes    = 32 << 10
	readHeaderTimeout = 5 * time.Second
	idleTimeout       = 2 * time.Minute
	// gateReadTimeout bounds reading a whole gate request: Flagger's bodies
	// are under a kilobyte.
	gateReadTimeout = 10 * time.Second
	// stateReadTimeout bounds reading a whole state request, large saves
	// included: a 1 GiB object at 4 MiB/s.
	stateReadTimeout = 5 * time.Minute
)

// DefaultMaxConnections bounds the open connections of each API listener:
// far more than a cluster's dying pods and Flagger open at once; beyond it
// new connections wait in the kernel's backlog instead of costing memory.
const DefaultMaxConnections = 1024

// listener is one address the server serves, and what it serves there.
type listener struct {
	name, addr  string
	mux         *http.ServeMux
	readTimeout time.Duration
}

// muxFor returns the mux of the API listener on addr, created on first use:
// the gate and the state API share one when their addresses are the same.
func (s *Server) muxFor(name, addr string, readTimeout time.Duration) *http.ServeMux {
	for _, l := range s.listeners {
		if l.addr == addr {
			l.name += "+" + name
			l.readTimeout = max(l.readTimeout, readTimeout)
			return l.mux
		}
	}
	l := &listener{name: name, addr: addr, mux: http.NewServeMux(), readTimeout: readTimeout}
	s.listeners = append(s.listeners, l)
	return l.mux
}

// httpRunnable serves one listener on every replica (no leader election).
// When the manager stops it keeps serving for the drain delay, while
// /readyz already fails (draining is set), so that load balancers stop
// sending before the listener closes; then it shuts down within the budget.
type httpRunnable struct {
	name, addr  string
	handler     http.Handler
	readTimeout time.Duration
	maxConns    int
	drainDelay  time.Duration
	shutdown    time.Duration
	draining    *atomic.Bool
	listening   *atomic.Int32
	log         *slog.Logger
	// tls, when set, serves TLS on the listener.
	tls *tls.Config
}

func (h *httpRunnable) NeedLeaderElection() bool { return false }

// closeWhileDraining answers with "Connection: close" once draining starts.
// A client's kept-alive connection stays pinned to this pod after it left
// the Service's endpoints (kube-proxy's conntrack entry outlives them):
// closing it after a complete response moves the client to a ready pod,
// where closing it at Shutdown could race with the client's next request.
func closeWhileDraining(draining *atomic.Bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if draining.Load() {
			w.Header().Set("Connection", "close")
		}
		next.ServeHTTP(w, r)
	})
}

func (h *httpRunnable) Start(ctx context.Context) error {
	l, err := net.Listen("tcp", h.addr)
	if err != nil {
		return fmt.Errorf("listen %s on %s: %w", h.name, h.addr, err)
	}
	if h.maxConns > 0 {
		l = netutil.LimitListener(l, h.maxConns)
	}
	srv := &http.Server{
		Handler:           closeWhileDraining(h.draining, h.handler),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       h.readTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(h.log.Handler(), slog.LevelDebug),
	}
	h.log.Info("serving", "listener", h.name, "addr", l.Addr().String(), "tls", h.tls != nil)
	h.listening.Add(1)
	errc := make(chan error, 1)
	go func() {
		if h.tls != nil {
			srv.TLSConfig = h.tls
			errc <- srv.ServeTLS(l, "", "")
			return
		}
		errc <- srv.Serve(l)
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", h.name, err)
	case <-ctx.Done():
	}
	h.draining.Store(true)
	if h.drainDelay > 0 {
		h.log.Info("draining: not ready, still serving", "listener", h.name, "for", h.drainDelay)
		select {
		case err := <-errc:
			return fmt.Errorf("serve %s: %w", h.name, err)
		case <-time.After(h.drainDelay):
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), h.shutdown)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shut down %s: %w", h.name, err)
	}
	return nil
}
