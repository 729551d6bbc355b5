//go:build integration

package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
	"github.com/lastcall-dev/lastcall/internal/run"
)

// boundToken is a TokenRequest token of ServiceAccount "default" bound to
// pod, as a projected volume in that pod gets.
func boundToken(t *testing.T, env *clustertest.Env, pod *corev1.Pod) string {
	t.Helper()
	tr, err := env.Client.CoreV1().ServiceAccounts(env.Namespace).CreateToken(context.Background(), "default", &authnv1.TokenRequest{
		Spec: authnv1.TokenRequestSpec{Audiences: []string{"lastcall"}, ExpirationSeconds: ptrTo(int64(600)),
			BoundObjectRef: &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return writeToken(t, tr.Status.Token)
}

// TestPrestopRunStepStartsARunThroughTheServer is issue 12 item 4: the
// preStop helper's run step against a real `lastcall server`. A pod's own
// bound token starts one run of the policy for that pod, which the server
// executes; the hook running again finds the same run; the token cannot
// start runs for another pod, another namespace, or a policy that does not
// cover the pod.
func TestPrestopRunStepStartsARunThroughTheServer(t *testing.T) {
	env := clustertest.New(t)
	other := clustertest.New(t)
	ctx := context.Background()
	base := stateServer(t)
	bin := buildPrestop(t)
	web0, drains := servedPod(t, env, "web-0", map[string]string{"app": "web"})
	web1, _ := servedPod(t, env, "web-1", map[string]string{"app": "web"})
	admin, err := client.New(clustertest.Cluster().Config(), client.Options{Scheme: run.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*v1alpha1.TerminationPolicy{
		{ObjectMeta: metav1.ObjectMeta{Name: "drain", Namespace: env.Namespace}, Spec: v1alpha1.TerminationPolicySpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Steps:    []v1alpha1.Step{{Name: "drain", HTTP: &v1alpha1.HTTPAction{Endpoint: v1alpha1.Endpoint{Port: 8080, Path: "/drain"}, Method: http.MethodPost}}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "for-db", Namespace: env.Namespace}, Spec: v1alpha1.TerminationPolicySpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			Steps:    []v1alpha1.Step{{Name: "drain", HTTP: &v1alpha1.HTTPAction{Endpoint: v1alpha1.Endpoint{Port: 8080, Path: "/drain"}}}}}},
	} {
		if err := admin.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	token := boundToken(t, env, web0)
	hook := func(pod, policy, tokenPath string) (int, string) {
		return helper(t, bin, "--budget=20s", "--run-url", base+"/v1/runs", "--policy", policy,
			"--pod", pod, "--namespace", env.Namespace, "--token-file", tokenPath,
			"--termination-message-path=none", "--console=none")
	}
	// The policy may still be missing from the server's cache for a moment.
	var out string
	clustertest.Eventually(t, 10*time.Second, func(context.Context) (bool, error) {
		code, o := hook("web-0", "drain", token)
		out = o
		return code == 0, nil
	}, "the run step to succeed")
	if !strings.Contains(out, "201 Created") {
		t.Fatalf("first run step: %s, want 201 Created", out)
	}
	var runs v1alpha1.TerminationRunList
	if err := admin.List(ctx, &runs, client.InNamespace(env.Namespace), client.MatchingLabels{run.LabelTrigger: string(v1alpha1.TriggerPreStop)}); err != nil {
		t.Fatal(err)
	}
	if len(runs.Items) != 1 || len(runs.Items[0].Spec.Pods) != 1 || runs.Items[0].Spec.Pods[0].UID != web0.UID {
		t.Fatalf("runs after the hook: %+v, want one for web-0", runs.Items)
	}
	r := &runs.Items[0]
	clustertest.Eventually(t, 30*time.Second, func(ctx context.Context) (bool, error) {
		if err := admin.Get(ctx, client.ObjectKeyFromObject(r), r); err != nil {
			return false, err
		}
		return r.Status.Phase == v1alpha1.RunSucceeded, nil
	}, "the run to succeed")
	if drains.Load() != 1 {
		t.Fatalf("web-0 drained %d times, want 1", drains.Load())
	}

	// The hook again (a second container, a retried hook): the same run.
	if code, out := hook("web-0", "drain", token); code != 0 || !strings.Contains(out, "200 OK") {
		t.Fatalf("repeated run step: exit %d: %s, want 200 and the same run", code, out)
	}
	if err := admin.List(ctx, &runs, client.InNamespace(env.Namespace)); err != nil || len(runs.Items) != 1 {
		t.Fatalf("runs after the repeat: %d (%v), want still 1", len(runs.Items), err)
	}

	// What the token may not do, answered before anything is started.
	for _, tc := range []struct {
		what, body, token string
		code              int
		reason            string
	}{
		{"another pod", `{"namespace":"` + env.Namespace + `","pod":"web-1","policy":"drain"}`, token, 403, "Forbidden"},
		{"another namespace", `{"namespace":"` + other.Namespace + `","pod":"web-0","policy":"drain"}`, token, 403, "Forbidden"},
		{"a policy that does not cover the pod", `{"namespace":"` + env.Namespace + `","pod":"web-0","policy":"for-db"}`, token, 422, run.ReasonNoPolicy},
		{"no token", `{"namespace":"` + env.Namespace + `","pod":"web-0"}`, "", 401, "NoToken"},
		{"a bad namespace", `{"namespace":"Not A Name","pod":"web-0"}`, token, 400, run.ReasonInvalid},
		{"an unknown field", `{"namespace":"` + env.Namespace + `","pod":"web-0","steps":[]}`, token, 400, run.ReasonInvalid},
		{"a body over 4 KiB", `{"namespace":"` + strings.Repeat("a", 5000) + `"}`, token, 400, run.ReasonInvalid},
	} {
		code, reason := post(t, base+"/v1/runs", tc.token, tc.body)
		if code != tc.code || reason != tc.reason {
			t.Errorf("%s: %d %s, want %d %s", tc.what, code, reason, tc.code, tc.reason)
		}
	}
	// The other pod's own token starts its run, with the one covering
	// policy chosen when none is named.
	if code, reason := post(t, base+"/v1/runs", boundToken(t, env, web1), `{"namespace":"`+env.Namespace+`","pod":"web-1"}`); code != http.StatusCreated {
		t.Fatalf("web-1's own token: %d %s, want 201", code, reason)
	}
	if err := admin.List(ctx, &runs, client.InNamespace(env.Namespace)); err != nil || len(runs.Items) != 2 {
		t.Fatalf("runs: %d (%v), want 2: only the allowed requests started runs", len(runs.Items), err)
	}
}

// post sends body with the token in tokenPath (none if "") and returns the
// status and the JSON error's reason.
func post(t *testing.T, url, tokenPath, body string) (int, string) {
	t.Helper()
	tok := ""
	if tokenPath != "" {
		tok = readFile(t, tokenPath)
	}
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
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
