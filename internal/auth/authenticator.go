package auth

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
)

// Defaults for AuthenticatorOptions and AuthorizerOptions.
const (
	DefaultAudience  = "lastcall"
	DefaultCacheTTL  = 10 * time.Second
	DefaultCacheSize = 4096
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
	clock     clock.PassiveClock
	cache     *reviewCache[User]
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
	a := &Authenticator{
		client:    opts.Client,
		audiences: append([]string(nil), opts.Audiences...),
		ttl:       opts.CacheTTL,
		clock:     opts.Clock,
		cache:     newReviewCache[User](opts.CacheSize, opts.CacheTTL, opts.Clock),
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

// AuthenticateToken checks the static token first, then asks the API server
// with a TokenReview (cached). Rejections wrap one of the sentinel errors; an
// error reaching the API server wraps none of them.
func (a *Authenticator) AuthenticateToken(ctx context.Context, token string) (User, error) {
	if a.static != nil && a.static.match(token) {
		return User{Name: AdminName, admin: true}, nil
	}
	if a.client == nil {
		return User{}, ErrUnauthenticated
	}
	return a.cache.get(ctx, sha256.Sum256([]byte(token)), func(ctx context.Context) (outcome[User], time.Duration, error) {
		return a.review(ctx, token)
	})
}

func (a *Authenticator) review(ctx context.Context, token string) (outcome[User], time.Duration, error) {
	tr := &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: token, Audiences: a.audiences}}
	res, err := a.client.AuthenticationV1().TokenReviews().Create(ctx, tr, metav1.CreateOptions{})
	if err != nil {
		return outcome[User]{}, 0, fmt.Errorf("token review: %w", err)
	}
	st := res.Status
	if !st.Authenticated {
		return outcome[User]{err: a.explain(token, st.Error)}, a.ttl, nil
	}
	// An authenticated review with no audiences means "valid for the API
	// server", not for us: the API docs ask audience-aware clients to check.
	if !intersects(st.Audiences, a.audiences) {
		return outcome[User]{err: fmt.Errorf("%w: valid for %v", ErrWrongAudience, st.Audiences)}, a.ttl, nil
	}
	extra := make(map[string][]string, len(st.User.Extra))
	for k, v := range st.User.Extra {
		extra[k] = append([]string(nil), v...)
	}
	u := newUser(st.User.Username, st.User.UID, st.User.Groups, extra)
	ttl := a.ttl
	// Never serve an accepted token from the cache after it expires.
	if c, ok := peekClaims(token); ok {
		if exp, ok := c.expiry(); ok {
			ttl = min(ttl, exp.Sub(a.clock.Now()))
		}
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
