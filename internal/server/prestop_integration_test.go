//go:build integration

package server_test

import (
	"bytes"
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
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lastcall-dev/lastcall/internal/devcluster"
	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
)

// buildPrestop builds cmd/lastcall-prestop as it ships: static and stripped.
func buildPrestop(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "lastcall-prestop")
	if err := devcluster.GoBuild(context.Background(), "", bin, "../../cmd/lastcall-prestop", "CGO_ENABLED=0"); err != nil {
		t.Fatal(err)
	}
	return bin
}

// helper runs the prestop binary with args and returns its exit code and
// everything it printed.
func helper(t *testing.T, bin string, args ...string) (int, string) {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return exit.ExitCode(), string(out)
	case err != nil:
		t.Fatalf("%s %v: %v", bin, args, err)
	}
	return 0, string(out)
}

// tokenFile writes a TokenRequest token of ServiceAccount ns/sa for audience
// to a file, as a projected volume would.
func tokenFile(t testing.TB, env *clustertest.Env, sa, audience string) string {
	t.Helper()
	tr, err := env.Client.CoreV1().ServiceAccounts(env.Namespace).CreateToken(context.Background(), sa, &authnv1.TokenRequest{
		Spec: authnv1.TokenRequestSpec{Audiences: []string{audience}, ExpirationSeconds: ptrTo(int64(600))},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return writeToken(t, tr.Status.Token)
}

func writeToken(t testing.TB, token string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// expiredToken is a token for ServiceAccount ns/sa and audience lastcall,
// signed with the test cluster's own service-account key exactly as the API
// server signs them, that expired an hour ago: TokenRequest cannot mint one.
func expiredToken(t *testing.T, sa *corev1.ServiceAccount) string {
	t.Helper()
	c := clustertest.Cluster()
	b, err := os.ReadFile(filepath.Join(c.Dir(), "pki", "sa.key"))
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
	now := time.Now()
	claims := map[string]any{
		"iss": c.ServiceAccountIssuer(), "sub": "system:serviceaccount:" + sa.Namespace + ":" + sa.Name,
		"aud": []string{"lastcall"}, "iat": now.Add(-2 * time.Hour).Unix(), "nbf": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(-time.Hour).Unix(),
		"kubernetes.io": map[string]any{"namespace": sa.Namespace, "serviceaccount": map[string]string{"name": sa.Name, "uid": string(sa.UID)}},
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

// apiReason sends method url with the token in tokenPath (none if "") and
// returns the status and the JSON error's reason.
func apiReason(t *testing.T, method, url, tokenPath string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	if tokenPath != "" {
		b, err := os.ReadFile(tokenPath)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+string(b))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct{ Reason string }
	_ = json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, e.Reason
}

// tree maps each regular file under dir (relative, slash-separated) to its
// content; the restore's scratch entries would show up here too.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPrestopAndRestoreThroughLastcallServer is the state path end to end on
// the real control plane: `lastcall server` (in-process, file:// store, the
// real TokenReview and SubjectAccessReview), the shipped static
// lastcall-prestop uploading a directory with a projected-style token of
// audience lastcall, and its restore mode bringing it back into an empty
// directory. Then every refusal: another namespace's keys (403), a token for
// another audience, an expired one or none (401), and reaching into another
// namespace allowed only once RBAC grants it.
func TestPrestopAndRestoreThroughLastcallServer(t *testing.T) {
	envA, envB := clustertest.New(t), clustertest.New(t)
	ctx := context.Background()
	base := stateServer(t)
	bin := buildPrestop(t)
	sa, err := envA.Client.CoreV1().ServiceAccounts(envA.Namespace).Create(ctx,
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "cart"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	token := tokenFile(t, envA, "cart", "lastcall")

	data := t.TempDir()
	want := map[string]string{"cart.db": strings.Repeat("line item\n", 50_000), "wal/0001": "offset 4711", "wal/0002": ""}
	for name, content := range want {
		p := filepath.Join(data, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	msgFile := filepath.Join(t.TempDir(), "termination-log")
	prestop := func(ns, tokenPath string) (int, string) {
		t.Helper()
		code, out := helper(t, bin, "--budget=30s", "--reserve=5s", "--save="+data, "--state-url="+base, "--key=cart",
			"--pod=cart-0", "--namespace="+ns, "--token-file="+tokenPath, "--termination-message-path="+msgFile, "--console=none")
		msg, err := os.ReadFile(msgFile)
		if err != nil || !strings.HasPrefix(string(msg), "lastcall prestop "+ns+"/cart-0") {
			t.Fatalf("termination message %q, %v; hook output:\n%s", msg, err, out)
		}
		return code, string(msg)
	}
	restore := func(ns, tokenPath, dir string) (int, string) {
		t.Helper()
		return helper(t, bin, "restore", "--state-url="+base, "--key=cart", "--pod=cart-1", "--namespace="+ns,
			"--token-file="+tokenPath, "--dir="+dir, "--require", "--timeout=10s")
	}

	// Saved by the dying pod, restored by its replacement.
	if code, msg := prestop(envA.Namespace, token); code != 0 || !strings.Contains(msg, "save   done") {
		t.Fatalf("prestop exited %d:\n%s", code, msg)
	}
	into := t.TempDir()
	if code, out := restore(envA.Namespace, token, into); code != 0 || !strings.Contains(out, "3 files") {
		t.Fatalf("restore exited %d: %s", code, out)
	}
	if got := tree(t, into); len(got) != len(want) || got["cart.db"] != want["cart.db"] || got["wal/0001"] != want["wal/0001"] {
		t.Fatalf("restored %d files, want %v", len(got), len(want))
	}
	code, body, h := getState(t, base, envA.Namespace, "cart")
	if code != http.StatusOK || h.Get("Content-Type") != "application/x-tar" || h.Get("X-Lastcall-Pod") != "cart-0" || len(body) < len(want["cart.db"]) {
		t.Fatalf("the stored tar: %d, %d bytes, headers %v", code, len(body), h)
	}

	// Refusals, through the helper and on the raw API.
	if code, msg := prestop(envB.Namespace, token); code != 1 || !strings.Contains(msg, "403") || !strings.Contains(msg, "Forbidden") {
		t.Errorf("prestop into another namespace exited %d:\n%s", code, msg)
	}
	if code, out := restore(envB.Namespace, token, t.TempDir()); code != 1 || !strings.Contains(out, "403") {
		t.Errorf("restore from another namespace exited %d: %s", code, out)
	}
	otherAudience := tokenFile(t, envA, "cart", "vault")
	if code, msg := prestop(envA.Namespace, otherAudience); code != 1 || !strings.Contains(msg, "WrongAudience") {
		t.Errorf("prestop with a token for audience vault exited %d:\n%s", code, msg)
	}
	key := base + "/v1/state/" + envA.Namespace + "/cart"
	for _, c := range []struct {
		name, token string
		code        int
		reason      string
	}{
		{"other namespace", token, http.StatusForbidden, "Forbidden"},
		{"audience vault", otherAudience, http.StatusUnauthorized, "WrongAudience"},
		{"expired", writeToken(t, expiredToken(t, sa)), http.StatusUnauthorized, "TokenExpired"},
		{"no token", "", http.StatusUnauthorized, "NoToken"},
	} {
		url := key
		if c.name == "other namespace" {
			url = base + "/v1/state/" + envB.Namespace + "/cart"
		}
		if code, reason := apiReason(t, http.MethodPut, url, c.token); code != c.code || reason != c.reason {
			t.Errorf("PUT with %s: %d %s, want %d %s", c.name, code, reason, c.code, c.reason)
		}
	}
	if code, body, _ := getState(t, base, envA.Namespace, "cart"); code != http.StatusOK || !bytes.Contains(body, []byte("offset 4711")) {
		t.Fatalf("after the refused writes the saved state reads %d", code)
	}

	// Cluster-wide access comes only from RBAC, checked by
	// SubjectAccessReview: grant the ServiceAccount states everywhere.
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "lastcall-state-" + envA.Namespace},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"lastcall.dev"}, Resources: []string{"states"}, Verbs: []string{"create", "get", "list"}}},
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: envA.Namespace, Name: "cart"}},
	}
	rbac := envA.Client.RbacV1()
	if _, err := rbac.ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rbac.ClusterRoles().Delete(context.Background(), role.Name, metav1.DeleteOptions{}) })
	if _, err := rbac.ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = rbac.ClusterRoleBindings().Delete(context.Background(), binding.Name, metav1.DeleteOptions{})
	})
	// The server caches the earlier denial for 10 s, and RBAC takes a moment
	// to reach the API server's authorizer: retry until the grant shows.
	var last string
	clustertest.Eventually(t, 45*time.Second, func(context.Context) (bool, error) {
		code, msg := prestop(envB.Namespace, token)
		last = msg
		return code == 0, nil
	}, "the ClusterRoleBinding to let prestop save into another namespace")
	if !strings.Contains(last, envB.Namespace+"/cart") {
		t.Fatalf("prestop into %s:\n%s", envB.Namespace, last)
	}
	// The earlier refused restore's denial of get is cached too.
	into = t.TempDir()
	clustertest.Eventually(t, 45*time.Second, func(context.Context) (bool, error) {
		code, out := restore(envB.Namespace, token, into)
		last = out
		return code == 0, nil
	}, "the ClusterRoleBinding to let restore read another namespace")
	if got := tree(t, into)["wal/0001"]; got != "offset 4711" {
		t.Fatalf("restore from %s with the grant: wal/0001 = %q; %s", envB.Namespace, got, last)
	}
	// The grant has no delete: that stays refused.
	if code, reason := apiReason(t, http.MethodDelete, base+"/v1/state/"+envB.Namespace+"/cart", token); code != http.StatusForbidden || reason != "Forbidden" {
		t.Errorf("DELETE in %s without a delete grant: %d %s", envB.Namespace, code, reason)
	}
}
