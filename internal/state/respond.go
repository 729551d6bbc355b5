package state

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/lastcall-dev/lastcall/internal/auth"
)

// errorBody is the JSON shape of every error the API answers, as for all of
// lastcall's HTTP APIs.
type errorBody struct {
	Error  string `json:"error"`
	Reason string `json:"reason"`
}

// Reasons for errors that are not about credentials (see auth for those).
const (
	ReasonInvalidKey         = "InvalidKey"
	ReasonInvalidNamespace   = "InvalidNamespace"
	ReasonInvalidVersion     = "InvalidVersion"
	ReasonInvalidPod         = "InvalidPod"
	ReasonInvalidContentType = "InvalidContentType"
	ReasonInvalidChecksum    = "InvalidChecksum"
	ReasonInvalidBody        = "InvalidBody"
	ReasonChecksumMismatch   = "ChecksumMismatch"
	ReasonIncompleteBody     = "IncompleteBody"
	ReasonTooLarge           = "TooLarge"
	ReasonNotFound           = "NotFound"
	ReasonCorrupt            = "Corrupt"
	ReasonInternal           = "Internal"
)

// statusFor maps an error to its status code and reason.
func statusFor(err error) (int, string) {
	var tooLarge *http.MaxBytesError
	switch {
	case errors.Is(err, errAuthUnavailable):
		return http.StatusServiceUnavailable, auth.ReasonAuthUnavailable
	case auth.IsRejection(err):
		return auth.StatusFor(err)
	case errors.As(err, &tooLarge):
		return http.StatusRequestEntityTooLarge, ReasonTooLarge
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound, ReasonNotFound
	case errors.Is(err, ErrCorrupt):
		return http.StatusConflict, ReasonCorrupt
	}
	for _, m := range []struct {
		err    error
		reason string
	}{
		{ErrInvalidKey, ReasonInvalidKey},
		{ErrInvalidNamespace, ReasonInvalidNamespace},
		{ErrInvalidVersion, ReasonInvalidVersion},
		{ErrInvalidPod, ReasonInvalidPod},
		{ErrInvalidContentType, ReasonInvalidContentType},
		{ErrInvalidChecksum, ReasonInvalidChecksum},
		{ErrInvalidBody, ReasonInvalidBody},
		{ErrChecksumMismatch, ReasonChecksumMismatch},
		{ErrIncompleteBody, ReasonIncompleteBody},
	} {
		if errors.Is(err, m.err) {
			return http.StatusBadRequest, m.reason
		}
	}
	return http.StatusInternalServerError, ReasonInternal
}

// fail answers err as JSON. Server-side failures are logged and answered
// without their detail, which may name files or buckets.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	code, reason := statusFor(err)
	msg := err.Error()
	switch {
	case code == http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="lastcall"`)
	case code >= 500:
		s.log.Error("state request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		msg = http.StatusText(code)
	}
	writeJSON(w, code, errorBody{Error: msg, Reason: reason})
}

// writeJSON answers v with its length, so that the client has the whole
// answer even while the handler goes on (pruning after a write).
func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"Internal Server Error","reason":"Internal"}`)
	}
	b = append(b, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(code)
	_, _ = w.Write(b) // the client is gone if this fails
}
