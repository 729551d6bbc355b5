package gate

import (
	"errors"
	"io"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/lastcall-dev/lastcall/internal/httpjson"
)

// Reasons for errors that are not about credentials (see auth for those).
const (
	ReasonInvalidPayload   = "InvalidPayload"
	ReasonMethodNotAllowed = "MethodNotAllowed"
	ReasonTooLarge         = "TooLarge"
	ReasonNotFound         = "NotFound"
	ReasonInternal         = "Internal"
	ReasonTooManyEvents    = "TooManyEvents"
	// ReasonNotSynced: this replica has not read the cluster yet (it
	// started during an API server outage); Flagger retries on its next
	// tick, and the answer is "not yet" until then.
	ReasonNotSynced = "NotSynced"
)

// Results label lastcall_gate_decisions_total.
const (
	resultOpen     = "open"     // a check passed (200)
	resultClosed   = "closed"   // a check held the canary (403)
	resultAccepted = "accepted" // a control request or event was applied
	resultInvalid  = "invalid"  // bad input (400, 404, 413)
	resultDenied   = "denied"   // no or bad credentials (401, 403)
	resultError    = "error"    // the server could not answer (5xx)
)

var (
	errNotPost   = errors.New("send POST with Flagger's JSON payload")
	errNotFound  = errors.New("not found")
	errNotSynced = errors.New("this replica has not synced its cache with the API server yet")
)

// statusFor maps an error to its status code, reason and metrics result.
func statusFor(err error) (code int, reason, result string) {
	var tooLarge *http.MaxBytesError
	if code, reason, ok := httpjson.AuthStatus(err); ok {
		if code >= 500 {
			return code, reason, resultError
		}
		return code, reason, resultDenied
	}
	switch {
	case errors.As(err, &tooLarge):
		return http.StatusRequestEntityTooLarge, ReasonTooLarge, resultInvalid
	case errors.Is(err, errNotPost):
		return http.StatusBadRequest, ReasonMethodNotAllowed, resultInvalid
	case errors.Is(err, ErrInvalidPayload), apierrors.IsInvalid(err):
		return http.StatusBadRequest, ReasonInvalidPayload, resultInvalid
	case errors.Is(err, errTooManyEvents):
		return http.StatusTooManyRequests, ReasonTooManyEvents, resultDenied
	case errors.Is(err, errNotFound):
		return http.StatusNotFound, ReasonNotFound, resultInvalid
	case errors.Is(err, errNotSynced):
		return http.StatusServiceUnavailable, ReasonNotSynced, resultError
	}
	return http.StatusInternalServerError, ReasonInternal, resultError
}

// fail answers err as JSON and returns the metrics result.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) string {
	code, reason, result := statusFor(err)
	switch {
	case code == http.StatusBadRequest && reason == ReasonMethodNotAllowed:
		w.Header().Set("Allow", http.MethodPost)
	case code == http.StatusRequestEntityTooLarge:
		// What http.MaxBytesReader would do: the rest of the body is not
		// read, so the connection cannot serve another request.
		w.Header().Set("Connection", "close")
	}
	httpjson.Fail(w, r, s.log, code, reason, err)
	return result
}

func writeJSON(w http.ResponseWriter, code int, v any) { httpjson.Write(w, code, v) }

// writeText answers like flagger-loadtester: a plain word, with the content
// type net/http sniffs for it.
func writeText(w http.ResponseWriter, code int, body string) {
	w.WriteHeader(code)
	if body != "" {
		_, _ = io.WriteString(w, body)
	}
}
