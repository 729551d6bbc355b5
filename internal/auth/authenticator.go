package auth

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilcache "k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/utils/clock"
)

// Defaults for AuthenticatorOptions and AuthorizerOptions.
const (
	DefaultAudience  = "lastcall"
	DefaultCacheTTL  = 10 * time.Second
	DefaultCacheSize = 4096
	// DefaultReviewQPS and DefaultReviewBurst bound TokenReviews per second:
	// far above what a cluster's dying pods need (each review is cached),
	// far below what would slow the API server.
	DefaultReviewQPS   = 20
	DefaultReviewBurst = 50
	// DefaultStaleFor is how long a positive answer may stand in for a
	// TokenReview the API server cannot give (never past the token's expiry).
	DefaultStaleFor = time.Hour
)

// AuthenticatorOptions configures NewAuthenticator. The zero value means the
// defaults, and an Authenticator that accepts nothing: set TokenFile, Client
// or both.
type AuthenticatorOptions struct {
	// TokenFile holds the static admin token (surrounding whitespace is
	// ignored). Empty disables the static token.
	TokenFile string
	// Client sends TokenReviews. Nil disables ServiceAccount tokens.
	Client kubernetes.Interface
	// Audiences a token must be issued for; default ["lastcall"].
	Audiences []string
	// CacheTTL is how long a review's answer is reused; default 10 s,
	// negative disables caching.
	CacheTTL time.Duration
	// CacheSize bounds the number of cached answers; default 4096.
	CacheSize int
	// Issuers a token's "iss" claim must name; empty skips the check. The
	// server passes the cluster's issuer (DiscoverIssuer) and LegacyIssuer.
	Issuers []string
	// ReviewQPS and ReviewBurst bound the TokenReviews sent; beyond them a
	// request is refused at once with ErrThrottled rather than queued.
	// Defaults DefaultReviewQPS and DefaultReviewBurst.
	ReviewQPS   float32
	ReviewBurst int
	// StaleFor is how long after a successful review its answer is still
	// served when the API server cannot be reached or reviews are
	// throttled; never past the token's expiry. Default DefaultStaleFor,
	// negative disables it.
	StaleFor time.Duration
	// Clock drives cache expiry and token-file rechecks; default real time.
	Clock clock.PassiveClock
	// Logger receives token-file reloads; default slog.Default().
	Logger *slog.Logger
}

// Authenticator turns a bearer token into a User.
type Authenticator struct {
	static    *staticToken
	client    kubernetes.Interface
	audiences []string
	ttl       time.Duration
	issuers   []string
	clock     clock.PassiveClock
	cache     *reviewCache[User]
	limiter   flowcontrol.RateLimiter
	staleFor  time.Duration
	// good holds recent positive answers for API-server outages, keyed by
	// the token's hash like cache.
	good *utilcache.LRUExpireCache
}

