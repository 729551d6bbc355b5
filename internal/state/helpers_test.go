package state

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/clock"

	"github.com/lastcall-dev/lastcall/internal/auth"
)

const adminToken = "admin-secret-token"

// saToken is how the fake TokenReview below names ServiceAccount tokens: an
// unsigned JWT (the authenticator screens out anything else) whose subject
// the fake review trusts.
func saToken(ns, name string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256"}`)) + "." + enc([]byte(`{"sub":"sa:`+ns+`:`+name+`"}`)) + ".c2ln"
}

func newFileStore(t testing.TB) (*Store, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "state")
	s, err := OpenStore(context.Background(), "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, dir
}

// fakeCluster answers TokenReviews for saToken tokens and
// SubjectAccessReviews from grants ("user verb namespace").
type fakeCluster struct {
	mu     sync.Mutex
	grants map[string]bool
}

func (c *fakeCluster) grant(user, verb, ns string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.grants[user+" "+verb+" "+ns] = true
}

func (c *fakeCluster) client() *fake.Clientset {
	cs := fake.NewClientset()
	cs.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		tr := a.(k8stesting.CreateAction).GetObject().(*authnv1.TokenReview).DeepCopy()
		parts := strings.Split(tr.Spec.Token, ".")
		payload, _ := base64.RawURLEncoding.DecodeString(parts[min(1, len(parts)-1)])
		var claims struct{ Sub string }
		_ = json.Unmarshal(payload, &claims)
		if rest, ok := strings.CutPrefix(claims.Sub, "sa:"); ok {
			tr.Status = authnv1.TokenReviewStatus{Authenticated: true, Audiences: tr.Spec.Audiences,
				User: authnv1.UserInfo{Username: "system:serviceaccount:" + rest}}
		}
		return true, tr, nil
	})
	cs.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		sar := a.(k8stesting.CreateAction).GetObject().(*authzv1.SubjectAccessReview).DeepCopy()
		ra := sar.Spec.ResourceAttributes
		c.mu.Lock()
		sar.Status.Allowed = ra.Group == "lastcall.dev" && ra.Resource == "states" && c.grants[sar.Spec.User+" "+ra.Verb+" "+ra.Namespace]
		c.mu.Unlock()
		return true, sar, nil
	})
	return cs
}

type testServer struct {
	*Server
	URL     string
	store   *Store
	cluster *fakeCluster
	reg     *prometheus.Registry
}

func newTestServer(t testing.TB, store *Store, opts Options) *testServer {
	t.Helper()
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(adminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fc := &fakeCluster{grants: map[string]bool{}}
	cs := fc.client()
	var clk clock.PassiveClock = clock.RealClock{}
	if opts.Clock != nil {
		clk = opts.Clock
	}
	authn, err := auth.NewAuthenticator(auth.AuthenticatorOptions{TokenFile: tokenFile, Client: cs, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	authz, err := auth.NewAuthorizer(auth.AuthorizerOptions{Client: cs, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	opts.Registerer = reg
	srv := NewServer(store, authn, authz, opts)
	mux := http.NewServeMux()
	srv.Register(mux)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return &testServer{Server: srv, URL: hs.URL, store: store, cluster: fc, reg: reg}
}

type reply struct {
	code   int
	header http.Header
	body   []byte
}

func (r reply) errorBody(t testing.TB) errorBody {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("error body %q: %v", r.body, err)
	}
	return e
}

func (r reply) meta(t testing.TB) Meta {
	t.Helper()
	var m Meta
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("meta body %q: %v", r.body, err)
	}
	return m
}

// do sends a request; body may be nil, a []byte or an io.Reader (sent
// chunked, with no Content-Length).
func do(t testing.TB, method, url, token string, body any, header map[string]string) reply {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	case io.Reader:
		rd = struct{ io.Reader }{b} // hide the length: chunked
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{code: resp.StatusCode, header: resp.Header, body: b}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, 10*time.Second, true,
		func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// files lists the regular files under dir, relative to it.
func files(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// testChunk is a size well above io.Copy's 32 KiB buffer: a body of a few
// of them reaches the temp file in several writes.
const testChunk = 256 << 10
