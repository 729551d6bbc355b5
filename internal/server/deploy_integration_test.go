//go:build integration

package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
	"github.com/lastcall-dev/lastcall/internal/devcluster"
	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
	"github.com/lastcall-dev/lastcall/internal/run"
	"github.com/lastcall-dev/lastcall/internal/server"
)

// TestShippedManifestsAndRBAC applies the chart as `helm template` renders it,
// then runs the server with a token of the shipped ServiceAccount, bound only
// to the shipped roles: a run with http, exec and label steps on a targetRef
// policy must succeed, and what the server never needs must be forbidden.
func TestShippedManifestsAndRBAC(t *testing.T) {
	env := clustertest.New(t)
	ctx := context.Background()
	applyChart(t)

	token, err := env.Client.CoreV1().ServiceAccounts("lastcall-system").CreateToken(ctx, "lastcall",
		&authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptrTo(int64(3600))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	saCfg := rest.AnonymousClientConfig(clustertest.Cluster().Config())
	saCfg.BearerToken = token.Status.Token

	cfg := server.Defaults
	cfg.HTTPAddr, cfg.MetricsAddr, cfg.HealthAddr = "127.0.0.1:0", "127.0.0.1:0", "0"
	cfg.State.URL = "mem://"
	cfg.LeaseDuration, cfg.RenewDeadline, cfg.RetryPeriod = 2*time.Second, 1500*time.Millisecond, 250*time.Millisecond
	srv, err := server.New(saCfg, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Run(sctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	})

	admin, err := client.New(clustertest.Cluster().Config(), client.Options{Scheme: run.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	pod, drains := servedPod(t, env, "web-0", map[string]string{"app": "web"})
	if err := admin.Create(ctx, webDeployment(env.Namespace)); err != nil {
		t.Fatal(err)
	}
	policy := &v1alpha1.TerminationPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "rbac", Namespace: env.Namespace},
		Spec: v1alpha1.TerminationPolicySpec{
			TargetRef: &v1alpha1.TargetRef{Kind: "Deployment", Name: "web"},
			Steps: []v1alpha1.Step{
				{Name: "drain", HTTP: &v1alpha1.HTTPAction{Endpoint: v1alpha1.Endpoint{Port: 8080, Path: "/drain"}}},
				{Name: "flush", Exec: &v1alpha1.ExecAction{Command: []string{"sh", "-c", "echo flushed"}}},
				{Name: "mark", Label: &v1alpha1.MetadataAction{Set: map[string]string{"lastcall.dev/drained": "true"}}},
			},
		},
	}
	if err := admin.Create(ctx, policy); err != nil {
		t.Fatal(err)
	}
	run := &v1alpha1.TerminationRun{
		ObjectMeta: metav1.ObjectMeta{Name: "rbac", Namespace: env.Namespace},
		Spec: v1alpha1.TerminationRunSpec{
			PolicyRef: v1alpha1.PolicyRef{Name: policy.Name},
			Pods:      []v1alpha1.PodRef{{Name: pod.Name, UID: pod.UID}},
			Trigger:   v1alpha1.Trigger{Source: v1alpha1.TriggerCLI, Reason: "rbac test"},
		},
	}
	if err := admin.Create(ctx, run); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, time.Minute, func(ctx context.Context) (bool, error) {
		if err := admin.Get(ctx, client.ObjectKeyFromObject(run), run); err != nil {
			return false, err
		}
		return run.Status.Phase == v1alpha1.RunSucceeded || run.Status.Phase == v1alpha1.RunFailed, nil
	}, "the run to end")
	if run.Status.Phase != v1alpha1.RunSucceeded {
		t.Fatalf("run %s: %s %s; pods %+v", run.Status.Phase, run.Status.Reason, run.Status.Message, run.Status.Pods)
	}
	if drains.Load() != 1 {
		t.Errorf("pod got %d drain calls, want 1", drains.Load())
	}
	var got corev1.Pod
	if err := admin.Get(ctx, client.ObjectKeyFromObject(pod), &got); err != nil {
		t.Fatal(err)
	}
	if got.Labels["lastcall.dev/drained"] != "true" {
		t.Errorf("pod labels %v: the label step did not land", got.Labels)
	}

	// What the server must not be able to do.
	sa := kubernetes.NewForConfigOrDie(saCfg)
	for _, ra := range []authzv1.ResourceAttributes{
		{Verb: "get", Resource: "secrets", Namespace: env.Namespace},
		{Verb: "delete", Resource: "pods", Namespace: env.Namespace},
		{Verb: "create", Resource: "pods/eviction", Namespace: env.Namespace},
		{Verb: "delete", Group: "apps", Resource: "deployments", Namespace: env.Namespace},
		{Verb: "update", Group: "apps", Resource: "deployments", Namespace: env.Namespace},
		{Verb: "delete", Group: "lastcall.dev", Resource: "terminationpolicies", Namespace: env.Namespace},
		{Verb: "update", Group: "coordination.k8s.io", Resource: "leases", Namespace: env.Namespace},
		{Verb: "patch", Resource: "nodes"},
	} {
		rev, err := sa.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx,
			&authzv1.SelfSubjectAccessReview{Spec: authzv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &ra}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if rev.Status.Allowed {
			t.Errorf("the shipped role allows %s %s/%s in %q; the server never needs it", ra.Verb, ra.Group, ra.Resource, ra.Namespace)
		}
	}
}

