package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	testingclock "k8s.io/utils/clock/testing"
)

// fakeJWT builds an unsigned token carrying claims: enough for the fake
// TokenReview below and for peekClaims, which never checks signatures.
func fakeJWT(t *testing.T, claims map[string]any) string {
	t.Helper()
	b, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256"}`)) + "." + enc(b) + ".c2ln"
}

// tok is a well-formed (unsigned) JWT named by sub, for tests where only
// the token's identity matters.
func tok(sub string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256"}`)) + "." + enc([]byte(`{"sub":"`+sub+`"}`)) + ".c2ln"
}

// reviewer is an in-process TokenReview: tokens in valid authenticate as the
// mapped user for the "lastcall" audience; everything else is refused.
type reviewer struct {
	valid map[string]string
	calls atomic.Int32
	fail  error
}

func (rv *reviewer) client() *fake.Clientset {
	cs := fake.NewClientset()
	cs.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		rv.calls.Add(1)
		if rv.fail != nil {
			return true, nil, rv.fail
		}
		tr := a.(k8stesting.CreateAction).GetObject().(*authnv1.TokenReview).DeepCopy()
		if name, ok := rv.valid[tr.Spec.Token]; ok {
			tr.Status = authnv1.TokenReviewStatus{Authenticated: true, Audiences: []string{"lastcall"},
				User: authnv1.UserInfo{Username: name, UID: "uid-" + name, Groups: []string{"system:authenticated"}}}
		} else {
			tr.Status = authnv1.TokenReviewStatus{Error: "invalid bearer token"}
		}
		return true, tr, nil
	})
	return cs
}

func newTestAuthenticator(t *testing.T, rv *reviewer, clk *testingclock.FakeClock, size int) *Authenticator {
	t.Helper()
	a, err := NewAuthenticator(AuthenticatorOptions{Client: rv.client(), Clock: clk, CacheSize: size})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestBearerToken(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   string
		err    error
	}{
		{"", "", ErrNoToken},
		{"Bearer abc", "abc", nil},
		{"bearer abc", "abc", nil},
		{"Basic dXNlcjpwdw==", "", ErrBadScheme},
		{"Bearer", "", ErrBadScheme},
		{"Bearer ", "", ErrBadScheme},
		{"Bearer a b", "", ErrBadScheme},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if tc.header != "" {
			r.Header.Set("Authorization", tc.header)
		}
		got, err := BearerToken(r)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("BearerToken(%q) = %q, %v; want %q, %v", tc.header, got, err, tc.want, tc.err)
		}
	}
}

func TestStaticTokenIsAdminAndReloadsWhenFileChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("first-token\n")
	clk := testingclock.NewFakeClock(time.Now())
	a, err := NewAuthenticator(AuthenticatorOptions{TokenFile: path, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	u, err := a.AuthenticateToken(ctx, "first-token")
	if err != nil || !u.IsAdmin() || u.Name != AdminName {
		t.Fatalf("static token: %+v, %v", u, err)
	}
	if _, err := a.AuthenticateToken(ctx, "first-token-but-longer"); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("other token: %v, want ErrUnauthenticated", err)
	}

	write("second-token-rotated")
	clk.Step(2 * staticRecheck)
	if _, err := a.AuthenticateToken(ctx, "second-token-rotated"); err != nil {
		t.Fatalf("rotated token refused: %v", err)
	}
	if _, err := a.AuthenticateToken(ctx, "first-token"); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("old token after rotation: %v, want ErrUnauthenticated", err)
	}

	// A file caught empty mid-rotation keeps the previous token.
	write("")
	clk.Step(2 * staticRecheck)
	if _, err := a.AuthenticateToken(ctx, "second-token-rotated"); err != nil {
		t.Fatalf("token lost to an empty file: %v", err)
	}
	if _, err := a.AuthenticateToken(ctx, ""); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("empty token: %v, want ErrUnauthenticated", err)
	}
}

func TestNewAuthenticatorRefusesEmptyTokenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewAuthenticator(AuthenticatorOptions{TokenFile: path}); err == nil {
		t.Fatal("empty token file accepted")
	}
	if _, err := NewAuthenticator(AuthenticatorOptions{TokenFile: path + ".missing"}); err == nil {
		t.Fatal("missing token file accepted")
	}
}

func TestServiceAccountUserHasNamespace(t *testing.T) {
	rv := &reviewer{valid: map[string]string{tok("sa"): "system:serviceaccount:team-a:app", tok("user"): "alice"}}
	a := newTestAuthenticator(t, rv, testingclock.NewFakeClock(time.Now()), 0)
	u, err := a.AuthenticateToken(context.Background(), tok("sa"))
	if err != nil || u.Namespace != "team-a" || u.UID != "uid-system:serviceaccount:team-a:app" || u.IsAdmin() {
		t.Fatalf("service account: %+v, %v", u, err)
	}
	u, err = a.AuthenticateToken(context.Background(), tok("user"))
	if err != nil || u.Namespace != "" {
		t.Fatalf("plain user: %+v, %v", u, err)
	}
}

