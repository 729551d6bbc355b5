package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"k8s.io/client-go/rest"
)

// maxTokenBytes bounds what is hashed, parsed or sent for review. Kubernetes
// ServiceAccount tokens are about 1 KiB; 8 KiB leaves room for many claims.
const maxTokenBytes = 8 << 10

// LegacyIssuer is the "iss" of ServiceAccount tokens stored in Secrets, which
// the API server still accepts where they exist.
const LegacyIssuer = "kubernetes/serviceaccount"

// screen refuses, without asking the API server, a token that cannot be one
// this server accepts: not a signed JWT, expired, for other audiences, or
// (when issuers are known) from another issuer. It only ever refuses; a token
// that passes is still reviewed. Messages never echo what the caller sent.
func (a *Authenticator) screen(token string) error {
	if len(token) > maxTokenBytes {
		return fmt.Errorf("%w: token longer than %d bytes", ErrUnauthenticated, maxTokenBytes)
	}
	h, c, ok := peekJWT(token)
	switch {
	case !ok:
		return fmt.Errorf("%w: not a JSON Web Token", ErrUnauthenticated)
	case h.Alg == "" || strings.EqualFold(h.Alg, "none"):
		return fmt.Errorf("%w: token is not signed", ErrUnauthenticated)
	case len(c.Audience) > 0 && !intersects(c.Audience, a.audiences):
		return fmt.Errorf("%w: accepted audiences are %v", ErrWrongAudience, a.audiences)
	case len(a.issuers) > 0 && !slices.Contains(a.issuers, c.Issuer):
		return fmt.Errorf("%w: token not issued by this cluster", ErrUnauthenticated)
	}
	if exp, ok := c.expiry(); ok && !a.clock.Now().Before(exp) {
		return ErrTokenExpired
	}
	return nil
}

// DiscoverIssuer asks the API server for its ServiceAccount token issuer
// (OIDC discovery, readable by every ServiceAccount through the default
// system:service-account-issuer-discovery binding).
func DiscoverIssuer(ctx context.Context, c rest.Interface) (string, error) {
	body, err := c.Get().AbsPath("/.well-known/openid-configuration").DoRaw(ctx)
	if err != nil {
		return "", fmt.Errorf("read the API server's OIDC discovery document: %w", err)
	}
	var doc struct {
		Issuer string `json:"issuer"`
	}
	if err := json.Unmarshal(body, &doc); err != nil || doc.Issuer == "" {
		return "", fmt.Errorf("the API server's OIDC discovery document names no issuer (%v)", err)
	}
	return doc.Issuer, nil
}
