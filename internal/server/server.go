// Package server composes `lastcall server`: the controller-runtime manager
// with the run controller (leader-elected), and the HTTP listeners for the
// API, metrics and health that every replica serves.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
	"github.com/lastcall-dev/lastcall/internal/auth"
	"github.com/lastcall-dev/lastcall/internal/gate"
	"github.com/lastcall-dev/lastcall/internal/run"
	"github.com/lastcall-dev/lastcall/internal/state"
)

// Config is `lastcall server`'s configuration; flags map onto it and its
// zero values are replaced by the defaults in Defaults.
type Config struct {
	HTTPAddr    string
	MetricsAddr string
	HealthAddr  string
	// PprofAddr serves net/http/pprof for profiling a live server; empty
	// (the default) serves nothing.
	PprofAddr string

	LeaderElect             bool
	LeaderElectionNamespace string
	LeaseDuration           time.Duration
	RenewDeadline           time.Duration
	RetryPeriod             time.Duration

	// CallbackURL is how Argo Workflows reach this server.
	CallbackURL string

	// ControlTokenFile holds a static bearer token that may do everything
	// (gate overrides, state in every namespace); empty disables it.
	ControlTokenFile string
	// Audience is the audience a ServiceAccount token must be issued for.
	Audience string

	// MaxConcurrentRuns bounds the runs the leader executes at once.
	MaxConcurrentRuns int

	State StateConfig
	Gate  GateConfig
	// Watch runs the termination watcher (FailedPreStopHook and
	// FailedPostStartHook Events, containers SIGKILLed at their deadline).
	Watch bool
}

// Defaults are the documented flag defaults.
var Defaults = Config{
	HTTPAddr:                ":8080",
	MetricsAddr:             ":9090",
	HealthAddr:              ":8081",
	LeaderElect:             true,
	LeaderElectionNamespace: "lastcall-system",
	LeaseDuration:           15 * time.Second,
	RenewDeadline:           10 * time.Second,
	RetryPeriod:             2 * time.Second,
	Audience:                auth.DefaultAudience,
	State: StateConfig{
		URL:            DefaultStateURL,
		MaxObjectBytes: state.DefaultMaxObjectBytes,
		MaxSaveBytes:   state.DefaultMaxSaveBytes,
		KeepVersions:   state.DefaultKeepVersions,
		Retention:      state.DefaultRetention,
		PruneInterval:  state.DefaultPruneInterval,
	},
	MaxConcurrentRuns: run.DefaultMaxConcurrentRuns,
	Gate:              GateConfig{MaxBodyBytes: gate.DefaultMaxBodyBytes, RunTTL: gate.DefaultRunTTL},
	Watch:             true,
}

// Scheme knows the built-in kinds and lastcall's.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// Server is a configured, not yet running, `lastcall server`.
type Server struct {
	cfg      Config
	mgr      manager.Manager
	registry *prometheus.Registry
	// Mux is the API mux; the gate and state service register on it.
	Mux *http.ServeMux
	log *slog.Logger
	// Kube is a typed client for TokenReviews, SubjectAccessReviews and
	// Events; reads go through the manager's cache instead.
	Kube  kubernetes.Interface
	Authn *auth.Authenticator
	Authz *auth.Authorizer
	// store is the state store; Run closes it last.
	store *state.Store
}

