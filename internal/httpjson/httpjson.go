// Package httpjson is how lastcall's HTTP APIs (the gate, the state API)
// answer: JSON bodies with their length, and one error shape,
// {"error": "...", "reason": "..."}, with the headers each status calls for.
package httpjson

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/lastcall-dev/lastcall/internal/auth"
)

// Error is the body of every error answer.
type Error struct {
	Error  string `json:"error"`
	Reason string `json:"reason"`
}

// ErrAuthUnavailable marks a failure to check credentials (the API server
// could not be asked): 503, retry.
var ErrAuthUnavailable = errors.New("cannot check credentials now")

// AuthError returns err from auth's Authenticate or Authorize ready for
// AuthStatus: rejections and throttling as they are, anything else marked
// ErrAuthUnavailable.
func AuthError(err error) error {
	if err == nil || auth.IsRejection(err) || errors.Is(err, auth.ErrThrottled) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrAuthUnavailable, err)
}

// AuthStatus maps an authentication or authorization error to its status
// and reason; ok is false for any other error.
func AuthStatus(err error) (code int, reason string, ok bool) {
	switch {
	case errors.Is(err, ErrAuthUnavailable):
		return http.StatusServiceUnavailable, auth.ReasonAuthUnavailable, true
	case errors.Is(err, auth.ErrThrottled), auth.IsRejection(err):
		code, reason = auth.StatusFor(err)
		return code, reason, true
	}
	return 0, "", false
}

// Fail answers err with code and reason. 401 says how to authenticate, 429
// and 503 when to retry; a 5xx is logged and answered without its detail,
// which may name files, buckets or hosts.
func Fail(w http.ResponseWriter, r *http.Request, log *slog.Logger, code int, reason string, err error) {
	msg := err.Error()
	switch {
	case code == http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="lastcall"`)
	case code == http.StatusTooManyRequests:
		w.Header().Set("Retry-After", "1")
	}
	if code >= 500 {
		if code == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "5")
		}
		log.Error("request failed", "method", r.Method, "path", r.URL.Path, "code", code, "err", err)
		msg = http.StatusText(code)
	}
	Write(w, code, Error{Error: msg, Reason: reason})
}

// Write answers v as JSON with its length, so that the client has the
// whole answer even while the handler goes on.
func Write(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // only our own plain structs are written
		code, b = http.StatusInternalServerError, []byte(`{"error":"Internal Server Error","reason":"Internal"}`)
	}
	b = append(b, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(code)
	_, _ = w.Write(b) // the client is gone if this fails
}
