//go:build integration

package state

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/lastcall-dev/lastcall/internal/auth"
	"github.com/lastcall-dev/lastcall/internal/devcluster"
	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
)

func TestMain(m *testing.M) {
	runCrashChild()
	clustertest.Main(m, devcluster.Options{Nodes: 1})
}

// clusterServer serves a file:// store with real TokenReviews and
// SubjectAccessReviews against the test control plane.
func clusterServer(t *testing.T, env *clustertest.Env) string {
	t.Helper()
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(adminToken), 0o600); err != nil {
		t.Fatal(err)
	}
	authn, err := auth.NewAuthenticator(auth.AuthenticatorOptions{TokenFile: tokenFile, Client: env.Client})
	if err != nil {
		t.Fatal(err)
	}
	authz, err := auth.NewAuthorizer(auth.AuthorizerOptions{Client: env.Client})
	if err != nil {
		t.Fatal(err)
	}
	store, _ := newFileStore(t)
	mux := http.NewServeMux()
	NewServer(store, authn, authz, Options{}).Register(mux)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return hs.URL
}

func serviceAccount(t *testing.T, env *clustertest.Env, name string) {
	t.Helper()
	_, err := env.Client.CoreV1().ServiceAccounts(env.Namespace).Create(context.Background(),
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

func token(t *testing.T, env *clustertest.Env, sa, audience string, bound *authnv1.BoundObjectReference) string {
	t.Helper()
	tr, err := env.Client.CoreV1().ServiceAccounts(env.Namespace).CreateToken(context.Background(), sa, &authnv1.TokenRequest{
		Spec: authnv1.TokenRequestSpec{Audiences: []string{audience}, ExpirationSeconds: ptr.To[int64](600), BoundObjectRef: bound},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

func TestNamespacesAreEnforcedWithRealTokens(t *testing.T) {
	envA, envB := clustertest.New(t), clustertest.New(t)
	url := clusterServer(t, envA)
	serviceAccount(t, envA, "app")
	app := token(t, envA, "app", "lastcall", nil)
	a, b := url+"/v1/state/"+envA.Namespace, url+"/v1/state/"+envB.Namespace

	for _, tc := range []struct {
		name, method, url, token string
		body                     any
		code                     int
		reason                   string
	}{
		{"own namespace PUT", "PUT", a + "/k", app, "state of A", 201, ""},
		{"own namespace GET", "GET", a + "/k", app, nil, 200, ""},
		{"own namespace LIST", "GET", a + "/", app, nil, 200, ""},
		{"own namespace save", "POST", url + "/state/save", app, `{"data":"saved","key":"s"}`, 201, ""},
		{"other namespace PUT", "PUT", b + "/k", app, "intrusion", 403, "Forbidden"},
		{"other namespace GET", "GET", b + "/k", app, nil, 403, "Forbidden"},
		{"other namespace save", "POST", url + "/state/save", app, `{"namespace":"` + envB.Namespace + `","data":"x"}`, 403, "Forbidden"},
		{"token for another audience", "PUT", a + "/k", token(t, envA, "app", "vault", nil), "x", 401, "WrongAudience"},
		{"no token", "PUT", a + "/k", "", "x", 401, "NoToken"},
		{"garbage token", "PUT", a + "/k", "garbage", "x", 401, "Unauthenticated"},
		{"admin token elsewhere", "GET", a + "/k", adminToken, nil, 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, tc.method, tc.url, tc.token, tc.body, nil)
			if r.code != tc.code {
				t.Fatalf("%d, want %d: %s", r.code, tc.code, r.body)
			}
			if tc.reason != "" && r.errorBody(t).Reason != tc.reason {
				t.Fatalf("reason %s, want %s", r.body, tc.reason)
			}
		})
	}
	if r := do(t, "GET", a+"/k", app, nil, nil); string(r.body) != "state of A" {
		t.Fatalf("A's state = %q", r.body)
	}
}

func TestRoleBindingLetsAServiceAccountWriteAnotherNamespace(t *testing.T) {
	envA, envB := clustertest.New(t), clustertest.New(t)
	url := clusterServer(t, envA)
	serviceAccount(t, envA, "writer")
	writer := token(t, envA, "writer", "lastcall", nil)
	ctx := context.Background()
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "lastcall-state-writer"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"lastcall.dev"}, Resources: []string{"states"}, Verbs: []string{"create"}}},
	}
	if _, err := envB.Client.RbacV1().Roles(envB.Namespace).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "lastcall-state-writer"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: envA.Namespace, Name: "writer"}},
	}
	if _, err := envB.Client.RbacV1().RoleBindings(envB.Namespace).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Wait for the API server's RBAC cache before the first request: the
	// state server would otherwise cache an early denial for 10 s.
	probe, err := auth.NewAuthorizer(auth.AuthorizerOptions{Client: envA.Client, CacheTTL: -1})
	if err != nil {
		t.Fatal(err)
	}
	user := auth.User{Name: "system:serviceaccount:" + envA.Namespace + ":writer", Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + envA.Namespace, "system:authenticated"}}
	clustertest.Eventually(t, 30*time.Second, func(ctx context.Context) (bool, error) {
		return probe.Authorize(ctx, user, auth.Attributes{Verb: "create", Resource: "states", Namespace: envB.Namespace}) == nil, nil
	}, "the RoleBinding to take effect")

	b := url + "/v1/state/" + envB.Namespace + "/handover"
	if r := do(t, "PUT", b, writer, "for B", nil); r.code != http.StatusCreated {
		t.Fatalf("PUT with a create grant: %d %s", r.code, r.body)
	}
	if r := do(t, "GET", b, writer, nil, nil); r.code != http.StatusForbidden {
		t.Fatalf("GET with only a create grant: %d %s", r.code, r.body)
	}
	if r := do(t, "DELETE", b, writer, nil, nil); r.code != http.StatusForbidden {
		t.Fatalf("DELETE with only a create grant: %d %s", r.code, r.body)
	}
	if r := do(t, "GET", b, adminToken, nil, nil); string(r.body) != "for B" {
		t.Fatalf("B's state = %d %q", r.code, r.body)
	}
}

