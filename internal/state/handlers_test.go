package state

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/lastcall-dev/lastcall/internal/auth"
)

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestPutGetListDeleteRoundTrip(t *testing.T) {
	store, _ := newFileStore(t)
	ts := newTestServer(t, store, Options{})
	url := ts.URL + "/v1/state/team-a/app/cache.tar"

	first := []byte("first version")
	r := do(t, http.MethodPut, url, adminToken, first, map[string]string{
		"Content-Type": "application/x-tar", HeaderPod: "app-7d9f-x2x", HeaderSHA256: sum(first),
	})
	if r.code != http.StatusCreated {
		t.Fatalf("PUT: %d %s", r.code, r.body)
	}
	m1 := r.meta(t)
	if m1.Namespace != "team-a" || m1.Key != "app/cache.tar" || m1.Size != int64(len(first)) || m1.SHA256 != sum(first) ||
		m1.Pod != "app-7d9f-x2x" || m1.ContentType != "application/x-tar" || m1.Created.IsZero() || m1.ID == "" {
		t.Fatalf("PUT answered %+v", m1)
	}
	var raw map[string]any
	_ = json.Unmarshal(r.body, &raw)
	for _, f := range []string{"namespace", "key", "version", "size", "sha256", "pod", "contentType", "created"} {
		if _, ok := raw[f]; !ok {
			t.Errorf("PUT answer lacks %q: %s", f, r.body)
		}
	}

	second := []byte("second, longer version")
	m2 := do(t, http.MethodPut, url, adminToken, strings.NewReader(string(second)), nil).meta(t)

	r = do(t, http.MethodGet, url, adminToken, nil, nil)
	if r.code != http.StatusOK || string(r.body) != string(second) {
		t.Fatalf("GET latest: %d %q", r.code, r.body)
	}
	if r.header.Get(HeaderVersion) != m2.ID || r.header.Get(HeaderSHA256) != sum(second) ||
		r.header.Get("Content-Length") != strconv.Itoa(len(second)) || r.header.Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("GET latest headers: %v", r.header)
	}
	r = do(t, http.MethodHead, url, adminToken, nil, nil)
	if r.code != http.StatusOK || len(r.body) != 0 || r.header.Get("Content-Length") != strconv.Itoa(len(second)) {
		t.Fatalf("HEAD: %d %q %v", r.code, r.body, r.header)
	}
	r = do(t, http.MethodGet, url+"?version="+m1.ID, adminToken, nil, nil)
	if r.code != http.StatusOK || string(r.body) != string(first) || r.header.Get(HeaderPod) != "app-7d9f-x2x" ||
		r.header.Get("Content-Type") != "application/x-tar" {
		t.Fatalf("GET first version: %d %q %v", r.code, r.body, r.header)
	}

	do(t, http.MethodPut, ts.URL+"/v1/state/team-a/app", adminToken, "parent key", nil)
	do(t, http.MethodPut, ts.URL+"/v1/state/team-b/other", adminToken, "elsewhere", nil)
	r = do(t, http.MethodGet, ts.URL+"/v1/state/team-a/", adminToken, nil, nil)
	var list struct{ Items []Item }
	if err := json.Unmarshal(r.body, &list); err != nil || r.code != http.StatusOK {
		t.Fatalf("LIST: %d %s", r.code, r.body)
	}
	if len(list.Items) != 2 || list.Items[0].Key != "app" || list.Items[1].Key != "app/cache.tar" {
		t.Fatalf("LIST items: %+v", list.Items)
	}
	vs := list.Items[1].Versions
	if len(vs) != 2 || vs[0] != m2.Version || vs[1] != m1.Version {
		t.Fatalf("LIST versions, want newest first: %+v", vs)
	}

	if r := do(t, http.MethodDelete, url+"?version="+m2.ID, adminToken, nil, nil); r.code != http.StatusNoContent {
		t.Fatalf("DELETE version: %d %s", r.code, r.body)
	}
	if r := do(t, http.MethodGet, url, adminToken, nil, nil); string(r.body) != string(first) {
		t.Fatalf("after deleting the newest, GET = %q", r.body)
	}
	if r := do(t, http.MethodDelete, url, adminToken, nil, nil); r.code != http.StatusNoContent {
		t.Fatalf("DELETE all: %d %s", r.code, r.body)
	}
	r = do(t, http.MethodGet, url, adminToken, nil, nil)
	if r.code != http.StatusNotFound || r.errorBody(t).Reason != ReasonNotFound {
		t.Fatalf("GET after DELETE: %d %s", r.code, r.body)
	}
	if r := do(t, http.MethodDelete, url, adminToken, nil, nil); r.code != http.StatusNoContent {
		t.Fatalf("DELETE again (clients retry): %d %s", r.code, r.body)
	}
	if r := do(t, http.MethodGet, ts.URL+"/v1/state/team-a/app", adminToken, nil, nil); string(r.body) != "parent key" {
		t.Fatalf("deleting app/cache.tar touched app: %q", r.body)
	}
}

