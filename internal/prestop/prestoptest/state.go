// Package prestoptest has an in-memory lastcall state API (PUT and GET of
// /v1/state/{namespace}/{key...}) for the tests of the preStop and restore
// helpers, following the state API's protocol, trailers included.
package prestoptest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Version is one saved payload.
type Version struct {
	ID          string
	Data        []byte
	SHA256      string
	ContentType string
	Pod         string
	Created     time.Time
	// ChecksumFrom says where the client's checksum came from: "header",
	// "trailer" or "" (none sent).
	ChecksumFrom string
}

// StateServer keeps versions in memory.
type StateServer struct {
	token string
	mu    sync.Mutex
	saved map[string][]Version // by namespace/key
	seq   int
}

// NewStateServer returns a server that wants "Bearer token" (any token when
// token is empty).
func NewStateServer(token string) *StateServer {
	return &StateServer{token: token, saved: map[string][]Version{}}
}

// Register adds the state API's routes to mux.
func (s *StateServer) Register(mux *http.ServeMux) {
	mux.HandleFunc("PUT /v1/state/{namespace}/{key...}", s.put)
	mux.HandleFunc("GET /v1/state/{namespace}/{key...}", s.get)
}

// Versions returns what was saved under namespace/key, oldest first.
func (s *StateServer) Versions(namespace, key string) []Version {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Version(nil), s.saved[namespace+"/"+key]...)
}

// Store saves data as a new version, as a PUT would.
func (s *StateServer) Store(namespace, key, contentType string, data []byte) Version {
	sum := sha256.Sum256(data)
	return s.store(namespace, key, Version{Data: data, SHA256: hex.EncodeToString(sum[:]), ContentType: contentType})
}

func (s *StateServer) store(namespace, key string, v Version) Version {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	v.ID = "v" + strconv.Itoa(s.seq)
	v.Created = time.Now().UTC()
	k := namespace + "/" + key
	s.saved[k] = append(s.saved[k], v)
	return v
}

func (s *StateServer) authorized(w http.ResponseWriter, r *http.Request) bool {
	if s.token == "" || r.Header.Get("Authorization") == "Bearer "+s.token {
		return true
	}
	writeError(w, http.StatusUnauthorized, "Unauthorized", "bad or missing bearer token")
	return false
}

func (s *StateServer) put(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(w, r) {
		return
	}
	hash := sha256.New()
	data, err := io.ReadAll(io.TeeReader(r.Body, hash))
	if err != nil {
		writeError(w, http.StatusBadRequest, "BadRequest", "read body: "+err.Error())
		return
	}
	sum := hex.EncodeToString(hash.Sum(nil))
	v := Version{Data: data, SHA256: sum, ContentType: r.Header.Get("Content-Type"), Pod: r.Header.Get("X-Lastcall-Pod")}
	// The trailer is readable once the body is.
	for _, from := range []struct{ where, value string }{
		{"header", r.Header.Get("X-Content-Sha256")},
		{"trailer", r.Trailer.Get("X-Content-Sha256")},
	} {
		if from.value == "" {
			continue
		}
		if !strings.EqualFold(from.value, sum) {
			writeError(w, http.StatusBadRequest, "ChecksumMismatch", "body sha256 "+sum+" != "+from.where+" "+from.value)
			return
		}
		v.ChecksumFrom = from.where
	}
	ns, key := r.PathValue("namespace"), r.PathValue("key")
	v = s.store(ns, key, v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"namespace": ns, "key": key, "version": v.ID, "size": len(data), "sha256": sum,
		"pod": v.Pod, "contentType": v.ContentType, "created": v.Created,
	})
}

func (s *StateServer) get(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(w, r) {
		return
	}
	versions := s.Versions(r.PathValue("namespace"), r.PathValue("key"))
	var v *Version
	if want := r.URL.Query().Get("version"); want != "" {
		for i := range versions {
			if versions[i].ID == want {
				v = &versions[i]
			}
		}
	} else if len(versions) > 0 {
		v = &versions[len(versions)-1]
	}
	if v == nil {
		writeError(w, http.StatusNotFound, "NotFound", "nothing saved")
		return
	}
	w.Header().Set("X-Content-Sha256", v.SHA256)
	w.Header().Set("X-Lastcall-Version", v.ID)
	w.Header().Set("Content-Type", v.ContentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(v.Data)))
	_, _ = w.Write(v.Data)
}

func writeError(w http.ResponseWriter, status int, reason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg, "reason": reason})
}
