// Package server composes `lastcall server`: the controller-runtime manager
// with the run controller (leader-elected), and the HTTP listeners for the
// API, metrics and health that every replica serves.
package server

import (
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/lastcall-dev/lastcall/internal/auth"
	"github.com/lastcall-dev/lastcall/internal/gate"
	"github.com/lastcall-dev/lastcall/internal/run"
	"github.com/lastcall-dev/lastcall/internal/state"
)

// Config is `lastcall server`'s configuration; flags map onto it and its
// zero values are replaced by the defaults in Defaults.
type Config struct {
	// HTTPAddr is where the gate and the state API listen unless GateAddr
	// or StateAddr say otherwise.
	HTTPAddr string
	// GateAddr serves Flagger's endpoints, StateAddr the state API (and the
	// runs API); empty means HTTPAddr. Separate addresses let a
	// NetworkPolicy admit only Flagger to the gate.
	GateAddr    string
	StateAddr   string
	MetricsAddr string
	HealthAddr  string
	// DrainDelay is how long the API keeps serving after SIGTERM while
	// /readyz already fails; ShutdownTimeout bounds the graceful close
	// after it. Their sum must stay under the pod's grace period.
	DrainDelay      time.Duration
	ShutdownTimeout time.Duration
	// MaxConnections bounds the open connections of each API listener.
	MaxConnections int
	// TLSCertFile and TLSKeyFile, when set, serve the API listeners (gate,
	// state, runs) over TLS; the files are re-read when they change (a
	// cert-manager renewal), without a restart.
	TLSCertFile, TLSKeyFile string
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
	// TokenIssuers are the "iss" a ServiceAccount token may carry; empty:
	// the API server's (OIDC discovery) and the legacy Secret tokens'.
	TokenIssuers []string
	// TokenReviewQPS and TokenReviewBurst bound the TokenReviews sent, on
	// a client of their own: a flood of bad tokens gets 429s and cannot
	// slow the controller's requests.
	TokenReviewQPS   float32
	TokenReviewBurst int

	// MaxConcurrentRuns bounds the runs the leader executes at once.
	MaxConcurrentRuns int
	// StepURLPrefixes are the URLs policies may make the server call
	// besides their run's pods (run.URLAllowList).
	StepURLPrefixes []string

	State StateConfig
	Gate  GateConfig
	// Watch runs the termination watcher (FailedPreStopHook and
	// FailedPostStartHook Events, containers SIGKILLed at their deadline).
	Watch bool
}

// Defaults are the documented flag defaults.
var Defaults = Config{
	HTTPAddr:                ":8080",
	DrainDelay:              5 * time.Second,
	ShutdownTimeout:         15 * time.Second,
	MaxConnections:          DefaultMaxConnections,
	MetricsAddr:             ":9090",
	HealthAddr:              ":8081",
	LeaderElect:             true,
	LeaderElectionNamespace: "lastcall-system",
	LeaseDuration:           15 * time.Second,
	RenewDeadline:           10 * time.Second,
	RetryPeriod:             2 * time.Second,
	Audience:                auth.DefaultAudience,
	TokenReviewQPS:          auth.DefaultReviewQPS,
	TokenReviewBurst:        auth.DefaultReviewBurst,
	State: StateConfig{
		URL:               DefaultStateURL,
		MaxObjectBytes:    state.DefaultMaxObjectBytes,
		MaxSaveBytes:      state.DefaultMaxSaveBytes,
		KeepVersions:      state.DefaultKeepVersions,
		Retention:         state.DefaultRetention,
		PruneInterval:     state.DefaultPruneInterval,
		NamespaceMaxBytes: state.DefaultNamespaceMaxBytes,
		NamespaceMaxKeys:  state.DefaultNamespaceMaxKeys,
	},
	MaxConcurrentRuns: run.DefaultMaxConcurrentRuns,
	Gate:              GateConfig{MaxBodyBytes: gate.DefaultMaxBodyBytes, RunTTL: gate.DefaultRunTTL, MeshProvider: gate.DefaultMeshProvider},
	Watch:             true,
}

// Server is a configured, not yet running, `lastcall server`.
type Server struct {
	cfg      Config
	mgr      manager.Manager
	registry *prometheus.Registry
	// listeners are the API's addresses and their muxes (see muxFor).
	listeners []*listener
	// draining is set when the server stops: /readyz fails from then on.
	draining atomic.Bool
	// listening counts the API listeners bound; /readyz waits for all.
	listening     atomic.Int32
	wantListening int32
	log           *slog.Logger
	// Kube is a typed client for TokenReviews, SubjectAccessReviews and
	// Events; reads go through the manager's cache instead.
	Kube  kubernetes.Interface
	Authn *auth.Authenticator
	Authz *auth.Authorizer
	// store is the state store; Run closes it last.
	store *state.Store
	// stateSrv is the state API; saveState steps write through it.
	stateSrv *state.Server
	// releaseStore gives up the file:// store Lease (a no-op without one).
	releaseStore context.CancelFunc
	// terms runs the leader-only work.
	terms *leaderTerms
}

