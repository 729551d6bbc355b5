//go:build integration

package realnode

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/lastcall-dev/lastcall/internal/devcluster"
	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
	"github.com/lastcall-dev/lastcall/internal/devcluster/miniotest"
)

const (
	release    = "lastcall"
	releaseNS  = "lastcall-system"
	imageRepo  = "ghcr.io/lastcall-dev/lastcall"
	chartDir   = "../../charts/lastcall"
	upgradeTag = "test-2"
)

// TestHelmInstallUpgradeUninstall installs the chart as a user would, with
// the project's image, on the real node: two replicas on an S3 store
// (MinIO), reached through their Service (kube-proxy). A `helm upgrade` to
// another image tag then rolls both pods while gate checks and state saves
// go on, and none of them may fail; every acknowledged save must be
// readable afterwards. `helm uninstall` must leave only the CRDs and the
// Leases the servers wrote.
func TestHelmInstallUpgradeUninstall(t *testing.T) {
	env := clustertest.New(t)
	c := clustertest.Cluster()
	ctx := context.Background()

	importLastcallImage(t, "test-1", upgradeTag)
	minio := miniotest.StartOn(t, devcluster.NodeIP)

	cs := env.Client
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: releaseNS}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Secrets(releaseNS).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "lastcall-s3"},
		StringData: map[string]string{"AWS_ACCESS_KEY_ID": miniotest.User, "AWS_SECRET_ACCESS_KEY": miniotest.Password},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	helm := func(args ...string) string {
		t.Helper()
		args = append(args, "--kubeconfig", c.KubeconfigPath())
		out, err := devcluster.Helm(ctx, devcluster.BuildOptions{}, args...)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return string(out)
	}
	values := []string{
		"--set", "image.repository=" + imageRepo,
		"--set", "image.pullPolicy=Never",
		"--set", "server.replicas=2",
		"--set", "state.type=s3",
		"--set-string", "state.s3.url=" + minio.URL,
		"--set", "state.s3.credentialsSecret=lastcall-s3",
		"--set-string", "server.nodeSelector.devcluster\\.lastcall\\.dev/real-node=true",
	}
	start := time.Now()
	out := helm(append([]string{"install", release, chartDir, "-n", releaseNS, "--wait=watcher", "--timeout=3m", "--set", "image.tag=test-1"}, values...)...)
	t.Logf("helm install: Ready in %s", time.Since(start).Round(100*time.Millisecond))
	if !strings.Contains(out, "/flagger/gate") {
		t.Errorf("NOTES.txt does not print the Flagger webhook URL:\n%s", out)
	}
	t.Cleanup(func() {
		_, _ = devcluster.Helm(context.Background(), devcluster.BuildOptions{}, "uninstall", release, "-n", releaseNS, "--kubeconfig", c.KubeconfigPath())
	})

	svc, err := cs.CoreV1().Services(releaseNS).Get(ctx, release, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("http://%s:8080", svc.Spec.ClusterIP)
	pods, err := cs.CoreV1().Pods(releaseNS).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=server"})
	if err != nil || len(pods.Items) != 2 {
		t.Fatalf("server pods: %v, %d", err, len(pods.Items))
	}
	for _, p := range pods.Items {
		if p.Spec.NodeName != devcluster.RealNodeName || p.Spec.PriorityClassName != "lastcall-server" {
			t.Errorf("pod %s on %q with priority class %q", p.Name, p.Spec.NodeName, p.Spec.PriorityClassName)
		}
	}
	if _, err := cs.PolicyV1().PodDisruptionBudgets(releaseNS).Get(ctx, release, metav1.GetOptions{}); err != nil {
		t.Errorf("PodDisruptionBudget of a 2-replica install: %v", err)
	}

	// A ServiceAccount of the test's namespace saves state with a token for
	// lastcall's audience, as the prestop helper does.
	if _, err := cs.CoreV1().ServiceAccounts(env.Namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "app"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tok, err := cs.CoreV1().ServiceAccounts(env.Namespace).CreateToken(ctx, "app", &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{Audiences: []string{"lastcall"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l := &load{base: base, ns: env.Namespace, token: tok.Status.Token, hc: &http.Client{Timeout: 10 * time.Second}}
	if err := l.gateCheck(); err != nil {
		t.Fatalf("gate check through the Service: %v", err)
	}
	if err := l.save(0); err != nil {
		t.Fatalf("state save through the Service: %v", err)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 1; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if w%2 == 0 {
					l.record(l.gateCheck())
				} else {
					l.record(l.save(w*1_000_000 + i))
				}
			}
		}(w)
	}
	start = time.Now()
	helm(append([]string{"upgrade", release, chartDir, "-n", releaseNS, "--wait=watcher", "--timeout=3m", "--set", "image.tag=" + upgradeTag}, values...)...)
	rolled := time.Since(start)
	// The old pods are still terminating when helm returns: keep the load
	// on until they are gone.
	clustertest.Eventually(t, 2*time.Minute, func(ctx context.Context) (bool, error) {
		pods, err := cs.CoreV1().Pods(releaseNS).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=server"})
		if err != nil {
			return false, err
		}
		for _, p := range pods.Items {
			if !strings.HasSuffix(p.Spec.Containers[0].Image, ":"+upgradeTag) {
				return false, nil
			}
		}
		return len(pods.Items) == 2, nil
	}, "only upgraded server pods")
	close(stop)
	wg.Wait()
	t.Logf("helm upgrade: rolled in %s; %d gate checks and %d saves during the roll, %d failed",
		rolled.Round(100*time.Millisecond), l.gates.Load(), len(l.saved()), len(l.failures()))
	for _, f := range l.failures() {
		t.Errorf("during the upgrade: %s", f)
	}
	if l.gates.Load() < 20 || len(l.saved()) < 20 {
		t.Errorf("too little load to prove anything: %d gate checks, %d saves", l.gates.Load(), len(l.saved()))
	}
	for _, key := range l.saved() {
		if err := l.get(key); err != nil {
			t.Errorf("acknowledged save %s: %v", key, err)
		}
	}

	out = helm("uninstall", release, "-n", releaseNS, "--wait")
	t.Logf("helm uninstall: %s", strings.TrimSpace(out))
	checkNothingLeft(t, env)
}

var imported = map[string]bool{}

// importLastcallImage builds the lastcall image of the checkout once and
// imports it into the real node under each tag.
func importLastcallImage(t *testing.T, tags ...string) {
	t.Helper()
	dir := t.TempDir()
	for _, tag := range tags {
		if imported[tag] {
			continue
		}
		archive, err := devcluster.LocalImage(context.Background(), devcluster.BuildOptions{}, "lastcall-"+tag, "./cmd/lastcall", imageRepo+":"+tag, dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := clustertest.Cluster().ImportImages(context.Background(), archive); err != nil {
			t.Fatal(err)
		}
		imported[tag] = true
	}
}

// checkNothingLeft lists every kind the chart creates: none may be left
// with the release's label, and no pod of it may remain.
func checkNothingLeft(t *testing.T, env *clustertest.Env) {
	t.Helper()
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	sel := metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=" + release}
	for _, gvr := range []schema.GroupVersionResource{
		{Version: "v1", Resource: "pods"},
		{Version: "v1", Resource: "services"},
		{Version: "v1", Resource: "serviceaccounts"},
		{Version: "v1", Resource: "persistentvolumeclaims"},
		{Group: "apps", Version: "v1", Resource: "deployments"},
		{Group: "apps", Version: "v1", Resource: "daemonsets"},
		{Group: "policy", Version: "v1", Resource: "poddisruptionbudgets"},
		{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"},
		{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"},
		{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"},
		{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterrolebindings"},
		{Group: "scheduling.k8s.io", Version: "v1", Resource: "priorityclasses"},
	} {
		clustertest.Eventually(t, time.Minute, func(ctx context.Context) (bool, error) {
			list, err := dyn.Resource(gvr).List(ctx, sel)
			if err != nil {
				return false, err
			}
			return len(list.Items) == 0, nil
		}, "no %s of the release left", gvr.Resource)
	}
	crds, err := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}).
		Get(context.Background(), "terminationpolicies.lastcall.dev", metav1.GetOptions{})
	if err != nil || crds == nil {
		t.Errorf("the CRDs should stay after helm uninstall: %v", err)
	}
}

// load is the traffic kept on the server through its Service during the
// upgrade: gate checks (the canary has no Gate, so every answer is 403
// Forbidden) and state saves.
type load struct {
	base, ns, token string
	hc              *http.Client
	gates           atomic.Int64
	mu              sync.Mutex
	keys            []string
	failed          []string
}

func (l *load) record(err error) {
	if err != nil {
		l.mu.Lock()
		l.failed = append(l.failed, err.Error())
		l.mu.Unlock()
	}
}

func (l *load) saved() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.keys...)
}

func (l *load) failures() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.failed...)
}

func (l *load) gateCheck() error {
	resp, err := l.hc.Post(l.base+"/gate/check", "application/json", strings.NewReader(`{"name":"web","namespace":"`+l.ns+`"}`))
	if err != nil {
		return fmt.Errorf("gate check: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusForbidden {
		return fmt.Errorf("gate check: %d %s, want 403 (no Gate: closed)", resp.StatusCode, body)
	}
	l.gates.Add(1)
	return nil
}

func (l *load) save(i int) error {
	key := fmt.Sprintf("upgrade/%d", i)
	req, _ := http.NewRequest(http.MethodPut, l.base+"/v1/state/"+l.ns+"/"+key, bytes.NewReader([]byte(key)))
	req.Header.Set("Authorization", "Bearer "+l.token)
	resp, err := l.hc.Do(req)
	if err != nil {
		return fmt.Errorf("save %s: %w", key, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("save %s: %d %s", key, resp.StatusCode, body)
	}
	l.mu.Lock()
	l.keys = append(l.keys, key)
	l.mu.Unlock()
	return nil
}

func (l *load) get(key string) error {
	req, _ := http.NewRequest(http.MethodGet, l.base+"/v1/state/"+l.ns+"/"+key, nil)
	req.Header.Set("Authorization", "Bearer "+l.token)
	resp, err := l.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(body) != key {
		return fmt.Errorf("%d %q", resp.StatusCode, body)
	}
	return nil
}
