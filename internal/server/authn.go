package server

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/lastcall-dev/lastcall/internal/auth"
)

// newAuthenticator checks bearer tokens: the static control token, else a
// TokenReview sent on a client of its own (its own rate limit), for tokens
// that look like this cluster's (issuer, audience, expiry) only.
func newAuthenticator(restCfg *rest.Config, cfg Config, log *slog.Logger) (*auth.Authenticator, error) {
	rc := rest.CopyConfig(restCfg)
	rc.QPS, rc.Burst = 2*cfg.TokenReviewQPS, 2*cfg.TokenReviewBurst
	rc.RateLimiter = nil
	reviews, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	issuers := cfg.TokenIssuers
	if len(issuers) == 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		iss, err := auth.DiscoverIssuer(ctx, reviews.Discovery().RESTClient())
		if err != nil {
			// Without it every well-formed JWT is reviewed, as before.
			log.Warn("ServiceAccount token issuer unknown; tokens are not screened by issuer (set --token-issuer)", "err", err)
		} else {
			issuers = []string{iss, auth.LegacyIssuer}
		}
	}
	a, err := auth.NewAuthenticator(auth.AuthenticatorOptions{
		TokenFile:   cfg.ControlTokenFile,
		Client:      reviews,
		Audiences:   []string{cfg.Audience},
		Issuers:     issuers,
		ReviewQPS:   cfg.TokenReviewQPS,
		ReviewBurst: cfg.TokenReviewBurst,
		Logger:      log,
	})
	if err != nil {
		return nil, fmt.Errorf("control token: %w", err)
	}
	return a, nil
}