// NewAuthenticator reads the token file, if any, and returns an
// Authenticator. It fails when the file is unreadable or empty.
func NewAuthenticator(opts AuthenticatorOptions) (*Authenticator, error) {
	if len(opts.Audiences) == 0 {
		opts.Audiences = []string{DefaultAudience}
	}
	if opts.CacheTTL == 0 {
		opts.CacheTTL = DefaultCacheTTL
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = DefaultCacheSize
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.ReviewQPS <= 0 {
		opts.ReviewQPS = DefaultReviewQPS
	}
	if opts.ReviewBurst <= 0 {
		opts.ReviewBurst = DefaultReviewBurst
	}
	if opts.StaleFor == 0 {
		opts.StaleFor = DefaultStaleFor
	}
	a := &Authenticator{
		client:    opts.Client,
		audiences: append([]string(nil), opts.Audiences...),
		issuers:   slices.Clone(opts.Issuers),
		ttl:       opts.CacheTTL,
		clock:     opts.Clock,
		cache:     newReviewCache[User](opts.CacheSize, opts.CacheTTL, opts.Clock),
		limiter:   flowcontrol.NewTokenBucketRateLimiter(opts.ReviewQPS, opts.ReviewBurst),
		staleFor:  opts.StaleFor,
		good:      utilcache.NewLRUExpireCacheWithClock(opts.CacheSize, opts.Clock),
	}
	if opts.TokenFile != "" {
		s, err := newStaticToken(opts.TokenFile, opts.Clock, opts.Logger)
		if err != nil {
			return nil, err
		}
		a.static = s
	}
	return a, nil
}

// Authenticate authenticates the request's bearer token.
func (a *Authenticator) Authenticate(r *http.Request) (User, error) {
	token, err := BearerToken(r)
	if err != nil {
		return User{}, err
	}
	return a.AuthenticateToken(r.Context(), token)
}

// AuthenticateToken checks the static token first, then screens the token
// and asks the API server with a TokenReview (cached, rate-limited).
// Rejections wrap one of the sentinel errors; ErrThrottled and errors reaching
// the API server are not rejections, and then a recent positive answer for the
// same token is served instead when there is one.
func (a *Authenticator) AuthenticateToken(ctx context.Context, token string) (User, error) {
	if a.static != nil && a.static.match(token) {
		return User{Name: AdminName, admin: true}, nil
	}
	if a.client == nil {
		return User{}, ErrUnauthenticated
	}
	if err := a.screen(token); err != nil {
		return User{}, err
	}
	key := sha256.Sum256([]byte(token))
	u, err := a.cache.get(ctx, key, func(ctx context.Context) (outcome[User], time.Duration, error) {
		return a.review(ctx, key, token)
	})
	if err != nil && !IsRejection(err) {
		if v, ok := a.good.Get(key); ok {
			return v.(User), nil
		}
	}
	return u, err
}

func (a *Authenticator) review(ctx context.Context, key [sha256.Size]byte, token string) (outcome[User], time.Duration, error) {
	if !a.limiter.TryAccept() {
		return outcome[User]{}, 0, ErrThrottled
	}
	tr := &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: token, Audiences: a.audiences}}
	res, err := a.client.AuthenticationV1().TokenReviews().Create(ctx, tr, metav1.CreateOptions{})
	if err != nil {
		return outcome[User]{}, 0, fmt.Errorf("token review: %w", err)
	}
	st := res.Status
	if !st.Authenticated {
		a.good.Remove(key)
		return outcome[User]{err: a.explain(token, st.Error)}, a.ttl, nil
	}
	// An authenticated review with no audiences means "valid for the API
	// server", not for us: the API docs ask audience-aware clients to check.
	if !intersects(st.Audiences, a.audiences) {
		a.good.Remove(key)
		return outcome[User]{err: fmt.Errorf("%w: valid for %v", ErrWrongAudience, st.Audiences)}, a.ttl, nil
	}
	extra := make(map[string][]string, len(st.User.Extra))
	for k, v := range st.User.Extra {
		extra[k] = append([]string(nil), v...)
	}
	u := newUser(st.User.Username, st.User.UID, st.User.Groups, extra)
	ttl, stale := a.ttl, a.staleFor
	// Never serve an accepted token from a cache after it expires.
	if c, ok := peekClaims(token); ok {
		if exp, ok := c.expiry(); ok {
			left := exp.Sub(a.clock.Now())
			ttl, stale = min(ttl, left), min(stale, left)
		}
	}
	if stale > 0 {
		a.good.Add(key, u, stale)
	}
	return outcome[User]{val: u}, ttl, nil
}

// explain turns a failed review into a specific error. The API server gives
// only a free-text reason, so the token's own (unverified) claims say whether
// it was meant for another audience or has expired.
func (a *Authenticator) explain(token, reviewError string) error {
	base := ErrUnauthenticated
	if c, ok := peekClaims(token); ok {
		exp, hasExp := c.expiry()
		switch {
		case len(c.Audience) > 0 && !intersects(c.Audience, a.audiences):
			base = ErrWrongAudience
		case hasExp && !a.clock.Now().Before(exp):
			base = ErrTokenExpired
		}
	}
	if reviewError == "" {
		return base
	}
	return fmt.Errorf("%w: %s", base, reviewError)
}