// New builds the manager and the run controller.
func New(restCfg *rest.Config, cfg Config, log *slog.Logger) (*Server, error) {
	reg := prometheus.NewRegistry()
	// The Go and process collectors are already on controller-runtime's
	// registry, which /metrics gathers too: registering them here as well
	// made every scrape fail with "collected before".
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                        Scheme(),
		Metrics:                       metricsserver.Options{BindAddress: "0"}, // served below, with our registry
		HealthProbeBindAddress:        cfg.HealthAddr,
		PprofBindAddress:              cfg.PprofAddr,
		LeaderElection:                cfg.LeaderElect,
		LeaderElectionID:              "lastcall-controller",
		LeaderElectionNamespace:       cfg.LeaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 &cfg.LeaseDuration,
		RenewDeadline:                 &cfg.RenewDeadline,
		RetryPeriod:                   &cfg.RetryPeriod,
		// Managed fields are most of a pod's bytes and we never read them.
		Cache: cache.Options{DefaultTransform: cache.TransformStripManagedFields()},
	})
	if err != nil {
		return nil, fmt.Errorf("create manager: %w", err)
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("cache", func(r *http.Request) error {
		if !mgr.GetCache().WaitForCacheSync(r.Context()) {
			return errors.New("cache not synced")
		}
		return nil
	}); err != nil {
		return nil, err
	}
	kube, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return nil, err
	}
	authn, err := auth.NewAuthenticator(auth.AuthenticatorOptions{
		TokenFile: cfg.ControlTokenFile,
		Client:    kube,
		Audiences: []string{cfg.Audience},
		Logger:    log,
	})
	if err != nil {
		return nil, fmt.Errorf("control token: %w", err)
	}
	authz, err := auth.NewAuthorizer(auth.AuthorizerOptions{Client: kube})
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, mgr: mgr, registry: reg, Mux: http.NewServeMux(), log: log, Kube: kube, Authn: authn, Authz: authz}
	store, err := s.setupState(context.Background())
	if err != nil {
		return nil, err
	}
	s.store = store
	// After the store: saveState steps write to it in-process.
	hc := &http.Client{}
	if _, err := run.NewController(mgr, run.Options{Actions: s.runActions(store, hc), HTTPClient: hc, Metrics: run.NewMetrics(reg), CallbackURL: cfg.CallbackURL, MaxConcurrentRuns: cfg.MaxConcurrentRuns}); err != nil {
		return nil, fmt.Errorf("set up run controller: %w", err)
	}
	if err := s.setupGate(); err != nil {
		return nil, err
	}
	if cfg.Watch {
		if err := s.setupWatch(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Manager exposes the manager for components that add themselves to it.
func (s *Server) Manager() manager.Manager { return s.mgr }

// Registry is where components register their metrics.
func (s *Server) Registry() prometheus.Registerer { return s.registry }

// Run serves until ctx ends, then shuts everything down.
func (s *Server) Run(ctx context.Context) error {
	metrics := http.NewServeMux()
	metrics.Handle("GET /metrics", promhttp.HandlerFor(prometheus.Gatherers{s.registry, ctrlmetrics.Registry}, promhttp.HandlerOpts{}))
	for _, l := range []struct {
		name, addr string
		h          http.Handler
	}{{"api", s.cfg.HTTPAddr, s.Mux}, {"metrics", s.cfg.MetricsAddr, metrics}} {
		if err := s.mgr.Add(&httpRunnable{name: l.name, addr: l.addr, handler: l.h, log: s.log}); err != nil {
			return err
		}
	}
	err := s.mgr.Start(ctx)
	// Last, once the listeners and the runs have stopped and nothing writes
	// to it.
	if cerr := s.store.Close(); cerr != nil {
		s.log.Error("close state store", "err", cerr)
		if err == nil {
			err = fmt.Errorf("close state store: %w", cerr)
		}
	}
	return err
}

// httpRunnable serves on every replica (no leader election) and shuts down
// gracefully when the manager stops.
type httpRunnable struct {
	name, addr string
	handler    http.Handler
	log        *slog.Logger
}

func (h *httpRunnable) NeedLeaderElection() bool { return false }

func (h *httpRunnable) Start(ctx context.Context) error {
	l, err := net.Listen("tcp", h.addr)
	if err != nil {
		return fmt.Errorf("listen %s on %s: %w", h.name, h.addr, err)
	}
	srv := &http.Server{Handler: h.handler, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute}
	h.log.Info("serving", "listener", h.name, "addr", l.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", h.name, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}
