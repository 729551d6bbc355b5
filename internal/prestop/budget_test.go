package prestop

import (
	"context"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

// fakeAPIServer serves GET of pod shop/web-0 with the given JSON, over TLS,
// and a ServiceAccount directory that trusts it.
func fakeAPIServer(t *testing.T, status int, podJSON string) (url, saDir string) {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/namespaces/shop/pods/web-0" || r.Header.Get("Authorization") != "Bearer sa-token" {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		w.WriteHeader(status)
		fmt.Fprint(w, podJSON)
	}))
	t.Cleanup(srv.Close)
	saDir = t.TempDir()
	writeFile(t, filepath.Join(saDir, "token"), "sa-token\n")
	writeFile(t, filepath.Join(saDir, "ca.crt"), string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})))
	return srv.URL, saDir
}

func TestBudgetComesFromThePodWhenNotGiven(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name       string
		status     int
		pod        string
		want       time.Duration
		wantSource string
	}{
		{"deletionTimestamp − now", 200,
			`{"metadata":{"deletionTimestamp":"2025-03-01T12:00:20Z","deletionGracePeriodSeconds":30},"spec":{"terminationGracePeriodSeconds":30}}`,
			20 * time.Second, "deletionTimestamp 2025-03-01T12:00:20Z"},
		{"capped by the grace period when the node clock runs behind", 200,
			`{"metadata":{"deletionTimestamp":"2025-03-01T12:01:40Z","deletionGracePeriodSeconds":30}}`,
			30 * time.Second, "deletionTimestamp"},
		{"deadline already passed", 200,
			`{"metadata":{"deletionTimestamp":"2025-03-01T11:59:58Z","deletionGracePeriodSeconds":30}}`,
			-2 * time.Second, "deletionTimestamp"},
		{"not being deleted: a probe restart", 200,
			`{"metadata":{},"spec":{"terminationGracePeriodSeconds":45}}`,
			45 * time.Second, "terminationGracePeriodSeconds"},
		{"no RBAC: assume the default and say why", 403, `{}`,
			DefaultFallbackBudget, "assumed (Kubernetes default): get pod shop/web-0: 403 Forbidden"},
		{"garbage", 200, `{"metadata":`,
			DefaultFallbackBudget, "assumed (Kubernetes default): decode pod shop/web-0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url, saDir := fakeAPIServer(t, tc.status, tc.pod)
			clk := clocktesting.NewFakeClock(now)
			h := NewHook(Config{Pod: "web-0", Namespace: "shop", APIServer: url, ServiceAccountDir: saDir}, clk, testLogger(t), nil)
			got := h.resolveBudget(context.Background(), now)
			if got.Total != tc.want || !strings.HasPrefix(got.Source, tc.wantSource) {
				t.Errorf("budget %s from %q, want %s from %q…", got.Total, got.Source, tc.want, tc.wantSource)
			}
		})
	}
}

func TestBudgetFlagWinsAndNoClusterMeansTheDefault(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	clk := clocktesting.NewFakeClock(time.Now())
	h := NewHook(Config{Budget: 7 * time.Second}, clk, testLogger(t), nil)
	if b := h.resolveBudget(context.Background(), clk.Now()); b.Total != 7*time.Second || b.Source != "--budget" {
		t.Errorf("got %+v", b)
	}
	h = NewHook(Config{Pod: "p", Namespace: "n"}, clk, testLogger(t), nil)
	if b := h.resolveBudget(context.Background(), clk.Now()); b.Total != DefaultFallbackBudget || !strings.Contains(b.Source, "KUBERNETES_SERVICE_HOST unset") {
		t.Errorf("got %+v", b)
	}
}

func TestAPIServerURLComesFromTheServiceEnvironment(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
	t.Setenv("KUBERNETES_SERVICE_PORT", "443")
	if got := (Config{}).withDefaults().APIServer; got != "https://[fd00::1]:443" {
		t.Errorf("APIServer = %q", got)
	}
}
