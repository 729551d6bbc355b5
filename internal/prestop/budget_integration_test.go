//go:build integration

package prestop

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	"github.com/lastcall-dev/lastcall/internal/devcluster"
	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
)

func TestMain(m *testing.M) {
	clustertest.Main(m, devcluster.Options{Nodes: 1})
}

// The plain-HTTP pod read against a real API server: a pod deleted with a
// 30 s grace gives the hook deletionTimestamp − now, read with a real
// ServiceAccount token, the cluster CA and the RBAC the docs ask for; the
// same read without that RBAC falls back to 30 s and says why.
func TestBudgetFromARealAPIServer(t *testing.T) {
	env := clustertest.New(t)
	ctx := context.Background()
	cs := env.Client
	for _, name := range []string{"hook", "no-rbac"} {
		if _, err := cs.CoreV1().ServiceAccounts(env.Namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cs.RbacV1().Roles(env.Namespace).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "lastcall-prestop"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.RbacV1().RoleBindings(env.Namespace).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "lastcall-prestop"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "lastcall-prestop"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "hook", Namespace: env.Namespace}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod, err := cs.CoreV1().Pods(env.Namespace).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-0"},
		Spec: corev1.PodSpec{
			NodeName:                      devcluster.NodeName(0), // scheduled: deletion waits for the grace
			TerminationGracePeriodSeconds: ptr.To[int64](45),
			Containers:                    []corev1.Container{{Name: "app", Image: "app"}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	saDir := func(sa string) string {
		tr, err := cs.CoreV1().ServiceAccounts(env.Namespace).CreateToken(ctx, sa, &authnv1.TokenRequest{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		ca, err := os.ReadFile(clustertest.Cluster().CAFile())
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "token"), tr.Status.Token)
		writeFile(t, filepath.Join(dir, "ca.crt"), string(ca))
		writeFile(t, filepath.Join(dir, "namespace"), env.Namespace)
		return dir
	}
	budget := func(sa string) Budget {
		// Namespace from the ServiceAccount's file, as in a pod.
		h := NewHook(Config{Pod: pod.Name, APIServer: env.Config.Host, ServiceAccountDir: saDir(sa)}, clock.RealClock{}, testLogger(t), nil)
		return h.resolveBudget(ctx, time.Now())
	}

	if b := budget("hook"); b.Total != 45*time.Second || !strings.HasPrefix(b.Source, "terminationGracePeriodSeconds") {
		t.Errorf("running pod: budget %s from %q, want 45s from terminationGracePeriodSeconds", b.Total, b.Source)
	}
	if err := cs.CoreV1().Pods(env.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](30)}); err != nil {
		t.Fatal(err)
	}
	b := budget("hook")
	// deletionTimestamp has whole seconds: the budget is 29–30 s.
	if b.Total <= 28*time.Second || b.Total > 30*time.Second || !strings.HasPrefix(b.Source, "deletionTimestamp") {
		t.Errorf("deleted pod: budget %s from %q, want 29–30s from deletionTimestamp", b.Total, b.Source)
	}
	if b := budget("no-rbac"); b.Total != DefaultFallbackBudget || !strings.Contains(b.Source, "403 Forbidden") {
		t.Errorf("no RBAC: budget %s from %q, want the 30s fallback naming the 403", b.Total, b.Source)
	}
}
