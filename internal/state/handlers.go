package state

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// Headers of the object API.
const (
	HeaderSHA256  = "X-Content-SHA256"
	HeaderPod     = "X-Lastcall-Pod"
	HeaderVersion = "X-Lastcall-Version"
	// HeaderNewerCorrupt names the newest version of the key when it is
	// damaged and an older intact version is served instead.
	HeaderNewerCorrupt = "X-Lastcall-Newer-Corrupt"
)

// put stores the request body as a new version of the key.
func (s *Server) put(w http.ResponseWriter, r *http.Request) {
	u, ns, err := s.begin(r, "create")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	key, err := ParseKey(r.PathValue("key"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// Refuse a declared oversize body before reading any of it; a chunked
	// one is cut off by MaxBytesReader when it crosses the limit.
	if r.ContentLength > s.opts.MaxObjectBytes {
		s.fail(w, r, &http.MaxBytesError{Limit: s.opts.MaxObjectBytes})
		return
	}
	pod := r.Header.Get(HeaderPod)
	if pod == "" {
		pod = u.PodName()
	}
	opts := PutOptions{
		Namespace:   ns,
		Key:         key,
		Pod:         pod,
		ContentType: r.Header.Get("Content-Type"),
		SHA256:      r.Header.Get(HeaderSHA256),
		Created:     s.clock.Now(),
	}
	if _, declared := r.Trailer[http.CanonicalHeaderKey(HeaderSHA256)]; declared {
		// A client that hashes while it streams (lastcall prestop) sends
		// the digest after the body; it is there once the body is read.
		opts.TrailerSHA256 = func() string { return r.Trailer.Get(HeaderSHA256) }
	}
	m, err := s.putWithin(r.Context(), opts, http.MaxBytesReader(w, r.Body, s.opts.MaxObjectBytes), r.ContentLength)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.metrics.bytes.WithLabelValues(opPut).Add(float64(m.Size))
	writeJSON(w, http.StatusCreated, m)
	s.pruneAfterWrite(w, r, ns, key)
}

// get answers the payload of the newest version, or of ?version=.
func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	_, ns, err := s.begin(r, "get")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	key, err := ParseKey(r.PathValue("key"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	obj, err := s.store.Open(r.Context(), ns, key, r.URL.Query().Get("version"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer obj.Close()
	h := w.Header()
	h.Set("Content-Type", obj.ContentType)
	h.Set("Content-Length", strconv.FormatInt(obj.Size, 10))
	h.Set(HeaderSHA256, obj.SHA256)
	h.Set(HeaderVersion, obj.ID)
	if obj.NewerCorrupt != "" {
		h.Set(HeaderNewerCorrupt, obj.NewerCorrupt)
	}
	if obj.Pod != "" {
		h.Set(HeaderPod, obj.Pod)
	}
	h.Set("Last-Modified", obj.Created.Format(http.TimeFormat))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	n, err := io.Copy(w, obj)
	s.metrics.bytes.WithLabelValues(opGet).Add(float64(n))
	if err != nil {
		// The status is sent: the client sees a body shorter than
		// Content-Length, and the log says why.
		s.log.Warn("send state", "namespace", ns, "key", key, "version", obj.ID, "sent", n, "err", err)
	}
}

// list answers every key of the namespace with its versions.
func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	_, ns, err := s.begin(r, "list")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	items, err := s.store.List(r.Context(), ns)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Items []Item `json:"items"`
	}{items})
}

// delete removes every version of the key, or only ?version=.
func (s *Server) delete(w http.ResponseWriter, r *http.Request) {
	_, ns, err := s.begin(r, "delete")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	key, err := ParseKey(r.PathValue("key"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.store.Delete(r.Context(), ns, key, r.URL.Query().Get("version")); err != nil {
		s.fail(w, r, fmt.Errorf("delete %s/%s: %w", ns, key, err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
