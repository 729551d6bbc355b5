package state

import (
	"errors"
	"net/http"
	"syscall"

	"github.com/lastcall-dev/lastcall/internal/httpjson"
)

// errorBody is the JSON shape of every error the API answers, as for all of
// lastcall's HTTP APIs.
type errorBody = httpjson.Error

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
	// ReasonStorageFull: the store's disk (or quota) has no room for the
	// object; nothing was stored, and reads go on.
	ReasonStorageFull = "StorageFull"
	// ReasonQuotaExceeded: the namespace is at its byte or key limit.
	ReasonQuotaExceeded = "QuotaExceeded"
)

// statusFor maps an error to its status code and reason.
func statusFor(err error) (int, string) {
	var tooLarge *http.MaxBytesError
	if code, reason, ok := httpjson.AuthStatus(err); ok {
		return code, reason
	}
	switch {
	case errors.As(err, &tooLarge):
		return http.StatusRequestEntityTooLarge, ReasonTooLarge
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound, ReasonNotFound
	case errors.Is(err, ErrCorrupt):
		return http.StatusConflict, ReasonCorrupt
	case errors.Is(err, ErrQuotaExceeded):
		return http.StatusInsufficientStorage, ReasonQuotaExceeded
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return http.StatusInsufficientStorage, ReasonStorageFull
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

// fail answers err as JSON.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	code, reason := statusFor(err)
	if reason == ReasonQuotaExceeded {
		// A 5xx answer hides its detail (a storage error may name files or
		// buckets); this one only describes the caller's own namespace,
		// and the caller needs it.
		httpjson.Write(w, code, errorBody{Error: err.Error(), Reason: reason})
		return
	}
	httpjson.Fail(w, r, s.log, code, reason, err)
}

func writeJSON(w http.ResponseWriter, code int, v any) { httpjson.Write(w, code, v) }