func TestRequestsAreRefusedWithReasons(t *testing.T) {
	store, _ := newFileStore(t)
	ts := newTestServer(t, store, Options{MaxObjectBytes: 1024, MaxSaveBytes: 256})
	ts.cluster.grant("system:serviceaccount:team-a:reader", "get", "team-b")
	base := ts.URL + "/v1/state/"
	body := []byte("payload")
	big := strings.Repeat("x", 2048)
	saA := saToken("team-a", "app")

	for _, tc := range []struct {
		name, method, url, token string
		body                     any
		header                   map[string]string
		code                     int
		reason                   string
	}{
		{"no token", "PUT", base + "team-a/k", "", body, nil, 401, "NoToken"},
		{"basic auth", "PUT", base + "team-a/k", "", body, map[string]string{"Authorization": "Basic YTpi"}, 401, "BadScheme"},
		{"unknown token", "PUT", base + "team-a/k", "not-a-token", body, nil, 401, "Unauthenticated"},
		{"no token on GET", "GET", base + "team-a/k", "", nil, nil, 401, "NoToken"},
		{"no token on LIST", "GET", base + "team-a/", "", nil, nil, 401, "NoToken"},
		{"no token on DELETE", "DELETE", base + "team-a/k", "", nil, nil, 401, "NoToken"},
		{"no token on save", "POST", ts.URL + "/state/save", "", `{"namespace":"team-a","data":"x"}`, nil, 401, "NoToken"},
		{"other namespace PUT", "PUT", base + "team-b/k", saA, body, nil, 403, "Forbidden"},
		{"other namespace GET", "GET", base + "team-b/k", saA, nil, nil, 403, "Forbidden"},
		{"other namespace LIST", "GET", base + "team-b/", saA, nil, nil, 403, "Forbidden"},
		{"other namespace DELETE", "DELETE", base + "team-b/k", saA, nil, nil, 403, "Forbidden"},
		{"other namespace save", "POST", ts.URL + "/state/save", saA, `{"namespace":"team-b","data":"x"}`, nil, 403, "Forbidden"},
		{"granted get is not create", "PUT", base + "team-b/k", saToken("team-a", "reader"), body, nil, 403, "Forbidden"},
		{"bad namespace", "PUT", base + "Team_B/k", adminToken, body, nil, 400, "InvalidNamespace"},
		{"bad namespace in save", "POST", ts.URL + "/state/save", adminToken, `{"namespace":"a.b","data":"x"}`, nil, 400, "InvalidNamespace"},
		{"space in key", "PUT", base + "team-a/a%20b", adminToken, body, nil, 400, "InvalidKey"},
		{"backslash in key", "PUT", base + "team-a/a%5Cb", adminToken, body, nil, 400, "InvalidKey"},
		{"NUL in key", "PUT", base + "team-a/a%00b", adminToken, body, nil, 400, "InvalidKey"},
		{"control char in key", "GET", base + "team-a/a%01b", adminToken, nil, nil, 400, "InvalidKey"},
		{"version marker in key", "PUT", base + "team-a/x/@v/20260101T000000.000000000Z-abcd", adminToken, body, nil, 400, "InvalidKey"},
		{"escaped slash makes an empty segment", "PUT", base + "team-a/a%2F", adminToken, body, nil, 400, "InvalidKey"},
		{"key too long", "PUT", base + "team-a/" + strings.Repeat("k", MaxKeyLen+1), adminToken, body, nil, 400, "InvalidKey"},
		// A segment the file name could not hold after "@<version>" and the
		// temp suffix: 201 once, then a server that could not start.
		{"key segment too long", "PUT", base + "team-a/app/" + strings.Repeat("k", MaxKeySegmentLen+1), adminToken, body, nil, 400, "InvalidKey"},
		{"empty key on DELETE", "DELETE", base + "team-a/", adminToken, nil, nil, 400, "InvalidKey"},
		{"traversal in save key", "POST", ts.URL + "/state/save", adminToken, `{"namespace":"team-a","key":"../x","data":"x"}`, nil, 400, "InvalidKey"},
		{"bad version", "GET", base + "team-a/k?version=../../x", adminToken, nil, nil, 400, "InvalidVersion"},
		{"malformed checksum", "PUT", base + "team-a/k", adminToken, body, map[string]string{HeaderSHA256: "abc"}, 400, "InvalidChecksum"},
		{"checksum mismatch", "PUT", base + "team-a/k", adminToken, body, map[string]string{HeaderSHA256: sum([]byte("other"))}, 400, "ChecksumMismatch"},
		{"bad pod", "PUT", base + "team-a/k", adminToken, body, map[string]string{HeaderPod: "Bad_Pod"}, 400, "InvalidPod"},
		{"bad content type", "PUT", base + "team-a/k", adminToken, body, map[string]string{"Content-Type": "a/b; =c"}, 400, "InvalidContentType"},
		{"too large by length", "PUT", base + "team-a/k", adminToken, []byte(big), nil, 413, "TooLarge"},
		{"too large chunked", "PUT", base + "team-a/k", adminToken, strings.NewReader(big), nil, 413, "TooLarge"},
		{"save too large", "POST", ts.URL + "/state/save", adminToken, `{"namespace":"team-a","data":"` + big + `"}`, nil, 413, "TooLarge"},
		{"save not JSON", "POST", ts.URL + "/state/save", adminToken, `namespace=team-a`, nil, 400, "InvalidBody"},
		{"save without data", "POST", ts.URL + "/state/save", adminToken, `{"namespace":"team-a"}`, nil, 400, "InvalidBody"},
		{"save with trailing garbage", "POST", ts.URL + "/state/save", adminToken, `{"namespace":"team-a","data":1} x`, nil, 400, "InvalidBody"},
		{"missing key", "GET", base + "team-a/nothing", adminToken, nil, nil, 404, "NotFound"},
		{"missing version", "GET", base + "team-a/k?version=20260101T000000.000000000Z-abcd", adminToken, nil, nil, 404, "NotFound"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, tc.method, tc.url, tc.token, tc.body, tc.header)
			if r.code != tc.code {
				t.Fatalf("status %d, want %d: %s", r.code, tc.code, r.body)
			}
			if e := r.errorBody(t); e.Reason != tc.reason || e.Error == "" {
				t.Fatalf("body %s, want reason %s", r.body, tc.reason)
			}
			if r.header.Get("Content-Type") != "application/json" {
				t.Fatalf("Content-Type %q", r.header.Get("Content-Type"))
			}
			if tc.code == 401 && r.header.Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		})
	}
	// None of the refused writes left anything behind.
	if items, err := store.List(t.Context(), "team-a"); err != nil || len(items) != 0 {
		t.Fatalf("refused writes stored %+v, %v", items, err)
	}
}

