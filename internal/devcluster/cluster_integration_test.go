//go:build integration

package devcluster_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/utils/ptr"

	"github.com/lastcall-dev/lastcall/internal/devcluster"
	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
)

func TestMain(m *testing.M) {
	clustertest.Main(m, devcluster.Options{})
}

func TestDeploymentBecomesAvailableOnKwokNodes(t *testing.T) {
	env := clustertest.New(t)
	ctx := context.Background()
	dep := deployment("web", 3)
	if _, err := env.Client.AppsV1().Deployments(env.Namespace).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 60*time.Second, func(ctx context.Context) (bool, error) {
		d, err := env.Client.AppsV1().Deployments(env.Namespace).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range d.Status.Conditions {
			if c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionTrue && d.Status.ReadyReplicas == 3 {
				return true, nil
			}
		}
		return false, nil
	}, "deployment web to be Available with 3 ready replicas")

	pods := listPods(t, env, "app=web")
	if len(pods) != 3 {
		t.Fatalf("got %d pods, want 3", len(pods))
	}
	cidr := netip.MustParsePrefix(clustertest.Cluster().PodCIDR())
	for _, p := range pods {
		if p.Status.Phase != corev1.PodRunning || !podReady(&p) {
			t.Errorf("pod %s: phase %s, ready %v", p.Name, p.Status.Phase, podReady(&p))
		}
		if !strings.HasPrefix(p.Spec.NodeName, "kwok-node-") {
			t.Errorf("pod %s scheduled on %q, want a kwok node", p.Name, p.Spec.NodeName)
		}
		ip, err := netip.ParseAddr(p.Status.PodIP)
		if err != nil || !cidr.Contains(ip) {
			t.Errorf("pod %s IP %q not in %s", p.Name, p.Status.PodIP, cidr)
		}
	}
}

func TestEvictionRespectsPodDisruptionBudget(t *testing.T) {
	env := clustertest.New(t)
	ctx := context.Background()
	dep := deployment("db", 3)
	if _, err := env.Client.AppsV1().Deployments(env.Namespace).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable: ptr.To(intstr.FromInt32(2)),
			Selector:     &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
		},
	}
	if _, err := env.Client.PolicyV1().PodDisruptionBudgets(env.Namespace).Create(ctx, pdb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 60*time.Second, func(ctx context.Context) (bool, error) {
		p, err := env.Client.PolicyV1().PodDisruptionBudgets(env.Namespace).Get(ctx, "db", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return p.Status.ObservedGeneration == p.Generation && p.Status.CurrentHealthy == 3 && p.Status.DisruptionsAllowed == 1, nil
	}, "the disruption controller to allow exactly 1 disruption")

	pods := listPods(t, env, "app=db")
	evict := func(name string) error {
		return env.Client.PolicyV1().Evictions(env.Namespace).Evict(ctx, &policyv1.Eviction{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: env.Namespace},
		})
	}
	if err := evict(pods[0].Name); err != nil {
		t.Fatalf("first eviction, within budget: %v", err)
	}
	err := evict(pods[1].Name)
	if !apierrors.IsTooManyRequests(err) {
		t.Fatalf("second eviction, beyond budget: got %v, want 429 TooManyRequests", err)
	}
}