// New builds the manager and the run controller.
func New(restCfg *rest.Config, cfg Config, log *slog.Logger) (*Server, error) {
	reg := prometheus.NewRegistry()
	// The Go and process collectors are already on controller-runtime's
	// registry, which /metrics gathers too: registering them here as well
	// made every scrape fail with "collected before".
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                 run.Scheme(),
		Metrics:                metricsserver.Options{BindAddress: "0"}, // served below, with our registry
		HealthProbeBindAddress: "0",                                     // served by health.go: 503, listeners, draining
		PprofBindAddress:       cfg.PprofAddr,
		// The election is leaderTerms': controller-runtime's ends the
		// process when the Lease is lost, and with it the state API.
		LeaderElection:          false,
		GracefulShutdownTimeout: ptr.To(cfg.DrainDelay + cfg.ShutdownTimeout + 5*time.Second),
		// Managed fields are most of a pod's bytes and we never read them.
		Cache: cache.Options{DefaultTransform: cache.TransformStripManagedFields()},
	})
	if err != nil {
		return nil, fmt.Errorf("create manager: %w", err)
	}
	s := &Server{cfg: cfg, mgr: mgr, registry: reg, log: log, releaseStore: func() {}}
	if err := s.addHealth(); err != nil {
		return nil, err
	}
	kube, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return nil, err
	}
	if err := checkCRDs(kube.Discovery()); err != nil {
		return nil, err
	}
	authn, err := newAuthenticator(restCfg, cfg, log)
	if err != nil {
		return nil, fmt.Errorf("control token: %w", err)
	}
	authz, err := auth.NewAuthorizer(auth.AuthorizerOptions{Client: kube})
	if err != nil {
		return nil, err
	}
	s.Kube, s.Authn, s.Authz = kube, authn, authz
	if s.terms, err = newLeaderTerms(cfg, kube, reg, log.With("component", "leader")); err != nil {
		return nil, err
	}
	if err := mgr.Add(s.terms); err != nil {
		return nil, err
	}
	store, err := s.setupState(context.Background())
	if err != nil {
		return nil, err
	}
	s.store = store
	if err := s.setupRest(store); err != nil {
		_ = store.Close()
		s.releaseStore()
		return nil, err
	}
	return s, nil
}

// setupRest adds what comes after the store: saveState steps write to it
// in-process.
func (s *Server) setupRest(store *state.Store) error {
	cfg, mgr, reg := s.cfg, s.mgr, s.registry
	hc := &http.Client{}
	c, err := run.NewController(mgr, run.Options{Actions: s.runActions(store, hc), HTTPClient: hc, Metrics: run.NewMetrics(reg),
		CallbackURL: cfg.CallbackURL, MaxConcurrentRuns: cfg.MaxConcurrentRuns, URLPrefixes: cfg.StepURLPrefixes, LeadByCaller: true})
	if err != nil {
		return fmt.Errorf("set up run controller: %w", err)
	}
	s.terms.add("runs", c.Lead)
	// POST /v1/runs, beside the state API: the same callers (dying pods),
	// the same credentials.
	api := &run.API{Authn: s.Authn, Authz: s.Authz, Cache: mgr.GetCache(), TTL: cfg.Gate.RunTTL,
		Starter: &run.Starter{Client: mgr.GetClient(), Reader: mgr.GetAPIReader()}, Log: s.log.With("component", "runs-api")}
	api.Register(s.muxFor("state", cfg.stateAddr(), stateReadTimeout))
	if err := s.setupGate(); err != nil {
		return err
	}
	if cfg.Watch {
		if err := s.setupWatch(); err != nil {
			return err
		}
	}
	return nil
}

// Manager exposes the manager for components that add themselves to it.
func (s *Server) Manager() manager.Manager { return s.mgr }

// Registry is where components register their metrics.
func (s *Server) Registry() prometheus.Registerer { return s.registry }

// Run serves until ctx ends, then shuts everything down: /readyz fails at
// once, the API keeps serving for the drain delay, then closes within the
// shutdown budget; the Lease is released; the store is closed last.
func (s *Server) Run(ctx context.Context) error {
	defer s.releaseStore()
	metrics := http.NewServeMux()
	metrics.Handle("GET /metrics", promhttp.HandlerFor(prometheus.Gatherers{s.registry, ctrlmetrics.Registry}, promhttp.HandlerOpts{}))
	all := append([]*listener{{name: "metrics", addr: s.cfg.MetricsAddr, mux: metrics}}, s.listeners...)
	s.wantListening = int32(len(all))
	tlsConfig, err := s.tlsConfig()
	if err != nil {
		return err
	}
	for _, l := range all {
		r := &httpRunnable{name: l.name, addr: l.addr, handler: l.mux, readTimeout: l.readTimeout,
			maxConns: s.cfg.MaxConnections, drainDelay: s.cfg.DrainDelay, shutdown: s.cfg.ShutdownTimeout,
			draining: &s.draining, listening: &s.listening, log: s.log}
		if l.name != "metrics" {
			r.tls = tlsConfig
		}
		if err := s.mgr.Add(r); err != nil {
			return err
		}
	}
	err = s.mgr.Start(ctx)
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

// tlsConfig is the API listeners' TLS, or nil without a certificate. The
// certificate is watched (controller-runtime's certwatcher: file events and
// a poll) and swapped in for new connections when it changes.
func (s *Server) tlsConfig() (*tls.Config, error) {
	c := s.cfg
	if c.TLSCertFile == "" && c.TLSKeyFile == "" {
		return nil, nil
	}
	if c.TLSCertFile == "" || c.TLSKeyFile == "" {
		return nil, fmt.Errorf("--tls-cert-file and --tls-key-file go together")
	}
	w, err := certwatcher.New(c.TLSCertFile, c.TLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate: %w", err)
	}
	if err := s.mgr.Add(w); err != nil {
		return nil, err
	}
	return &tls.Config{GetCertificate: w.GetCertificate, MinVersion: tls.VersionTLS12}, nil
}

func (c Config) gateAddr() string  { return cmp.Or(c.GateAddr, c.HTTPAddr) }
func (c Config) stateAddr() string { return cmp.Or(c.StateAddr, c.HTTPAddr) }
