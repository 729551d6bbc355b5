package auth

import (
	"net/http"
	"strings"
)

// BearerToken returns the token of an "Authorization: Bearer <token>"
// header, ErrNoToken without the header and ErrBadScheme for any other form.
func BearerToken(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", ErrNoToken
	}
	scheme, token, ok := strings.Cut(h, " ")
	// The scheme is case-insensitive (RFC 9110 section 11.1).
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", ErrBadScheme
	}
	token = strings.TrimSpace(token)
	if token == "" || strings.ContainsAny(token, " \t") {
		return "", ErrBadScheme
	}
	return token, nil
}