func TestGracefulDeletionLastsUntilDeadline(t *testing.T) {
	env := clustertest.New(t)
	ctx := context.Background()
	pod := simplePod("graceful")
	pod.Spec.TerminationGracePeriodSeconds = ptr.To[int64](5)
	if _, err := env.Client.CoreV1().Pods(env.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRunning(t, env, "graceful")
	deleted := time.Now()
	if err := env.Client.CoreV1().Pods(env.Namespace).Delete(ctx, "graceful", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // the behaviour under test is that nothing happens for a while
	p, err := env.Client.CoreV1().Pods(env.Namespace).Get(ctx, "graceful", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("pod gone 1 s after a delete with 5 s grace: %v", err)
	}
	if p.DeletionTimestamp == nil {
		t.Fatal("pod is not terminating")
	}
	clustertest.Eventually(t, 10*time.Second, func(ctx context.Context) (bool, error) {
		_, err := env.Client.CoreV1().Pods(env.Namespace).Get(ctx, "graceful", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	}, "pod to be removed after its grace period")
	if gone := time.Since(deleted); gone < 4*time.Second || gone > 8*time.Second {
		t.Errorf("pod removed %s after deletion, want about its 5 s grace", gone)
	}
}

func TestServiceAccountTokenAudience(t *testing.T) {
	env := clustertest.New(t)
	ctx := context.Background()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "app"}}
	if _, err := env.Client.CoreV1().ServiceAccounts(env.Namespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := env.Client.CoreV1().ServiceAccounts(env.Namespace).CreateToken(ctx, "app", &authnv1.TokenRequest{
		Spec: authnv1.TokenRequestSpec{Audiences: []string{"lastcall"}, ExpirationSeconds: ptr.To[int64](600)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest: %v", err)
	}
	review := func(audience string) *authnv1.TokenReview {
		r, err := env.Client.AuthenticationV1().TokenReviews().Create(ctx, &authnv1.TokenReview{
			Spec: authnv1.TokenReviewSpec{Token: tr.Status.Token, Audiences: []string{audience}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("TokenReview: %v", err)
		}
		return r
	}
	ok := review("lastcall")
	want := fmt.Sprintf("system:serviceaccount:%s:app", env.Namespace)
	if !ok.Status.Authenticated || ok.Status.User.Username != want {
		t.Errorf("audience lastcall: authenticated=%v user=%q error=%q, want %s", ok.Status.Authenticated, ok.Status.User.Username, ok.Status.Error, want)
	}
	if bad := review("someone-else"); bad.Status.Authenticated {
		t.Errorf("a token for audience lastcall passed a review for audience someone-else")
	}
}

func TestFailedPreStopHookEventByFieldSelector(t *testing.T) {
	env := clustertest.New(t)
	ctx := context.Background()
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: "web-0."},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: env.Namespace, Name: "web-0", FieldPath: "spec.containers{app}"},
		Reason:         "FailedPreStopHook",
		Message:        "PreStopHook failed",
		Type:           corev1.EventTypeWarning,
		Source:         corev1.EventSource{Component: "kubelet", Host: devcluster.NodeName(0)},
		FirstTimestamp: metav1.Now(),
		LastTimestamp:  metav1.Now(),
		Count:          1,
	}
	if _, err := env.Client.CoreV1().Events(env.Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	list, err := env.Client.CoreV1().Events(env.Namespace).List(ctx, metav1.ListOptions{
		FieldSelector: "reason=FailedPreStopHook,involvedObject.kind=Pod,involvedObject.name=web-0",
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].InvolvedObject.FieldPath != "spec.containers{app}" {
		t.Fatalf("found %d events, want the one FailedPreStopHook event: %+v", len(list.Items), list.Items)
	}
}

func TestHTTPServerOnPodIP(t *testing.T) {
	env := clustertest.New(t)
	ctx := context.Background()
	if _, err := env.Client.CoreV1().Pods(env.Namespace).Create(ctx, simplePod("served"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := waitRunning(t, env, "served")
	l, err := net.Listen("tcp", net.JoinHostPort(pod.Status.PodIP, "8080"))
	if err != nil {
		t.Fatalf("listen on pod IP %s: %v", pod.Status.PodIP, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s", pod.Name)
	}), ReadHeaderTimeout: time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })

	resp, err := http.Get("http://" + net.JoinHostPort(pod.Status.PodIP, "8080") + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "hello from served" {
		t.Fatalf("got %q", body)
	}
}

func TestExecThroughAPIServerRunsLocally(t *testing.T) {
	env := clustertest.New(t)
	ctx := context.Background()
	if _, err := env.Client.CoreV1().Pods(env.Namespace).Create(ctx, simplePod("execd"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRunning(t, env, "execd")
	req := env.Client.CoreV1().RESTClient().Post().Resource("pods").Namespace(env.Namespace).Name("execd").
		SubResource("exec").VersionedParams(&corev1.PodExecOptions{
		Container: "app", Command: []string{"sh", "-c", "echo out-$((6*7)); echo err >&2"}, Stdout: true, Stderr: true,
	}, scheme.ParameterCodec)
	exec, err := remotecommand.NewSPDYExecutor(env.Config, http.MethodPost, req.URL())
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if err := exec.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr}); err != nil {
		t.Fatalf("exec: %v (stderr %q)", err, stderr.String())
	}
	if stdout.String() != "out-42\n" || stderr.String() != "err\n" {
		t.Fatalf("stdout %q stderr %q", stdout.String(), stderr.String())
	}
}

func deployment(name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	pod := simplePod(name)
	pod.Labels = labels
	pod.Annotations = map[string]string{devcluster.AnnotationExitAfter: "200ms"}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: pod.ObjectMeta, Spec: pod.Spec},
		},
	}
}

func simplePod(name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "app", Image: "example.invalid/app:1"}},
		},
	}
}

func listPods(t *testing.T, env *clustertest.Env, selector string) []corev1.Pod {
	t.Helper()
	list, err := env.Client.CoreV1().Pods(env.Namespace).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	return list.Items
}

func waitRunning(t *testing.T, env *clustertest.Env, name string) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	clustertest.Eventually(t, 30*time.Second, func(ctx context.Context) (bool, error) {
		p, err := env.Client.CoreV1().Pods(env.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		pod = p
		return p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "", nil
	}, "pod %s to run", name)
	return pod
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// TestNodeLeasesAreRenewed checks the heartbeat the node-lifecycle
// controller relies on: every kwok node holds a Lease that kwok renews (every
// 10 s for its 40 s duration), so that nodes stay Ready on a loaded machine.
func TestNodeLeasesAreRenewed(t *testing.T) {
	env := clustertest.New(t)
	nodes, err := env.Client.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	first := map[string]time.Time{}
	clustertest.Eventually(t, 45*time.Second, func(ctx context.Context) (bool, error) {
		renewedAll := true
		for _, n := range nodes.Items {
			l, err := env.Client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, n.Name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) || (err == nil && l.Spec.RenewTime == nil) {
				renewedAll = false
				continue
			}
			if err != nil {
				return false, err
			}
			if l.Spec.LeaseDurationSeconds == nil || *l.Spec.LeaseDurationSeconds != 40 {
				return false, fmt.Errorf("lease %s lasts %v s, want 40", n.Name, l.Spec.LeaseDurationSeconds)
			}
			f, seen := first[n.Name]
			if !seen {
				first[n.Name] = l.Spec.RenewTime.Time
			}
			if !seen || !l.Spec.RenewTime.After(f) {
				renewedAll = false
			}
		}
		return renewedAll, nil
	}, "a renewal of every node's Lease")
}
