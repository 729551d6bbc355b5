// Package auth decides who is calling lastcall's HTTP APIs and what they may
// do: it authenticates bearer tokens (a static admin token from a file, or a
// Kubernetes ServiceAccount token checked with a TokenReview) and authorizes
// requests with SubjectAccessReviews, caching both briefly.
//
// Basics: NewAuthenticator and NewAuthorizer take an options struct whose
// zero value means the defaults; Authenticate returns a User or one of the
// sentinel errors in errors.go, and StatusFor maps any of them to an HTTP
// status and a reason for the JSON error body.
//
// Caveats: raw tokens are never stored or logged; caches are keyed by the
// token's SHA-256. A cached answer outlives a revoked token (or a deleted pod
// its token is bound to) by at most CacheTTL, and never outlives the token's
// own expiry.
package auth
