package httpjson

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/lastcall-dev/lastcall/internal/auth"
)

func TestFailHeadersAndHiddenDetail(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, c := range []struct {
		err                  error
		code                 int
		reason, header, want string
	}{
		{auth.ErrNoToken, 401, auth.ReasonNoToken, "WWW-Authenticate", `Bearer realm="lastcall"`},
		{AuthError(auth.ErrThrottled), 429, auth.ReasonAuthThrottled, "Retry-After", "1"},
		{AuthError(errors.New("dial tcp 10.0.0.1:6443: refused")), 503, auth.ReasonAuthUnavailable, "Retry-After", "5"},
	} {
		code, reason, ok := AuthStatus(c.err)
		if !ok || code != c.code || reason != c.reason {
			t.Fatalf("AuthStatus(%v) = %d %s %v, want %d %s", c.err, code, reason, ok, c.code, c.reason)
		}
		w := httptest.NewRecorder()
		Fail(w, httptest.NewRequest(http.MethodGet, "/", nil), quiet, code, reason, c.err)
		var body Error
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Reason != c.reason || w.Header().Get(c.header) != c.want {
			t.Fatalf("%d: body %s, %s %q", code, w.Body, c.header, w.Header().Get(c.header))
		}
		if code >= 500 && body.Error != http.StatusText(code) {
			t.Errorf("a 5xx answered its detail: %q", body.Error)
		}
	}
	if _, _, ok := AuthStatus(errors.New("other")); ok {
		t.Error("an unrelated error mapped to an auth status")
	}
}