func TestReviewIsCachedByTokenHashForTTL(t *testing.T) {
	rv := &reviewer{valid: map[string]string{tok("tok"): "system:serviceaccount:a:b"}}
	clk := testingclock.NewFakeClock(time.Now())
	a := newTestAuthenticator(t, rv, clk, 0)
	ctx := context.Background()
	for range 3 {
		if _, err := a.AuthenticateToken(ctx, tok("tok")); err != nil {
			t.Fatal(err)
		}
	}
	if n := rv.calls.Load(); n != 1 {
		t.Fatalf("%d TokenReviews for one token within the TTL, want 1", n)
	}
	for _, k := range a.cache.lru.Keys() {
		if sum := k.([32]byte); strings.Contains(string(sum[:]), tok("tok")) {
			t.Fatal("cache key contains the raw token")
		}
	}
	clk.Step(DefaultCacheTTL + time.Second)
	if _, err := a.AuthenticateToken(ctx, tok("tok")); err != nil {
		t.Fatal(err)
	}
	if n := rv.calls.Load(); n != 2 {
		t.Fatalf("%d TokenReviews after the TTL, want 2", n)
	}
}

func TestCachedTokenNeverOutlivesItsExpiry(t *testing.T) {
	clk := testingclock.NewFakeClock(time.Now())
	tok := fakeJWT(t, map[string]any{"aud": "lastcall", "exp": clk.Now().Add(3 * time.Second).Unix()})
	rv := &reviewer{valid: map[string]string{tok: "system:serviceaccount:a:b"}}
	a := newTestAuthenticator(t, rv, clk, 0)
	if _, err := a.AuthenticateToken(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	clk.Step(4 * time.Second)
	delete(rv.valid, tok) // the API server now refuses it
	if _, err := a.AuthenticateToken(context.Background(), tok); !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("expired token served from cache: %v", err)
	}
}

func TestCacheIsBounded(t *testing.T) {
	rv := &reviewer{valid: map[string]string{tok("t1"): "u1", tok("t2"): "u2", tok("t3"): "u3"}}
	a := newTestAuthenticator(t, rv, testingclock.NewFakeClock(time.Now()), 2)
	for _, token := range []string{tok("t1"), tok("t2"), tok("t3"), tok("t1")} {
		if _, err := a.AuthenticateToken(context.Background(), token); err != nil {
			t.Fatal(err)
		}
	}
	if n := rv.calls.Load(); n != 4 {
		t.Fatalf("%d reviews, want 4: t1 must have been evicted by t3", n)
	}
	if n := len(a.cache.lru.Keys()); n != 2 {
		t.Fatalf("cache holds %d entries, want 2", n)
	}
}

func TestRejectionsAreDistinct(t *testing.T) {
	now := time.Now()
	rv := &reviewer{valid: map[string]string{}}
	cs := rv.client()
	// A review that authenticates but names no audience means "valid for
	// the API server", which is not us.
	cs.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		tr := a.(k8stesting.CreateAction).GetObject().(*authnv1.TokenReview)
		if tr.Spec.Token != tok("kube-only") {
			return false, nil, nil
		}
		tr = tr.DeepCopy()
		tr.Status = authnv1.TokenReviewStatus{Authenticated: true, User: authnv1.UserInfo{Username: "x"}}
		return true, tr, nil
	})
	a, err := NewAuthenticator(AuthenticatorOptions{Client: cs, Clock: testingclock.NewFakeClock(now)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		token  string
		err    error
		reason string
	}{
		{"garbage", "not-a-jwt", ErrUnauthenticated, ReasonUnauthenticated},
		{"other audience", fakeJWT(t, map[string]any{"aud": []string{"vault"}, "exp": now.Add(time.Hour).Unix()}), ErrWrongAudience, ReasonWrongAudience},
		{"expired", fakeJWT(t, map[string]any{"aud": "lastcall", "exp": now.Add(-time.Minute).Unix()}), ErrTokenExpired, ReasonTokenExpired},
		{"revoked", fakeJWT(t, map[string]any{"aud": "lastcall", "exp": now.Add(time.Hour).Unix()}), ErrUnauthenticated, ReasonUnauthenticated},
		{"valid for the API server only", tok("kube-only"), ErrWrongAudience, ReasonWrongAudience},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := a.AuthenticateToken(context.Background(), tc.token)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if code, reason := StatusFor(err); code != http.StatusUnauthorized || reason != tc.reason {
				t.Fatalf("StatusFor = %d %s, want 401 %s", code, reason, tc.reason)
			}
			if strings.Contains(err.Error(), tc.token) {
				t.Fatal("error message contains the token")
			}
		})
	}
}

