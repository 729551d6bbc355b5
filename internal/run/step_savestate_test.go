package run

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
)

// memStateStore keeps what a saveState step hands it.
type memStateStore struct {
	got  StateToSave
	body []byte
	err  error
}

func (m *memStateStore) PutState(_ context.Context, s StateToSave) (SavedState, error) {
	m.got = s
	b, err := io.ReadAll(s.Body)
	if err != nil {
		return SavedState{}, err
	}
	m.body = b
	if m.err != nil {
		return SavedState{}, m.err
	}
	return SavedState{Version: "20261125T060512.123456789Z-3f9a", Size: int64(len(b)), SHA256: "9f86d0"}, nil
}

func saveTarget(t *testing.T, srvURL string, spec v1alpha1.SaveStateAction) Target {
	t.Helper()
	u, err := url.Parse(srvURL)
	if err != nil {
		t.Fatal(err)
	}
	spec.URL = "http://" + u.Host + "/state/{{.Pod.Name}}"
	urls, err := NewURLAllowList([]string{"http://" + u.Host + "/"})
	if err != nil {
		t.Fatal(err)
	}
	return Target{
		URLs:   urls,
		Pod:    &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "db-0", Namespace: "shop", Labels: map[string]string{"app": "db"}}},
		Run:    &v1alpha1.TerminationRun{ObjectMeta: metav1.ObjectMeta{Name: "r1"}},
		Policy: &v1alpha1.TerminationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p"}},
		Step:   &v1alpha1.Step{Name: "save", SaveState: &spec},
	}
}

func TestSaveStateStreamsThePodsAnswerIntoTheStore(t *testing.T) {
	var gotPath, gotAuth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath, gotAuth = r.URL.Path, r.Header.Get("Authorization")
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Content-SHA256", "abc123")
		_, _ = io.WriteString(w, `{"offset":4711}`)
	}))
	defer srv.Close()
	store := &memStateStore{}
	a := SaveStateAction{Client: srv.Client(), Store: store}

	spec := v1alpha1.SaveStateAction{Endpoint: v1alpha1.Endpoint{Headers: map[string]string{"Authorization": "Bearer {{.Pod.Labels.app}}"}}}
	msg, err := a.Do(context.Background(), saveTarget(t, srv.URL, spec))
	if err != nil {
		t.Fatal(err)
	}
	want := StateToSave{Namespace: "shop", Key: "db-0", Pod: "db-0", ContentType: "application/json", SHA256: "abc123"}
	if store.got.Namespace != want.Namespace || store.got.Key != want.Key || store.got.Pod != want.Pod ||
		store.got.ContentType != want.ContentType || store.got.SHA256 != want.SHA256 || string(store.body) != `{"offset":4711}` {
		t.Fatalf("stored %+v with body %q, want %+v", store.got, store.body, want)
	}
	if gotPath != "/state/db-0" || gotAuth != "Bearer db" {
		t.Fatalf("the pod got GET %s with Authorization %q", gotPath, gotAuth)
	}
	for _, part := range []string{"pod db-0", "15 bytes", "shop/db-0", "20261125T060512.123456789Z-3f9a", "sha256 9f86d0"} {
		if !strings.Contains(msg, part) {
			t.Errorf("message %q lacks %q", msg, part)
		}
	}

	spec.Key = "cache/{{.Policy.Name}}-{{.Pod.Name}}"
	if _, err := a.Do(context.Background(), saveTarget(t, srv.URL, spec)); err != nil || store.got.Key != "cache/p-db-0" {
		t.Fatalf("templated key %q, %v", store.got.Key, err)
	}
}

func TestSaveStateFailures(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/state/db-0":
			http.Error(w, "state store down", http.StatusServiceUnavailable)
		default:
			w.Header().Set("Content-Type", "not a media type;;")
			_, _ = w.Write(bytes.Repeat([]byte("x"), 10))
		}
	}))
	defer srv.Close()

	store := &memStateStore{}
	a := SaveStateAction{Client: srv.Client(), Store: store}
	_, err := a.Do(context.Background(), saveTarget(t, srv.URL, v1alpha1.SaveStateAction{}))
	if err == nil || errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), "503") || store.body != nil {
		t.Fatalf("a 503 from the pod: %v (stored %q); want a retryable error and nothing stored", err, store.body)
	}

	spec := v1alpha1.SaveStateAction{Key: "{{.Pod.Nope}}"}
	if _, err := a.Do(context.Background(), saveTarget(t, srv.URL, spec)); !errors.Is(err, ErrPermanent) {
		t.Fatalf("a key template that cannot render: %v, want permanent", err)
	}

	// A malformed Content-Type from the app is dropped, not fatal; the
	// store's error is passed on with the pod and key.
	store.err = errors.New("disk full")
	tg := saveTarget(t, srv.URL, v1alpha1.SaveStateAction{Key: "k"})
	tg.Step.SaveState.URL = strings.Replace(tg.Step.SaveState.URL, "{{.Pod.Name}}", "other", 1)
	_, err = a.Do(context.Background(), tg)
	if err == nil || !strings.Contains(err.Error(), "disk full") || !strings.Contains(err.Error(), "shop/k") || store.got.ContentType != "" {
		t.Fatalf("store failure: %v, content type %q", err, store.got.ContentType)
	}
}
