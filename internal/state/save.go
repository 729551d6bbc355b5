package state

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// saveRequest is the body of POST /state/save. Unknown fields are ignored.
type saveRequest struct {
	Data      json.RawMessage `json:"data"`
	Namespace string          `json:"namespace"`
	Key       string          `json:"key"`
	Pod       string          `json:"pod"`
}

// saved is a parsed, validated saveRequest.
type saved struct {
	namespace, key, pod string
	contentType         string
	payload             []byte
}

// parseSaveBody parses and validates a save body. A JSON string in "data"
// is stored as its bytes, any other JSON value as its raw JSON. The
// namespace defaults to the caller's own (callerNS, "" for non-
// ServiceAccounts), the key to the pod name, else "default".
func parseSaveBody(body []byte, callerNS string) (saved, error) {
	var req saveRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return saved{}, fmt.Errorf("%w: %w", ErrInvalidBody, err)
	}
	if len(req.Data) == 0 || bytes.Equal(req.Data, []byte("null")) {
		return saved{}, fmt.Errorf("%w: no data", ErrInvalidBody)
	}
	out := saved{namespace: req.Namespace, key: req.Key, pod: req.Pod}
	if req.Data[0] == '"' {
		var str string
		if err := json.Unmarshal(req.Data, &str); err != nil {
			return saved{}, fmt.Errorf("%w: data: %w", ErrInvalidBody, err)
		}
		out.payload, out.contentType = []byte(str), "text/plain; charset=utf-8"
	} else {
		out.payload, out.contentType = req.Data, "application/json"
	}
	if out.namespace == "" {
		out.namespace = callerNS
	}
	if err := ValidateNamespace(out.namespace); err != nil {
		return saved{}, err
	}
	if err := validatePod(out.pod); err != nil {
		return saved{}, err
	}
	if out.key == "" {
		out.key = out.pod
	}
	if out.key == "" {
		out.key = "default"
	}
	if _, err := ParseKey(out.key); err != nil {
		return saved{}, err
	}
	return out, nil
}

// save is the curl-friendly write: a small JSON body instead of a raw PUT.
func (s *Server) save(w http.ResponseWriter, r *http.Request) {
	u, err := s.authenticate(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if r.ContentLength > s.opts.MaxSaveBytes {
		s.fail(w, r, &http.MaxBytesError{Limit: s.opts.MaxSaveBytes})
		return
	}
	// Small by contract (1 MiB by default), so it is read whole to parse it.
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxSaveBytes))
	if err != nil {
		s.fail(w, r, fmt.Errorf("%w: %w", ErrIncompleteBody, err))
		return
	}
	req, err := parseSaveBody(body, u.Namespace)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.authorize(r, u, "create", req.namespace); err != nil {
		s.fail(w, r, err)
		return
	}
	if req.pod == "" {
		req.pod = u.PodName()
	}
	m, err := s.putWithin(r.Context(), PutOptions{
		Namespace:   req.namespace,
		Key:         req.key,
		Pod:         req.pod,
		ContentType: req.contentType,
		Created:     s.clock.Now(),
	}, bytes.NewReader(req.payload), int64(len(req.payload)))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.metrics.bytes.WithLabelValues(opSave).Add(float64(m.Size))
	writeJSON(w, http.StatusCreated, m)
	s.pruneAfterWrite(w, r, req.namespace, req.key)
}
