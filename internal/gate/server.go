package gate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lastcall-dev/lastcall/internal/auth"
	"github.com/lastcall-dev/lastcall/internal/httpjson"
	"github.com/lastcall-dev/lastcall/internal/run"
)

// Defaults for Options.
const (
	DefaultMaxBodyBytes = 64 << 10
	// DefaultRunTTL keeps a finished gate run a day: long past the
	// promotion it answered (Flagger no longer calls for that revision),
	// long enough to inspect it.
	DefaultRunTTL    = 24 * time.Hour
	DefaultCacheWait = 5 * time.Second
)

// RBAC a caller needs for the control endpoints (open, close, overrides):
// ControlVerb on ControlResource in the canary's namespace, for the object
// named after the canary.
const (
	ControlVerb     = "update"
	ControlResource = "gates"
)

// Options configures New. The zero value means the defaults.
type Options struct {
	// MaxBodyBytes limits a request body; default 64 KiB (413 beyond).
	MaxBodyBytes int64
	// RunTTL is the spec.ttlSecondsAfterFinished of the runs the gate
	// starts; default DefaultRunTTL.
	RunTTL time.Duration
	// CacheWait bounds how long a control request waits for this replica's
	// cache to show its own write, so that a check that follows it on the
	// same replica sees it; default 5 s.
	CacheWait time.Duration
	// MeshProvider is Flagger's -mesh-provider: the provider of Canaries
	// without spec.provider; default DefaultMeshProvider.
	MeshProvider string
	// Clock stamps overrides; default real time.
	Clock clock.PassiveClock
	// Logger receives server-side failures; default slog.Default().
	Logger *slog.Logger
	// Registerer receives the lastcall_gate_* metrics; nil registers none.
	Registerer prometheus.Registerer
}

// clients are how the gate reaches the cluster.
type clients struct {
	// Cache is informer-backed: every check is answered from it.
	Cache client.Reader
	// Client creates runs and gates and writes overrides.
	Client client.Client
	// APIReader reads from the API server: read-modify-write, and a run
	// another replica has just created.
	APIReader client.Reader
	// Recorder turns Flagger's events into Kubernetes Events.
	Recorder record.EventRecorder
	// Synced waits, within ctx, until Cache has synced; nil: always.
	Synced func(ctx context.Context) bool
	// Routes: the Gateway API HTTPRoute kind is installed and cached.
	Routes bool
	// Canaries are Flagger's Canary objects; nil when Flagger's CRD is not
	// installed (the canary's name is then taken as its target's).
	Canaries *canaries
}

// Server serves the gate endpoints.
type Server struct {
	c       clients
	starter *run.Starter
	store   Store
	authn   *auth.Authenticator
	authz   *auth.Authorizer
	opts    Options
	log     *slog.Logger
	metrics *metrics
	// events bounds the Events /flagger/event writes.
	events flowcontrol.RateLimiter
}

// newServer returns a Server. It panics if the metrics cannot be registered
// (a duplicate registration is a wiring bug).
func newServer(c clients, authn *auth.Authenticator, authz *auth.Authorizer, opts Options) *Server {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.RunTTL <= 0 {
		opts.RunTTL = DefaultRunTTL
	}
	if opts.CacheWait <= 0 {
		opts.CacheWait = DefaultCacheWait
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Server{
		c:       c,
		starter: &run.Starter{Client: c.Client, Reader: c.APIReader},
		store:   Store{Client: c.Client, Reader: c.APIReader, Clock: opts.Clock},
		authn:   authn,
		authz:   authz,
		opts:    opts,
		log:     opts.Logger,
		metrics: newMetrics(opts.Registerer),
		events:  flowcontrol.NewTokenBucketRateLimiter(eventsPerSecond, eventsBurst),
	}
}

// Register mounts the endpoints on mux. Every endpoint but approve and halt
// reads Flagger's payload and answers anything but POST with 400, as
// flagger-loadtester does for a body-less GET.
func (s *Server) Register(mux *http.ServeMux) {
	post := func(path string, h handlerFunc) {
		mux.Handle(http.MethodPost+" "+path, s.handle(path, h))
		mux.Handle(path, s.handle(path, s.notPost))
	}
	post("/flagger/gate", s.flaggerGate)
	post("/flagger/gate/open", s.override(true))
	post("/flagger/gate/close", s.override(false))
	post("/flagger/event", s.event)
	post("/gate/check", s.check(SwitchGate))
	post("/gate/open", s.set(SwitchGate, true))
	post("/gate/close", s.set(SwitchGate, false))
	post("/rollback/check", s.check(SwitchRollback))
	post("/rollback/open", s.set(SwitchRollback, true))
	post("/rollback/close", s.set(SwitchRollback, false))
	// The loadtester answers these two to any method without reading anything.
	mux.Handle("/gate/approve", s.handle("/gate/approve", s.fixed(http.StatusOK, "OK", resultOpen)))
	mux.Handle("/gate/halt", s.handle("/gate/halt", s.fixed(http.StatusForbidden, "Forbidden", resultClosed)))
}

// handlerFunc answers a request and returns its metrics labels.
type handlerFunc func(w http.ResponseWriter, r *http.Request) (result string, hook string)

// handle times a handler and counts its decision.
func (s *Server) handle(endpoint string, h handlerFunc) http.Handler {
	duration := s.metrics.duration.WithLabelValues(endpoint)
	decisions := s.metrics.decisions.MustCurryWith(prometheus.Labels{"endpoint": endpoint})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		var result, hook string
		if s.synced(r.Context()) {
			result, hook = h(w, r)
		} else {
			result, hook = s.fail(w, r, errNotSynced), hookNone
		}
		duration.Observe(time.Since(start).Seconds())
		decisions.WithLabelValues(result, hook).Inc()
	})
}

