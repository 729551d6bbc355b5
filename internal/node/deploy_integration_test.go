//go:build integration

package node

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
	"github.com/lastcall-dev/lastcall/internal/devcluster"
	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
	"github.com/lastcall-dev/lastcall/internal/node/logind/logindtest"
)

// TestShippedRBACIsEnoughForAShutdownAndNoMore applies the chart's node agent as
// kustomize builds it and runs the agent with a token of its ServiceAccount,
// bound only to the shipped ClusterRole: a shutdown with a termination run
// (targetRef policy), an eviction, a PDB override at the margin and Events,
// then a cancel that uncordons, must all work; what the agent never needs
// must be forbidden.
func TestShippedRBACIsEnoughForAShutdownAndNoMore(t *testing.T) {
	env := clustertest.New(t)
	admin := fastClient(t, env)
	cleanNode(t, admin)
	ctx := context.Background()
	// RBAC alone: the own-node admission policy has its own test, and a
	// token bound to a pod on the node would end with the pod, which this
	// shutdown evicts.
	applyNodeAgent(t, admin, false)
	saCfg := serviceAccountConfig(t, admin, "lastcall-system", "lastcall-node-agent")
	sa, err := kubernetes.NewForConfig(ClientConfig(saCfg))
	if err != nil {
		t.Fatal(err)
	}

	runs := startController(t)
	ns := env.Namespace
	createPods(t, admin, ns, []podSpec{
		{name: "web", grace: 30, exitAfter: "200ms", app: "web"},
		{name: "guarded", grace: 30, exitAfter: "200ms", app: "guarded"},
	})
	createPDB(t, admin, ns, "guarded", 1, 1)
	drains := serveDrains(t, admin, ns, []string{"web"}, http.StatusOK)
	for _, obj := range []client.Object{
		emptyDeployment(ns, "web", "web"),
		drainPolicy(ns, "drain-web", nil, &v1alpha1.TargetRef{Kind: "Deployment", Name: "web"}),
	} {
		if err := runs.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	tl := watchTimeline(t, admin, ns)

	svc := logindtest.Start(t, logindtest.Options{})
	cfg := Config{ShutdownGracePeriod: metav1.Duration{Duration: 4 * time.Second}, PDBMargin: metav1.Duration{Duration: time.Second}}
	agent := startAgentAs(t, svc, sa, saCfg, cfg)
	locks, _ := svc.WaitLocks(ctx, 1)
	if err := svc.PrepareForShutdown(true); err != nil {
		t.Fatal(err)
	}
	select {
	case <-locks[0].Released():
	case <-time.After(30 * time.Second):
		t.Fatal("the agent never released the delay lock")
	}
	at, n := drains.get("web")
	del, _, _, evicted := tl.get("web")
	if n != 1 || !evicted || !at.Before(del) {
		t.Errorf("web: %d drain calls, evicted %v: want the run's drain call, then the eviction", n, evicted)
	}
	if _, _, _, ok := tl.get("guarded"); !ok {
		t.Error("guarded: not deleted at the margin (pdb: override)")
	}
	node, err := admin.CoreV1().Nodes().Get(ctx, kwokNode, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !node.Spec.Unschedulable || !hasTaint(node) {
		t.Error("node not cordoned and tainted with the agent's token")
	}
	if err := svc.PrepareForShutdown(false); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 10*time.Second, func(ctx context.Context) (bool, error) {
		n, err := admin.CoreV1().Nodes().Get(ctx, kwokNode, metav1.GetOptions{})
		return err == nil && !n.Spec.Unschedulable && !hasTaint(n), err
	}, "the cancel to uncordon the node with the agent's token")
	clustertest.Eventually(t, 20*time.Second, func(context.Context) (bool, error) {
		evs := podEvents(t, admin, ns)
		return evs[ReasonPodEvicted] >= 1 && evs[ReasonPodOverridden] >= 1, nil
	}, "the agent's Events on the pods")
	if logs := agent.logs.String(); strings.Contains(strings.ToLower(logs), "forbidden") {
		t.Errorf("the agent was refused something it needs:\n%s", logs)
	}

	// What the agent must not be able to do.
	for _, ra := range []authzv1.ResourceAttributes{
		{Verb: "delete", Group: "apps", Resource: "deployments", Namespace: ns},
		{Verb: "update", Group: "apps", Resource: "deployments", Namespace: ns},
		{Verb: "list", Group: "apps", Resource: "deployments", Namespace: ns},
		{Verb: "get", Resource: "secrets", Namespace: ns},
		{Verb: "list", Resource: "secrets"},
		{Verb: "create", Resource: "pods", Namespace: ns},
		{Verb: "patch", Resource: "pods", Namespace: ns},
		{Verb: "create", Resource: "pods", Subresource: "exec", Namespace: ns},
		{Verb: "update", Resource: "nodes"},
		{Verb: "delete", Resource: "nodes"},
		{Verb: "update", Resource: "nodes", Subresource: "status"},
		{Verb: "delete", Group: "policy", Resource: "poddisruptionbudgets", Namespace: ns},
		{Verb: "create", Group: "lastcall.dev", Resource: "terminationpolicies", Namespace: ns},
		{Verb: "update", Group: "lastcall.dev", Resource: "terminationruns", Namespace: ns},
		{Verb: "delete", Group: "lastcall.dev", Resource: "terminationruns", Namespace: ns},
		{Verb: "update", Group: "lastcall.dev", Resource: "terminationruns", Subresource: "status", Namespace: ns},
	} {
		rev, err := sa.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx,
			&authzv1.SelfSubjectAccessReview{Spec: authzv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &ra}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if rev.Status.Allowed {
			t.Errorf("the shipped role allows %s %s/%s %s in %q; the agent never needs it", ra.Verb, ra.Group, ra.Resource, ra.Subresource, ra.Namespace)
		}
	}
	err = sa.AppsV1().Deployments(ns).Delete(ctx, "web", metav1.DeleteOptions{})
	if !apierrors.IsForbidden(err) {
		t.Errorf("deleting a Deployment with the agent's token: %v, want Forbidden", err)
	}
}

// applyNodeAgent creates the node agent's objects as the chart renders them
// with nodeAgent.enabled (release "lastcall" in lastcall-system). The
// DaemonSet is only validated by the API server (dry run): its pods would
// sit on the kwok nodes of the other tests.
func applyNodeAgent(t *testing.T, cs kubernetes.Interface, withPolicy bool) {
	t.Helper()
	ctx := context.Background()
	nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "lastcall-system"}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, nsObj, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	data, err := devcluster.HelmTemplate(ctx, devcluster.BuildOptions{}, "../../charts/lastcall", "lastcall", "lastcall-system",
		"nodeAgent.enabled=true", "image.tag=v0.1.0")
	if err != nil {
		t.Fatal(err)
	}
	c := adminClient(t)
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		// Only the node agent's objects: the server's are another test's.
		if u.GetLabels()["app.kubernetes.io/component"] != "node-agent" && !strings.Contains(u.GetName(), "node-agent") {
			continue
		}
		if strings.HasPrefix(u.GetKind(), "ValidatingAdmissionPolicy") {
			if !withPolicy {
				continue
			}
			// Cluster-wide: gone with the test, so that other tests of the
			// package keep their own rules.
			t.Cleanup(func() { _ = c.Delete(context.Background(), u) })
		}
		var opts []client.CreateOption
		if u.GetKind() == "DaemonSet" {
			if img := nestedImage(u); img != "ghcr.io/lastcall-dev/lastcall:v0.1.0" {
				t.Errorf("DaemonSet image %q: the chart's image values did not apply", img)
			}
			opts = append(opts, client.DryRunAll)
		}
		if err := c.Create(ctx, u, opts...); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("create %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
}

func nestedImage(u *unstructured.Unstructured) string {
	cs, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
	if len(cs) == 0 {
		return ""
	}
	img, _, _ := unstructured.NestedString(cs[0].(map[string]any), "image")
	return img
}

// agentPodConfig is a rest.Config with the token a node agent's pod on node
// gets: bound to a pod of the agent's ServiceAccount scheduled there, so the
// API server records the node in the token's user extras.
func agentPodConfig(t *testing.T, cs kubernetes.Interface, node string) *rest.Config {
	t.Helper()
	ctx := context.Background()
	pod, err := cs.CoreV1().Pods("lastcall-system").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "lastcall-node-agent-"},
		Spec: corev1.PodSpec{NodeName: node, ServiceAccountName: "lastcall-node-agent",
			Containers: []corev1.Container{{Name: "agent", Image: "lastcall"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteAndWait(t, cs, "lastcall-system", pod.Name) })
	tok, err := cs.CoreV1().ServiceAccounts("lastcall-system").CreateToken(ctx, "lastcall-node-agent", &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{
		ExpirationSeconds: ptr.To[int64](3600),
		BoundObjectRef:    &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := rest.AnonymousClientConfig(clustertest.Cluster().Config())
	cfg.BearerToken = tok.Status.Token
	return cfg
}

// deleteAndWait deletes a pod at once and waits until it is gone.
func deleteAndWait(t *testing.T, cs kubernetes.Interface, ns, name string) {
	t.Helper()
	_ = cs.CoreV1().Pods(ns).Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
	clustertest.Eventually(t, 30*time.Second, func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	}, "pod %s/%s to be gone", ns, name)
}

// TestAgentMayChangeOnlyItsOwnNode: the shipped ValidatingAdmissionPolicy
// lets the agent's ServiceAccount patch only the node its pod runs on and
// delete only pods there, although its ClusterRole allows any node and pod.
func TestAgentMayChangeOnlyItsOwnNode(t *testing.T) {
	env := clustertest.New(t)
	admin := fastClient(t, env)
	ctx := context.Background()
	applyNodeAgent(t, admin, true)
	const other = "lastcall-other-node"
	if _, err := admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: other}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.CoreV1().Nodes().Delete(context.Background(), other, metav1.DeleteOptions{}) })
	for name, node := range map[string]string{"mine": kwokNode, "theirs": other} {
		_, err := admin.CoreV1().Pods(env.Namespace).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.PodSpec{NodeName: node, TerminationGracePeriodSeconds: ptr.To[int64](0),
				Containers: []corev1.Container{{Name: "app", Image: "app"}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// The node's pods are counted by the tests that follow.
		t.Cleanup(func() { deleteAndWait(t, admin, env.Namespace, name) })
	}
	agent, err := kubernetes.NewForConfig(agentPodConfig(t, admin, kwokNode))
	if err != nil {
		t.Fatal(err)
	}
	unbound, err := kubernetes.NewForConfig(serviceAccountConfig(t, admin, "lastcall-system", "lastcall-node-agent"))
	if err != nil {
		t.Fatal(err)
	}
	annotate := func(cs kubernetes.Interface, node string) error {
		_, err := cs.CoreV1().Nodes().Patch(ctx, node, "application/merge-patch+json",
			[]byte(`{"metadata":{"annotations":{"lastcall.dev/test":"x"}}}`), metav1.PatchOptions{})
		return err
	}
	// The API server loads a new policy asynchronously.
	var last error
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		last = annotate(agent, other)
		return apierrors.IsForbidden(last) && strings.Contains(last.Error(), "may change only its own node"), nil
	})
	if err != nil {
		t.Fatalf("the policy never refused the agent a patch of another node; last answer: %v", last)
	}
	if err := annotate(agent, kwokNode); err != nil {
		t.Errorf("the agent patching its own node: %v", err)
	}
	if err := annotate(unbound, kwokNode); !apierrors.IsForbidden(err) {
		t.Errorf("a token not bound to a pod on a node patching a node: %v, want Forbidden", err)
	}
	if err := agent.CoreV1().Pods(env.Namespace).Delete(ctx, "theirs", metav1.DeleteOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("the agent deleting a pod on another node: %v, want Forbidden", err)
	}
	if err := agent.CoreV1().Pods(env.Namespace).Delete(ctx, "mine", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Errorf("the agent deleting a pod on its own node: %v", err)
	}
}

// serviceAccountConfig is a rest.Config that authenticates with a fresh
// token of the ServiceAccount ns/name, and nothing else.
func serviceAccountConfig(t *testing.T, cs kubernetes.Interface, ns, name string) *rest.Config {
	t.Helper()
	tok, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), name,
		&authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := rest.AnonymousClientConfig(clustertest.Cluster().Config())
	cfg.BearerToken = tok.Status.Token
	return cfg
}
