package state

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"

	"github.com/lastcall-dev/lastcall/internal/auth"
	"github.com/lastcall-dev/lastcall/internal/httpjson"
)

// Defaults for Options.
const (
	DefaultMaxObjectBytes = 1 << 30
	DefaultMaxSaveBytes   = 1 << 20
	DefaultPruneInterval  = time.Hour
)

// Options configures NewServer. The zero value means the defaults.
type Options struct {
	// MaxObjectBytes limits a PUT body; default 1 GiB (413 beyond).
	MaxObjectBytes int64
	// MaxSaveBytes limits a POST /state/save body; default 1 MiB.
	MaxSaveBytes int64
	// KeepVersions is how many versions of a key are kept; default 5.
	KeepVersions int
	// Retention deletes versions older than this; default 7 days.
	Retention time.Duration
	// PruneInterval is how often Run applies the retention policy to the
	// whole store; default 1 h. Every write also prunes its own key.
	PruneInterval time.Duration
	// NamespaceMaxBytes and NamespaceMaxKeys bound what one namespace may
	// store (every version counts); 0 is no limit. Beyond: 507
	// QuotaExceeded.
	NamespaceMaxBytes int64
	NamespaceMaxKeys  int
	// Clock stamps versions and drives retention; default real time.
	Clock clock.WithTicker
	// Logger receives server-side failures; default slog.Default().
	Logger *slog.Logger
	// Registerer receives the lastcall_state_* metrics; nil registers none.
	Registerer prometheus.Registerer
}

// Server serves a Store over HTTP.
type Server struct {
	store   *Store
	authn   *auth.Authenticator
	authz   *auth.Authorizer
	opts    Options
	policy  Policy
	clock   clock.WithTicker
	log     *slog.Logger
	metrics *metrics
	quota   *quota
}

// NewServer returns a Server. authz may be nil: then only the static admin
// and ServiceAccounts in their own namespace get access. It panics if the
// metrics cannot be registered (a duplicate registration is a wiring bug).
func NewServer(store *Store, authn *auth.Authenticator, authz *auth.Authorizer, opts Options) *Server {
	if opts.MaxObjectBytes <= 0 {
		opts.MaxObjectBytes = DefaultMaxObjectBytes
	}
	if opts.MaxSaveBytes <= 0 {
		opts.MaxSaveBytes = DefaultMaxSaveBytes
	}
	if opts.PruneInterval <= 0 {
		opts.PruneInterval = DefaultPruneInterval
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Server{
		store:   store,
		authn:   authn,
		authz:   authz,
		opts:    opts,
		policy:  Policy{Keep: opts.KeepVersions, MaxAge: opts.Retention}.withDefaults(),
		clock:   opts.Clock,
		log:     opts.Logger,
		metrics: newMetrics(opts.Registerer),
	}
	s.quota = newQuota(store, opts.NamespaceMaxBytes, opts.NamespaceMaxKeys, opts.Clock.Now, opts.Registerer)
	store.OnUnreadable = func(name string, err error) {
		s.metrics.damaged.Inc()
		s.log.Warn("skipped a damaged state object", "object", name, "err", err)
	}
	return s
}

// Register mounts the API on mux.
func (s *Server) Register(mux *http.ServeMux) {
	mux.Handle("PUT /v1/state/{namespace}/{key...}", s.instrument(opPut, s.put))
	mux.Handle("GET /v1/state/{namespace}", s.instrument(opList, s.list))
	mux.Handle("GET /v1/state/{namespace}/{$}", s.instrument(opList, s.list))
	mux.Handle("GET /v1/state/{namespace}/{key...}", s.instrument(opGet, s.get))
	mux.Handle("DELETE /v1/state/{namespace}/{key...}", s.instrument(opDelete, s.delete))
	mux.Handle("POST /state/save", s.instrument(opSave, s.save))
}

// Run applies the retention policy to the whole store at once and then
// every PruneInterval, until ctx ends. (Each key is also pruned right after
// it is written.)
func (s *Server) Run(ctx context.Context) error {
	t := s.clock.NewTicker(s.opts.PruneInterval)
	defer t.Stop()
	for {
		n, err := s.store.PruneAll(ctx, s.policy, s.clock.Now())
		s.metrics.pruned.Add(float64(n))
		if err != nil && ctx.Err() == nil {
			s.log.Error("prune state store", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		}
	}
}

// pruneAfterWrite applies the retention policy to a key just written, once
// the answer has gone out: a dying pod need not wait for it. A failure is
// logged, not returned: the write itself succeeded.
func (s *Server) pruneAfterWrite(w http.ResponseWriter, r *http.Request, ns, key string) {
	_ = http.NewResponseController(w).Flush()
	s.pruneKey(r.Context(), ns, key)
}

func (s *Server) pruneKey(ctx context.Context, ns, key string) {
	n, err := s.store.Prune(ctx, ns, key, s.policy, s.clock.Now())
	s.metrics.pruned.Add(float64(n))
	if err != nil && ctx.Err() == nil {
		s.log.Error("prune state key", "namespace", ns, "key", key, "err", err)
	}
}

// authenticate returns the caller; failures to reach the API server are
// marked so they answer 503 rather than 401.
func (s *Server) authenticate(r *http.Request) (auth.User, error) {
	u, err := s.authn.Authenticate(r)
	return u, httpjson.AuthError(err)
}

// authorize lets the admin do anything and a ServiceAccount anything in its
// own namespace; anyone else, or a ServiceAccount reaching into another
// namespace, needs a SubjectAccessReview allowing verb on states.lastcall.dev
// in ns.
func (s *Server) authorize(r *http.Request, u auth.User, verb, ns string) error {
	if err := ValidateNamespace(ns); err != nil {
		return err
	}
	if u.IsAdmin() || (u.Namespace != "" && u.Namespace == ns) {
		return nil
	}
	if s.authz == nil {
		return fmt.Errorf("%w: %s may not %s states in namespace %s", auth.ErrForbidden, u.Name, verb, ns)
	}
	err := s.authz.Authorize(r.Context(), u, auth.Attributes{Verb: verb, Resource: "states", Namespace: ns})
	return httpjson.AuthError(err)
}

// begin authenticates and authorizes a request on /v1/state/{namespace}/...
func (s *Server) begin(r *http.Request, verb string) (auth.User, string, error) {
	u, err := s.authenticate(r)
	if err != nil {
		return u, "", err
	}
	ns := r.PathValue("namespace")
	return u, ns, s.authorize(r, u, verb, ns)
}
