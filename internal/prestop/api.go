package prestop

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// Headers of the lastcall state API.
const (
	headerSHA256  = "X-Content-Sha256"
	headerPod     = "X-Lastcall-Pod"
	headerVersion = "X-Lastcall-Version"
	contentTar    = "application/x-tar"
)

// APIError is a non-2xx answer from a lastcall API or the app, with the
// {"error","reason"} body lastcall servers send.
type APIError struct {
	Method, URL string
	Status      int
	Reason      string // e.g. NotFound; empty when the body was not JSON
	Message     string
}

func (e *APIError) Error() string {
	msg := e.Message
	if e.Reason != "" {
		msg = e.Reason + ": " + msg
	}
	s := fmt.Sprintf("%s %s: %d %s", e.Method, e.URL, e.Status, http.StatusText(e.Status))
	if msg != "" {
		s += ": " + msg
	}
	return s
}

// Retryable reports whether a later attempt may succeed: 5xx, and the two
// 400s that say the bytes did not arrive whole (the state server's
// ChecksumMismatch against our trailer, IncompleteBody). Other 4xx mean the
// request itself is wrong (or unauthorized), and stays so.
func (e *APIError) Retryable() bool {
	return e.Status >= 500 || e.Reason == "ChecksumMismatch" || e.Reason == "IncompleteBody"
}

// readAPIError builds an APIError from resp, reading at most 4 KiB of body.
func readAPIError(resp *http.Response) *APIError {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	e := &APIError{Method: resp.Request.Method, URL: redact(resp.Request.URL), Status: resp.StatusCode}
	var j struct{ Error, Reason string }
	if json.Unmarshal(body, &j) == nil && (j.Error != "" || j.Reason != "") {
		e.Message, e.Reason = j.Error, j.Reason
	} else {
		e.Message = strings.TrimSpace(string(bytes.ToValidUTF8(body, []byte("?"))))
	}
	return e
}

// classify turns an APIError into a permanent one when retrying cannot help.
func classify(e *APIError) error {
	if e.Retryable() {
		return e
	}
	return permanent(e)
}

// stateURL is base + /v1/state/{namespace}/{key...}, each path segment
// escaped.
func stateURL(base, namespace, key string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("state URL %q: %w", base, err)
	}
	segs := []string{"v1", "state", namespace}
	segs = append(segs, strings.Split(strings.Trim(key, "/"), "/")...)
	for i, s := range segs {
		if s == "" || s == "." || s == ".." {
			return "", fmt.Errorf("key %q: empty, . or .. path segment", key)
		}
		segs[i] = url.PathEscape(s)
	}
	return strings.TrimRight(u.String(), "/") + "/" + strings.Join(segs, "/"), nil
}

// authorize sets the bearer token read from path now: the kubelet rotates a
// projected token, so an older copy may have expired.
func authorize(req *http.Request, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return permanent(fmt.Errorf("read token: %w", err))
	}
	if tok := strings.TrimSpace(string(b)); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	return nil
}

// redact drops credentials and the query from u for messages.
func redact(u *url.URL) string {
	c := *u
	c.User = nil
	c.RawQuery = ""
	return c.String()
}

// redactString is redact for a URL given as text.
func redactString(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(bad URL)"
	}
	return redact(u)
}