func (s *Server) notPost(w http.ResponseWriter, r *http.Request) (string, string) {
	return s.fail(w, r, fmt.Errorf("%s %s: %w", r.Method, r.URL.Path, errNotPost)), hookNone
}

func (s *Server) fixed(code int, body, result string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) (string, string) {
		writeText(w, code, body)
		return result, hookNone
	}
}

// synced says whether the cache the checks read has synced. /readyz does
// not wait for it (the state API needs no cache and must serve through an
// API server outage); the gate answers 503 NotSynced until then rather
// than wait on it.
func (s *Server) synced(ctx context.Context) bool {
	if s.c.Synced == nil {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, syncedWait)
	defer cancel()
	return s.c.Synced(ctx)
}

// syncedWait is how long a request waits for a cache that is about to sync.
const syncedWait = 200 * time.Millisecond

// hookNone labels requests that carry no hook type.
const hookNone = "none"

// hookLabel is the hook a loadtester-style request declares, for metrics
// only: those endpoints never refuse an unknown one, as the loadtester
// ignores metadata.
func hookLabel(p Payload) string {
	h, err := p.Hook("")
	switch {
	case err != nil:
		return "other"
	case h == "":
		return hookNone
	}
	return string(h)
}

// readPayload reads and decodes a POSTed payload within the size limit.
func (s *Server) readPayload(w http.ResponseWriter, r *http.Request) (Payload, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return Payload{}, err
		}
		return Payload{}, invalid("read body: %v", err)
	}
	return DecodePayload(body)
}

// cached reads one object from the informer cache without copying it (the
// object is the cache's own: callers only read it); nil, nil when there is
// none.
func cached[T any, PT interface {
	*T
	client.Object
}](ctx context.Context, r client.Reader, namespace, name string) (*T, error) {
	obj := PT(new(T))
	err := r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, obj, noCopy)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return (*T)(obj), nil
}

// authenticate checks the bearer token before any body is read; a failure
// to reach the API server answers 503 rather than 401.
func (s *Server) authenticate(r *http.Request) (auth.User, error) {
	u, err := s.authn.Authenticate(r)
	return u, httpjson.AuthError(err)
}

// authorize lets the static token do anything, and anyone else what a
// SubjectAccessReview for ControlVerb on the canary's Gate allows.
func (s *Server) authorize(ctx context.Context, u auth.User, p Payload) error {
	if u.IsAdmin() {
		return nil
	}
	if s.authz == nil {
		return fmt.Errorf("%w: %s may not %s %s", auth.ErrForbidden, u.Name, ControlVerb, ControlResource)
	}
	err := s.authz.Authorize(ctx, u, auth.Attributes{Verb: ControlVerb, Resource: ControlResource, Namespace: p.Namespace, Name: p.Name})
	return httpjson.AuthError(err)
}

// control authenticates, reads the payload and authorizes: the common start
// of every control endpoint.
func (s *Server) control(w http.ResponseWriter, r *http.Request) (auth.User, Payload, error) {
	u, err := s.authenticate(r)
	if err != nil {
		return u, Payload{}, err
	}
	p, err := s.readPayload(w, r)
	if err != nil {
		return u, p, err
	}
	return u, p, s.authorize(r.Context(), u, p)
}

// noCopy reads cached objects without a deep copy: handlers only read them.
var noCopy = &client.GetOptions{UnsafeDisableDeepCopy: ptr.To(true)}
