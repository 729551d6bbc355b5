//go:build integration

package gate_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
	"github.com/lastcall-dev/lastcall/internal/auth"
	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
	"github.com/lastcall-dev/lastcall/internal/gate"
)

// saToken returns a token of a new ServiceAccount in env's namespace.
func saToken(t *testing.T, env *clustertest.Env, name string, audiences ...string) string {
	t.Helper()
	ctx := context.Background()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := env.Client.CoreV1().ServiceAccounts(env.Namespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := env.Client.CoreV1().ServiceAccounts(env.Namespace).CreateToken(ctx, name,
		&authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{Audiences: audiences, ExpirationSeconds: ptr.To[int64](3600)}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

func TestControlEndpointsNeedATokenAllowedToUpdateTheCanarysGate(t *testing.T) {
	env := clustertest.New(t)
	other := clustertest.New(t)
	ctx := context.Background()
	c := adminClient(t)
	s := startServer(t, serverOpts{})

	// operator may update gates in env's namespace (the documented verb);
	// bystander there and intruder in another namespace may not.
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "gate-control", Namespace: env.Namespace},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"lastcall.dev"}, Resources: []string{gate.ControlResource}, Verbs: []string{gate.ControlVerb}}}}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "gate-control", Namespace: env.Namespace},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "operator", Namespace: env.Namespace}}}
	for _, obj := range []client.Object{role, binding} {
		if err := c.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	operator := saToken(t, env, "operator", auth.DefaultAudience)
	bystander := saToken(t, env, "bystander", auth.DefaultAudience)
	intruder := saToken(t, other, "intruder", auth.DefaultAudience)
	apiAudience := saToken(t, env, "confused") // issued for the API server, not for lastcall

	web := map[string]any{"name": "web", "namespace": env.Namespace}
	for _, path := range []string{"/gate/open", "/gate/close", "/rollback/open", "/rollback/close", "/flagger/gate/open", "/flagger/gate/close"} {
		for _, tc := range []struct {
			who, header string
			code        int
			reason      string
		}{
			{"nobody", "", http.StatusUnauthorized, auth.ReasonNoToken},
			{"basic auth", "Basic YWRtaW46YWRtaW4=", http.StatusUnauthorized, auth.ReasonBadScheme},
			{"a made-up token", "Bearer not-a-token", http.StatusUnauthorized, auth.ReasonUnauthenticated},
			{"a token for the API server", "Bearer " + apiAudience, http.StatusUnauthorized, auth.ReasonWrongAudience},
			{"a ServiceAccount without RBAC", "Bearer " + bystander, http.StatusForbidden, auth.ReasonForbidden},
			{"a ServiceAccount of another namespace", "Bearer " + intruder, http.StatusForbidden, auth.ReasonForbidden},
		} {
			got := callWithHeader(t, s.URL+path, tc.header, web)
			var e struct{ Error, Reason string }
			if got.code != tc.code || json.Unmarshal([]byte(got.body), &e) != nil || e.Reason != tc.reason || e.Error == "" {
				t.Errorf("%s by %s: %v, want %d with reason %s", path, tc.who, got, tc.code, tc.reason)
			}
			if tc.code == http.StatusUnauthorized && got.header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s by %s: 401 without WWW-Authenticate", path, tc.who)
			}
		}
	}
	var g v1alpha1.Gate
	if err := c.Get(ctx, client.ObjectKey{Namespace: env.Namespace, Name: "web"}, &g); err == nil {
		t.Fatalf("refused requests created gate %+v", g.Spec)
	}

	if got := post(t, s.URL+"/gate/open", operator, web); got.code != http.StatusAccepted {
		t.Fatalf("open by the operator: %v, want 202", got)
	}
	if err := c.Get(ctx, client.ObjectKey{Namespace: env.Namespace, Name: "web"}, &g); err != nil {
		t.Fatal(err)
	}
	if want := "system:serviceaccount:" + env.Namespace + ":operator"; g.Spec.Gate.By != want || !g.Spec.Gate.IsOpen() {
		t.Errorf("gate %+v: want open by %s", g.Spec.Gate, want)
	}
	// The operator's RBAC is for its namespace only.
	if got := post(t, s.URL+"/gate/open", operator, map[string]any{"name": "web", "namespace": other.Namespace}); got.code != http.StatusForbidden {
		t.Errorf("open in another namespace by the operator: %v, want 403", got)
	}
	if got := post(t, s.URL+"/rollback/open", adminToken, web); got.code != http.StatusAccepted {
		t.Errorf("open with the control token: %v, want 202", got)
	}
	// Checks stay open to Flagger without a token.
	if got := post(t, s.URL+"/gate/check", "", web); got.code != http.StatusOK {
		t.Errorf("check without a token: %v, want 200", got)
	}
}

func callWithHeader(t *testing.T, url, authorization string, body any) answer {
	t.Helper()
	data, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, url, bytesReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	return do(t, req)
}
