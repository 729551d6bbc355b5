package state

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestNamespaceQuotaAnswers507WithTheReason: a namespace at its key limit
// may still write new versions of its keys but no new key; one at its
// byte limit may write nothing that does not fit; both get 507
// QuotaExceeded saying which limit, other namespaces are not affected, and
// the usage is in the metrics.
func TestNamespaceQuotaAnswers507WithTheReason(t *testing.T) {
	store, _ := newFileStore(t)
	srv := newTestServer(t, store, Options{NamespaceMaxKeys: 2, NamespaceMaxBytes: 10 << 10})
	put := func(ns, key string, n int) reply {
		return do(t, http.MethodPut, srv.URL+"/v1/state/"+ns+"/"+key, adminToken, bytes.Repeat([]byte("x"), n), nil)
	}
	for _, key := range []string{"a", "b"} {
		if r := put("shop", key, 1000); r.code != http.StatusCreated {
			t.Fatalf("save %s: %d %s", key, r.code, r.body)
		}
	}
	r := put("shop", "c", 10)
	if r.code != http.StatusInsufficientStorage || r.errorBody(t).Reason != ReasonQuotaExceeded || !strings.Contains(r.errorBody(t).Error, "2 keys") {
		t.Fatalf("a third key: %d %s, want 507 QuotaExceeded naming the key limit", r.code, r.body)
	}
	if r := put("shop", "a", 1000); r.code != http.StatusCreated {
		t.Fatalf("a new version of a key at the key limit: %d %s", r.code, r.body)
	}
	r = put("shop", "b", 9000)
	if r.code != http.StatusInsufficientStorage || !strings.Contains(r.errorBody(t).Error, "bytes of its 10240") {
		t.Fatalf("a version past the byte limit: %d %s, want 507 naming the byte limit", r.code, r.body)
	}
	if r := put("other", "c", 1000); r.code != http.StatusCreated {
		t.Fatalf("another namespace: %d %s", r.code, r.body)
	}
	if got := testutil.ToFloat64(srv.quota.keys.WithLabelValues("shop")); got != 2 {
		t.Errorf("lastcall_state_namespace_keys{shop} = %v, want 2", got)
	}
	if got := testutil.ToFloat64(srv.quota.bytes.WithLabelValues("shop")); got < 3000 {
		t.Errorf("lastcall_state_namespace_bytes{shop} = %v, want the three versions' bytes", got)
	}
}
