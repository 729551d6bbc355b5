//go:build integration

package auth

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/lastcall-dev/lastcall/internal/devcluster"
	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
)

func TestMain(m *testing.M) {
	clustertest.Main(m, devcluster.Options{Nodes: 1})
}

func createSA(t *testing.T, env *clustertest.Env, name string) *corev1.ServiceAccount {
	t.Helper()
	sa, err := env.Client.CoreV1().ServiceAccounts(env.Namespace).Create(context.Background(),
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return sa
}

// requestToken asks the real API server for a token (TokenRequest).
func requestToken(t *testing.T, env *clustertest.Env, sa string, audiences []string, bound *authnv1.BoundObjectReference) string {
	t.Helper()
	tr, err := env.Client.CoreV1().ServiceAccounts(env.Namespace).CreateToken(context.Background(), sa, &authnv1.TokenRequest{
		Spec: authnv1.TokenRequestSpec{Audiences: audiences, ExpirationSeconds: ptr.To[int64](600), BoundObjectRef: bound},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest for %s: %v", sa, err)
	}
	return tr.Status.Token
}

func authenticator(t *testing.T, cs kubernetes.Interface, ttl time.Duration) *Authenticator {
	t.Helper()
	a, err := NewAuthenticator(AuthenticatorOptions{Client: cs, CacheTTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestServiceAccountTokenForLastcallAuthenticates(t *testing.T) {
	env := clustertest.New(t)
	sa := createSA(t, env, "app")
	a := authenticator(t, env.Client, 0)
	u, err := a.AuthenticateToken(context.Background(), requestToken(t, env, "app", []string{"lastcall"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if u.Name != "system:serviceaccount:"+env.Namespace+":app" || u.Namespace != env.Namespace || u.UID != string(sa.UID) ||
		!slices.Contains(u.Groups, "system:serviceaccounts:"+env.Namespace) || u.IsAdmin() {
		t.Fatalf("user %+v", u)
	}
	// A token for several audiences, ours among them, is fine too.
	if _, err := a.AuthenticateToken(context.Background(), requestToken(t, env, "app", []string{"vault", "lastcall"}, nil)); err != nil {
		t.Fatalf("multi-audience token: %v", err)
	}
}

func TestTokensLastcallMustRefuse(t *testing.T) {
	env := clustertest.New(t)
	createSA(t, env, "app")
	a := authenticator(t, env.Client, 0)
	adminToken := env.Config.BearerToken // the cluster admin's static token
	for _, tc := range []struct {
		name  string
		token string
		err   error
	}{
		{"token for another audience", requestToken(t, env, "app", []string{"vault"}, nil), ErrWrongAudience},
		{"token for the API server", requestToken(t, env, "app", nil, nil), ErrWrongAudience},
		{"cluster admin static token", adminToken, ErrUnauthenticated},
		{"garbage", "abc.def.ghi", ErrUnauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := a.AuthenticateToken(context.Background(), tc.token)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
		})
	}
}

// TestTokenOfDeletedPodIsRefused: TokenRequest will not mint a token that
// expires in under 10 minutes, but a token bound to a pod dies with it. This
// is the revocation path; TestExpiredTokenIsRefused covers expiry.
func TestTokenOfDeletedPodIsRefused(t *testing.T) {
	env := clustertest.New(t)
	createSA(t, env, "app")
	ctx := context.Background()
	pod, err := env.Client.CoreV1().Pods(env.Namespace).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "dying"},
		Spec:       corev1.PodSpec{ServiceAccountName: "app", Containers: []corev1.Container{{Name: "c", Image: "app"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	token := requestToken(t, env, "app", []string{"lastcall"}, &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID})
	a := authenticator(t, env.Client, -1) // no cache: each call is a fresh TokenReview
	u, err := a.AuthenticateToken(ctx, token)
	if err != nil {
		t.Fatalf("bound token while its pod exists: %v", err)
	}
	if u.PodName() != "dying" {
		t.Fatalf("bound token's pod = %q", u.PodName())
	}
	if err := env.Client.CoreV1().Pods(env.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 30*time.Second, func(ctx context.Context) (bool, error) {
		_, err := env.Client.CoreV1().Pods(env.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	}, "pod %s to be gone", pod.Name)
	// The API server itself caches accepted tokens for 10 s
	// (--authentication-token-success-cache-ttl... defaults), so the refusal
	// comes within that, not at once.
	var last error
	clustertest.Eventually(t, 30*time.Second, func(ctx context.Context) (bool, error) {
		_, last = a.AuthenticateToken(ctx, token)
		return last != nil, nil
	}, "the deleted pod's token to be refused")
	if !errors.Is(last, ErrUnauthenticated) {
		t.Fatalf("token of a deleted pod: %v, want ErrUnauthenticated", last)
	}
}

// TestExpiredTokenIsRefused signs tokens with the cluster's own
// service-account key, exactly as the API server mints them, once with an
// expiry in the future (accepted: the forgery is faithful) and once in the
// past (refused by the API server for expiry alone).
func TestExpiredTokenIsRefused(t *testing.T) {
	env := clustertest.New(t)
	sa := createSA(t, env, "app")
	a := authenticator(t, env.Client, -1)
	now := time.Now()
	valid := signSAToken(t, sa, now.Add(-time.Minute), now.Add(10*time.Minute))
	if _, err := a.AuthenticateToken(context.Background(), valid); err != nil {
		t.Fatalf("self-signed token with a future expiry refused, so the test proves nothing: %v", err)
	}
	expired := signSAToken(t, sa, now.Add(-2*time.Hour), now.Add(-time.Hour))
	_, err := a.AuthenticateToken(context.Background(), expired)
	if !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("expired token: %v, want ErrTokenExpired", err)
	}
	if code, reason := StatusFor(err); code != http.StatusUnauthorized || reason != ReasonTokenExpired {
		t.Fatalf("StatusFor = %d %s", code, reason)
	}
}

// signSAToken writes the JWT the API server would issue for sa with
// audience lastcall, signed with devcluster's service-account key.
func signSAToken(t *testing.T, sa *corev1.ServiceAccount, issued, expires time.Time) string {
	t.Helper()
	c := clustertest.Cluster()
	b, err := os.ReadFile(filepath.Join(c.Dir(), "pki", "sa.key")) // devcluster's layout
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatal("sa.key is not PEM")
	}
	key, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	claims := map[string]any{
		"iss": c.ServiceAccountIssuer(),
		"sub": "system:serviceaccount:" + sa.Namespace + ":" + sa.Name,
		"aud": []string{"lastcall"},
		"iat": issued.Unix(), "nbf": issued.Unix(), "exp": expires.Unix(),
		"kubernetes.io": map[string]any{
			"namespace":      sa.Namespace,
			"serviceaccount": map[string]string{"name": sa.Name, "uid": string(sa.UID)},
		},
	}
	enc := func(v any) string {
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(j)
	}
	signed := enc(map[string]string{"alg": "RS256", "typ": "JWT"}) + "." + enc(claims)
	digest := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func TestReviewsAreCachedAgainstTheRealAPIServer(t *testing.T) {
	env := clustertest.New(t)
	createSA(t, env, "app")
	var reviews atomic.Int32
	cfg := env.Config
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if strings.HasSuffix(r.URL.Path, "/tokenreviews") {
				reviews.Add(1)
			}
			return rt.RoundTrip(r)
		})
	})
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a := authenticator(t, cs, 0)
	token := requestToken(t, env, "app", []string{"lastcall"}, nil)
	for range 5 {
		if _, err := a.AuthenticateToken(context.Background(), token); err != nil {
			t.Fatal(err)
		}
	}
	if n := reviews.Load(); n != 1 {
		t.Fatalf("%d TokenReviews for 5 authentications within the TTL, want 1", n)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestAuthorizerFollowsRBAC(t *testing.T) {
	envA, envB := clustertest.New(t), clustertest.New(t)
	createSA(t, envA, "app")
	ctx := context.Background()
	u, err := authenticator(t, envA.Client, 0).AuthenticateToken(ctx, requestToken(t, envA, "app", []string{"lastcall"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	grantStates(t, envB, u.Name, "create")
	// The API server's RBAC authorizer sees the new binding through an
	// informer: wait for it without caching, then check with the cache.
	uncached, err := NewAuthorizer(AuthorizerOptions{Client: envA.Client, CacheTTL: -1})
	if err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 30*time.Second, func(ctx context.Context) (bool, error) {
		return uncached.Authorize(ctx, u, Attributes{Verb: "create", Resource: "states", Namespace: envB.Namespace}) == nil, nil
	}, "the RoleBinding to take effect")
	az, err := NewAuthorizer(AuthorizerOptions{Client: envA.Client})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		verb, ns string
		allowed  bool
	}{
		{"create", envB.Namespace, true},
		{"get", envB.Namespace, false},
		{"create", envA.Namespace, false}, // RBAC knows no "own namespace" rule: the state server adds it
		{"create", "", false},
	} {
		err := az.Authorize(ctx, u, Attributes{Verb: tc.verb, Resource: "states", Namespace: tc.ns})
		if tc.allowed && err != nil {
			t.Errorf("%s in %q: %v, want allowed", tc.verb, tc.ns, err)
		}
		if !tc.allowed && !errors.Is(err, ErrForbidden) {
			t.Errorf("%s in %q: %v, want ErrForbidden", tc.verb, tc.ns, err)
		}
	}
}

// grantStates binds a Role allowing verbs on states.lastcall.dev in env's
// namespace to a ServiceAccount user.
func grantStates(t *testing.T, env *clustertest.Env, user string, verbs ...string) {
	t.Helper()
	ctx := context.Background()
	parts := strings.Split(user, ":") // system:serviceaccount:<ns>:<name>
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "lastcall-states"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"lastcall.dev"}, Resources: []string{"states"}, Verbs: verbs}},
	}
	if _, err := env.Client.RbacV1().Roles(env.Namespace).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "lastcall-states"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: parts[2], Name: parts[3]}},
	}
	if _, err := env.Client.RbacV1().RoleBindings(env.Namespace).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestFloodOfBadTokensCostsBoundedTokenReviews is issue 16's high 5 against
// the real API server: 200 random bearer tokens cost no TokenReview; 200
// well-shaped JWTs of the cluster's issuer with bad signatures cost at most
// the review burst; a real ServiceAccount token still authenticates.
func TestFloodOfBadTokensCostsBoundedTokenReviews(t *testing.T) {
	env := clustertest.New(t)
	sa := createSA(t, env, "app")
	var reviews atomic.Int32
	cfg := env.Config
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if strings.HasSuffix(r.URL.Path, "/tokenreviews") {
				reviews.Add(1)
			}
			return rt.RoundTrip(r)
		})
	})
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := DiscoverIssuer(context.Background(), cs.Discovery().RESTClient())
	if err != nil {
		t.Fatal(err)
	}
	if issuer != clustertest.Cluster().ServiceAccountIssuer() {
		t.Fatalf("discovered issuer %q, the API server's is %q", issuer, clustertest.Cluster().ServiceAccountIssuer())
	}
	const burst = 10
	a, err := NewAuthenticator(AuthenticatorOptions{Client: cs, Issuers: []string{issuer, LegacyIssuer}, ReviewQPS: 0.01, ReviewBurst: burst})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 200 {
		random := make([]byte, 48)
		_, _ = rand.Read(random)
		if _, err := a.AuthenticateToken(ctx, base64.RawURLEncoding.EncodeToString(random)); !IsRejection(err) {
			t.Fatalf("random token %d: %v, want a rejection", i, err)
		}
	}
	if n := reviews.Load(); n != 0 {
		t.Fatalf("%d TokenReviews for 200 random tokens, want 0", n)
	}
	valid := signSAToken(t, sa, time.Now(), time.Now().Add(time.Hour))
	parts := strings.Split(valid, ".")
	for i := range 200 {
		forged := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprint("bad-signature-", i)))
		if _, err := a.AuthenticateToken(ctx, forged); err == nil {
			t.Fatalf("forged token %d accepted", i)
		}
	}
	if n := reviews.Load(); n > burst {
		t.Fatalf("%d TokenReviews for 200 forged JWTs, want at most the burst %d", n, burst)
	}
	// The flood used the burst up; a real token is still served once the
	// limiter has a token again, or from the stale answers once it was seen.
	b, err := NewAuthenticator(AuthenticatorOptions{Client: cs, Issuers: []string{issuer, LegacyIssuer}})
	if err != nil {
		t.Fatal(err)
	}
	if u, err := b.AuthenticateToken(ctx, requestToken(t, env, "app", []string{"lastcall"}, nil)); err != nil || u.Namespace != env.Namespace {
		t.Fatalf("a real ServiceAccount token: %+v, %v", u, err)
	}
}