func TestServiceAccountsStayInTheirNamespaceUnlessGranted(t *testing.T) {
	store, _ := newFileStore(t)
	clk := testingclock.NewFakeClock(time.Now())
	ts := newTestServer(t, store, Options{Clock: clk})
	app := saToken("team-a", "app")
	if r := do(t, http.MethodPut, ts.URL+"/v1/state/team-a/k", app, "mine", nil); r.code != http.StatusCreated {
		t.Fatalf("own namespace PUT: %d %s", r.code, r.body)
	}
	if r := do(t, http.MethodGet, ts.URL+"/v1/state/team-a/k", app, nil, nil); r.code != http.StatusOK || string(r.body) != "mine" {
		t.Fatalf("own namespace GET: %d %s", r.code, r.body)
	}
	if r := do(t, http.MethodPut, ts.URL+"/v1/state/team-b/k", app, "theirs", nil); r.code != http.StatusForbidden {
		t.Fatalf("other namespace before the grant: %d %s", r.code, r.body)
	}
	ts.cluster.grant("system:serviceaccount:team-a:app", "create", "team-b")
	// Decisions are cached, so a new RoleBinding applies after the TTL.
	clk.Step(auth.DefaultCacheTTL + time.Second)
	if r := do(t, http.MethodPut, ts.URL+"/v1/state/team-b/k", app, "theirs", nil); r.code != http.StatusCreated {
		t.Fatalf("other namespace with a create grant: %d %s", r.code, r.body)
	}
	if r := do(t, http.MethodGet, ts.URL+"/v1/state/team-b/k", app, nil, nil); r.code != http.StatusForbidden {
		t.Fatalf("create grant allowed get: %d %s", r.code, r.body)
	}
	if r := do(t, http.MethodGet, ts.URL+"/v1/state/team-b/k", adminToken, nil, nil); string(r.body) != "theirs" {
		t.Fatalf("admin GET: %d %s", r.code, r.body)
	}
}

