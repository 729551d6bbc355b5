package run

import (
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// StateStore stores one version of a pod's state. The state service's store
// satisfies it through a small adapter in internal/server, which keeps this
// package free of the blob and cloud SDK imports.
type StateStore interface {
	PutState(ctx context.Context, s StateToSave) (SavedState, error)
}

// StateToSave is one payload fetched from a pod, streamed from Body.
type StateToSave struct {
	Namespace, Key, Pod string
	// ContentType is the pod's answer's media type; "" when it sent none.
	ContentType string
	// SHA256 is the pod's X-Content-SHA256 answer header (hex), if any: the
	// version is then committed only if the payload matches it.
	SHA256 string
	Body   io.Reader
}

// SavedState describes the stored version.
type SavedState struct {
	Version string
	Size    int64
	SHA256  string
}

// DefaultStateKey names a pod's state when a saveState step gives no key:
// the pod name, which a StatefulSet's replacement pod shares.
const DefaultStateKey = "{{.Pod.Name}}"

// SaveStateAction GETs the pod's state endpoint and streams the answer into
// the state service under the rendered key, in the pod's namespace. The body
// is never held whole in memory; a body cut short stores nothing (the saver
// aborts the version), so a retry starts clean. Running the step twice
// stores two versions, the newer one winning, as a repeated preStop hook
// does.
type SaveStateAction struct {
	Client *http.Client
	Store  StateStore
}

// Do implements Action.
func (a SaveStateAction) Do(ctx context.Context, t Target) (string, error) {
	spec := t.Step.SaveState
	if t.Pod == nil {
		return "", permanent("saveState needs a pod")
	}
	url, err := endpointURL(spec.Endpoint, t)
	if err != nil {
		return "", err
	}
	keyTmpl := spec.Key
	if keyTmpl == "" {
		keyTmpl = DefaultStateKey
	}
	key, err := render("key", keyTmpl, dataFor(t))
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", permanent("build request: %v", err)
	}
	hs, err := renderHeaders(spec.Headers, t)
	if err != nil {
		return "", err
	}
	for k, v := range hs {
		req.Header.Set(k, v)
	}
	resp, err := a.Client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		text, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return "", fmt.Errorf("GET %s: unexpected status %d: %s", url, resp.StatusCode, trim(strings.TrimSpace(string(text))))
	}
	saved, err := a.Store.PutState(ctx, StateToSave{
		Namespace:   t.Pod.Namespace,
		Key:         key,
		Pod:         t.Pod.Name,
		ContentType: mediaType(resp.Header.Get("Content-Type")),
		SHA256:      resp.Header.Get("X-Content-SHA256"),
		Body:        resp.Body,
	})
	if err != nil {
		return "", fmt.Errorf("save state of pod %s from GET %s as %s/%s: %w", t.Pod.Name, url, t.Pod.Namespace, key, err)
	}
	return fmt.Sprintf("pod %s: GET %s: %d bytes saved as %s/%s version %s (sha256 %s)",
		t.Pod.Name, url, saved.Size, t.Pod.Namespace, key, saved.Version, saved.SHA256), nil
}

// mediaType keeps a well-formed Content-Type and drops anything else: the
// app's answer header is not ours to refuse the state for.
func mediaType(ct string) string {
	if ct == "" {
		return ""
	}
	if _, _, err := mime.ParseMediaType(ct); err != nil {
		return ""
	}
	return ct
}

var _ Action = SaveStateAction{}
