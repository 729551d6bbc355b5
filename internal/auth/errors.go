package auth

import (
	"errors"
	"net/http"
)

// Authentication and authorization errors. Every error returned by
// Authenticate or Authorize wraps one of these, except failures to reach the
// API server, which StatusFor maps to 503.
var (
	// ErrNoToken is returned when the request has no Authorization header.
	ErrNoToken = errors.New("no bearer token")
	// ErrBadScheme is returned when the Authorization header is not
	// "Bearer <token>".
	ErrBadScheme = errors.New("authorization scheme is not Bearer")
	// ErrUnauthenticated is returned when the token is neither the static
	// token nor accepted by the TokenReview (unknown, revoked, or bound to an
	// object that no longer exists).
	ErrUnauthenticated = errors.New("token not authenticated")
	// ErrWrongAudience is returned when the token was issued for audiences
	// other than the ones this server accepts.
	ErrWrongAudience = errors.New("token not issued for this audience")
	// ErrTokenExpired is returned when the TokenReview rejected a token whose
	// expiry has passed.
	ErrTokenExpired = errors.New("token expired")
	// ErrThrottled is returned when a TokenReview would exceed the review
	// rate limit and no recent answer for the token is known: the client
	// should retry (429).
	ErrThrottled = errors.New("too many token reviews; retry shortly")
	// ErrForbidden is returned by Authorize when the user may not do what was
	// asked.
	ErrForbidden = errors.New("forbidden")
)

// Reasons put in the "reason" field of JSON error bodies.
const (
	ReasonNoToken         = "NoToken"
	ReasonBadScheme       = "BadScheme"
	ReasonUnauthenticated = "Unauthenticated"
	ReasonWrongAudience   = "WrongAudience"
	ReasonTokenExpired    = "TokenExpired"
	ReasonForbidden       = "Forbidden"
	ReasonAuthUnavailable = "AuthUnavailable"
	ReasonAuthThrottled   = "AuthThrottled"
)

// StatusFor maps an error from Authenticate or Authorize to an HTTP status
// code and a reason: 401 for the authentication errors, 403 for ErrForbidden,
// 429 for ErrThrottled and 503 for anything else (the API server could not be asked, so the
// client should retry).
func StatusFor(err error) (code int, reason string) {
	switch {
	case errors.Is(err, ErrNoToken):
		return http.StatusUnauthorized, ReasonNoToken
	case errors.Is(err, ErrBadScheme):
		return http.StatusUnauthorized, ReasonBadScheme
	case errors.Is(err, ErrWrongAudience):
		return http.StatusUnauthorized, ReasonWrongAudience
	case errors.Is(err, ErrTokenExpired):
		return http.StatusUnauthorized, ReasonTokenExpired
	case errors.Is(err, ErrUnauthenticated):
		return http.StatusUnauthorized, ReasonUnauthenticated
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden, ReasonForbidden
	case errors.Is(err, ErrThrottled):
		return http.StatusTooManyRequests, ReasonAuthThrottled
	default:
		return http.StatusServiceUnavailable, ReasonAuthUnavailable
	}
}

// IsRejection reports whether err is an authentication or authorization
// refusal (as opposed to a failure to ask the API server).
func IsRejection(err error) bool {
	for _, e := range []error{ErrNoToken, ErrBadScheme, ErrUnauthenticated, ErrWrongAudience, ErrTokenExpired, ErrForbidden} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// RetryAfter is the Retry-After, in seconds, to send with an error from
// Authenticate or Authorize; ok is false for rejections, which retrying does
// not fix.
func RetryAfter(err error) (seconds int, ok bool) {
	switch {
	case err == nil || IsRejection(err):
		return 0, false
	case errors.Is(err, ErrThrottled):
		return 1, true
	}
	return 5, true
}