// TestTokenOfDeletedPodStopsWorking is the expiry case the API allows to
// test: TokenRequest mints nothing shorter than 10 minutes, but a token
// bound to a pod is invalid once the pod is gone. (The auth package also
// checks a truly expired token signed with the cluster's key.)
func TestTokenOfDeletedPodStopsWorking(t *testing.T) {
	env := clustertest.New(t)
	url := clusterServer(t, env)
	serviceAccount(t, env, "app")
	ctx := context.Background()
	pod, err := env.Client.CoreV1().Pods(env.Namespace).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-0"},
		Spec:       corev1.PodSpec{ServiceAccountName: "app", Containers: []corev1.Container{{Name: "c", Image: "app"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bound := token(t, env, "app", "lastcall", &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID})
	key := url + "/v1/state/" + env.Namespace + "/k"
	r := do(t, "PUT", key, bound, "before", nil)
	if r.code != http.StatusCreated || r.meta(t).Pod != "web-0" {
		t.Fatalf("PUT with the pod's token: %d %s (the pod is taken from the token)", r.code, r.body)
	}
	if err := env.Client.CoreV1().Pods(env.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 30*time.Second, func(ctx context.Context) (bool, error) {
		_, err := env.Client.CoreV1().Pods(env.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	}, "pod %s to be gone", pod.Name)
	// The API server caches accepted tokens for 10 s and so do we.
	var last reply
	clustertest.Eventually(t, 45*time.Second, func(ctx context.Context) (bool, error) {
		last = do(t, "PUT", key, bound, "after", nil)
		return last.code != http.StatusCreated, nil
	}, "the deleted pod's token to be refused")
	if last.code != http.StatusUnauthorized || last.errorBody(t).Reason != auth.ReasonUnauthenticated {
		t.Fatalf("PUT with a deleted pod's token: %d %s", last.code, last.body)
	}
}