// applyKustomization builds dir with kustomize and creates every object,
// CRDs first (and established) so that the rest can use them.
// applyChart creates what the chart renders (release "lastcall" in
// lastcall-system, CRDs included), as `helm install` would.
func applyChart(t testing.TB) {
	t.Helper()
	ns := []byte("apiVersion: v1\nkind: Namespace\nmetadata: {name: lastcall-system}\n---\n")
	applyManifests(t, append(ns, renderChart(t)...))
}

func renderChart(t testing.TB, set ...string) []byte {
	t.Helper()
	data, err := devcluster.HelmTemplate(context.Background(), devcluster.BuildOptions{}, "../../charts/lastcall", "lastcall", "lastcall-system", set...)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// applyCRDs installs only the chart's CRDs.
func applyCRDs(t testing.TB) {
	t.Helper()
	var data []byte
	files, _ := filepath.Glob("../../charts/lastcall/crds/*.yaml")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		data = append(append(data, b...), "\n---\n"...)
	}
	applyManifests(t, data)
}

func applyManifests(t testing.TB, data []byte) {
	t.Helper()
	var crds, rest []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if len(u.Object) == 0 { // a template that rendered nothing
			continue
		}
		if u.GetKind() == "CustomResourceDefinition" {
			crds = append(crds, u)
		} else {
			rest = append(rest, u)
		}
	}
	scheme := run.Scheme()
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(clustertest.Cluster().Config(), client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	create := func(u *unstructured.Unstructured) {
		if err := c.Create(ctx, u); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("create %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
	for _, u := range crds {
		create(u)
	}
	for _, u := range crds {
		clustertest.Eventually(t, 30*time.Second, func(ctx context.Context) (bool, error) {
			var crd apiextensionsv1.CustomResourceDefinition
			if err := c.Get(ctx, client.ObjectKey{Name: u.GetName()}, &crd); err != nil {
				return false, err
			}
			for _, cond := range crd.Status.Conditions {
				if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
					return true, nil
				}
			}
			return false, nil
		}, "CRD %s to be established", u.GetName())
	}
	for _, u := range rest {
		if err := c.Create(ctx, u); meta.IsNoMatchError(err) {
			t.Fatalf("create %s: %v", u.GetKind(), err)
		} else if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("create %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
}

// servedPod creates a pod, waits for its IP and serves /drain on it.
func servedPod(t *testing.T, env *clustertest.Env, name string, labels map[string]string) (*corev1.Pod, *atomic.Int32) {
	t.Helper()
	var drains atomic.Int32
	pod := servedPodWith(t, env, name, labels, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/drain" {
			drains.Add(1)
		}
		fmt.Fprintln(w, "ok")
	}))
	return pod, &drains
}

// servedPodWith creates a pod, waits for its IP and serves h on port 8080.
func servedPodWith(t *testing.T, env *clustertest.Env, name string, labels map[string]string, h http.Handler) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.invalid/web:1"}}},
	}
	if _, err := env.Client.CoreV1().Pods(env.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 30*time.Second, func(ctx context.Context) (bool, error) {
		p, err := env.Client.CoreV1().Pods(env.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		pod = p
		return p.Status.PodIP != "" && p.Status.Phase == corev1.PodRunning, nil
	}, "pod %s to run with an IP", name)
	l, err := net.Listen("tcp", net.JoinHostPort(pod.Status.PodIP, "8080"))
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{ReadHeaderTimeout: time.Second, Handler: h}
	go func() { _ = hs.Serve(l) }()
	t.Cleanup(func() { _ = hs.Close() })
	return pod
}

func ptrTo[T any](v T) *T { return &v }

// webDeployment is the workload the policy's targetRef names; no replicas,
// so the only pod is the one the test serves.
func webDeployment(ns string) *appsv1.Deployment {
	labels := map[string]string{"app": "web"}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptrTo(int32(0)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.invalid/web:1"}}},
			},
		},
	}
}