func TestAPIServerErrorIsNotCachedAndMapsTo503(t *testing.T) {
	rv := &reviewer{valid: map[string]string{tok("tok"): "u"}, fail: errors.New("connection refused")}
	a := newTestAuthenticator(t, rv, testingclock.NewFakeClock(time.Now()), 0)
	_, err := a.AuthenticateToken(context.Background(), tok("tok"))
	if err == nil || IsRejection(err) {
		t.Fatalf("err = %v, want a non-rejection error", err)
	}
	if code, _ := StatusFor(err); code != http.StatusServiceUnavailable {
		t.Fatalf("StatusFor = %d, want 503", code)
	}
	rv.fail = nil
	if _, err := a.AuthenticateToken(context.Background(), tok("tok")); err != nil {
		t.Fatalf("after the API server came back: %v", err)
	}
}

func TestAuthenticateWithoutClientAcceptsOnlyTheStaticToken(t *testing.T) {
	a, err := NewAuthenticator(AuthenticatorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Authorization", "Bearer anything")
	if _, err := a.Authenticate(r); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("err = %v, want ErrUnauthenticated", err)
	}
}

// sarClient allows "get" on anything and counts reviews.
func sarClient(calls *atomic.Int32, last *authzv1.SubjectAccessReviewSpec) *fake.Clientset {
	cs := fake.NewClientset()
	cs.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		calls.Add(1)
		sar := a.(k8stesting.CreateAction).GetObject().(*authzv1.SubjectAccessReview).DeepCopy()
		*last = sar.Spec
		sar.Status.Allowed = sar.Spec.ResourceAttributes.Verb == "get"
		return true, sar, nil
	})
	return cs
}

func TestAuthorizerAsksAndCachesDecisions(t *testing.T) {
	var calls atomic.Int32
	var last authzv1.SubjectAccessReviewSpec
	clk := testingclock.NewFakeClock(time.Now())
	az, err := NewAuthorizer(AuthorizerOptions{Client: sarClient(&calls, &last), Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	u := User{Name: "system:serviceaccount:a:app", UID: "u1", Groups: []string{"g2", "g1"}}
	get := Attributes{Verb: "get", Resource: "states", Namespace: "b"}
	create := Attributes{Verb: "create", Resource: "states", Namespace: "b"}

	if err := az.Authorize(ctx, u, get); err != nil {
		t.Fatalf("get: %v", err)
	}
	ra := last.ResourceAttributes
	if last.User != u.Name || last.UID != "u1" || ra.Group != DefaultGroup || ra.Resource != "states" || ra.Namespace != "b" {
		t.Fatalf("review sent %+v %+v", last, ra)
	}
	err = az.Authorize(ctx, u, create)
	if !errors.Is(err, ErrForbidden) {
		t.Fatalf("create: %v, want ErrForbidden", err)
	}
	if code, reason := StatusFor(err); code != http.StatusForbidden || reason != ReasonForbidden {
		t.Fatalf("StatusFor = %d %s", code, reason)
	}
	_ = az.Authorize(ctx, u, get)
	_ = az.Authorize(ctx, u, create)
	if n := calls.Load(); n != 2 {
		t.Fatalf("%d reviews, want 2 (both decisions cached)", n)
	}
	other := u
	other.Name = "system:serviceaccount:a:other"
	_ = az.Authorize(ctx, other, get)
	if n := calls.Load(); n != 3 {
		t.Fatalf("%d reviews, want 3: another user must not share a decision", n)
	}
	clk.Step(DefaultCacheTTL + time.Second)
	_ = az.Authorize(ctx, u, get)
	if n := calls.Load(); n != 4 {
		t.Fatalf("%d reviews after the TTL, want 4", n)
	}
	if err := az.Authorize(ctx, User{Name: AdminName, admin: true}, create); err != nil {
		t.Fatalf("admin: %v", err)
	}
	if n := calls.Load(); n != 4 {
		t.Fatal("the admin was sent to a SubjectAccessReview")
	}
}

func TestUserServiceAccount(t *testing.T) {
	for _, tc := range []struct {
		name     string
		ns, sa   string
		isSAName bool
	}{
		{"system:serviceaccount:ns:app", "ns", "app", true},
		{"system:serviceaccount:ns", "", "", false},
		{"system:serviceaccount::app", "", "", false},
		{"system:serviceaccount:ns:a:b", "", "", false},
		{"alice", "", "", false},
	} {
		ns, sa, ok := User{Name: tc.name}.ServiceAccount()
		if ns != tc.ns || sa != tc.sa || ok != tc.isSAName {
			t.Errorf("%q: %q %q %v", tc.name, ns, sa, ok)
		}
	}
}