func TestSaveStoresStringsAsBytesAndOtherJSONRaw(t *testing.T) {
	store, _ := newFileStore(t)
	ts := newTestServer(t, store, Options{})
	for _, tc := range []struct {
		body, key, payload, contentType string
	}{
		{`{"namespace":"team-a","data":"hello\nworld","pod":"web-1","extra":true}`, "web-1", "hello\nworld", "text/plain; charset=utf-8"},
		{`{"namespace":"team-a","data":{"a": [1, 2]},"key":"cfg/app"}`, "cfg/app", `{"a": [1, 2]}`, "application/json"},
		{`{"namespace":"team-a","data":42}`, "default", "42", "application/json"},
	} {
		r := do(t, http.MethodPost, ts.URL+"/state/save", adminToken, tc.body, nil)
		if r.code != http.StatusCreated {
			t.Fatalf("save %s: %d %s", tc.body, r.code, r.body)
		}
		if m := r.meta(t); m.Key != tc.key || m.ContentType != tc.contentType || m.SHA256 != sum([]byte(tc.payload)) {
			t.Fatalf("save %s answered %+v", tc.body, m)
		}
		g := do(t, http.MethodGet, ts.URL+"/v1/state/team-a/"+tc.key, adminToken, nil, nil)
		if string(g.body) != tc.payload || g.header.Get("Content-Type") != tc.contentType {
			t.Fatalf("GET %s = %q %q, want %q", tc.key, g.body, g.header.Get("Content-Type"), tc.payload)
		}
	}
	// A ServiceAccount may leave the namespace out: it is its own.
	r := do(t, http.MethodPost, ts.URL+"/state/save", saToken("team-c", "app"), `{"data":"x"}`, nil)
	if r.code != http.StatusCreated || r.meta(t).Namespace != "team-c" {
		t.Fatalf("save without namespace: %d %s", r.code, r.body)
	}
}

func TestMetricsCountRequestsBytesAndDurations(t *testing.T) {
	store, _ := newFileStore(t)
	ts := newTestServer(t, store, Options{})
	url := ts.URL + "/v1/state/team-a/k"
	do(t, http.MethodPut, url, adminToken, "12345", nil)
	do(t, http.MethodGet, url, adminToken, nil, nil)
	do(t, http.MethodGet, url, "", nil, nil)
	do(t, http.MethodPost, ts.URL+"/state/save", adminToken, `{"namespace":"team-a","data":"abc"}`, nil)

	m := ts.metrics
	// A write is counted when its handler ends, after the client has its
	// answer and the key has been pruned.
	eventually(t, "the save to be counted", func() bool {
		return testutil.ToFloat64(m.requests.WithLabelValues(opSave, "201")) == 1
	})
	for _, c := range []struct {
		got, want float64
		what      string
	}{
		{testutil.ToFloat64(m.requests.WithLabelValues(opPut, "201")), 1, "put 201"},
		{testutil.ToFloat64(m.requests.WithLabelValues(opGet, "200")), 1, "get 200"},
		{testutil.ToFloat64(m.requests.WithLabelValues(opGet, "401")), 1, "get 401"},
		{testutil.ToFloat64(m.requests.WithLabelValues(opSave, "201")), 1, "save 201"},
		{testutil.ToFloat64(m.bytes.WithLabelValues(opPut)), 5, "put bytes"},
		{testutil.ToFloat64(m.bytes.WithLabelValues(opGet)), 5, "get bytes"},
		{testutil.ToFloat64(m.bytes.WithLabelValues(opSave)), 3, "save bytes"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
	if n := testutil.CollectAndCount(m.duration, "lastcall_state_request_duration_seconds"); n != 3 {
		t.Errorf("duration series = %d, want 3 (put, get, save)", n)
	}
	// Registered on the registry passed in, not the global one.
	if n, err := testutil.GatherAndCount(ts.reg, "lastcall_state_requests_total"); err != nil || n != 4 {
		t.Errorf("registry holds %d request series (%v), want 4", n, err)
	}
}
