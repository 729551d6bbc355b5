//go:build integration

package gate_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
	"github.com/lastcall-dev/lastcall/internal/gate"
)

// TestGateNeverDrainsPodsTheKubernetesProviderStillServes is issue 18 with
// the kubernetes provider, through a real server: while the app's Service
// has ready endpoints, a drain policy is not run; the gate passes with
// NotDrained and says why in a Warning Event on the Canary. Once the
// Service has none, the same revision's call starts the run.
//
// The EndpointSlice is written by the test: the dev cluster's pod IPs are
// loopback addresses (so that tests can serve them), which EndpointSlice
// validation refuses, so kube-controller-manager makes none here. The
// addresses below are data only; nothing is sent to them.
func TestGateNeverDrainsPodsTheKubernetesProviderStillServes(t *testing.T) {
	env := clustertest.New(t)
	c := adminClient(t)
	ctx := context.Background()
	s := startServer(t, serverOpts{})
	app := newDrainApp()
	close(app.release)
	pods := canary(t, c, env.Namespace, "web", "web", 2, app)
	setProvider(t, c, env.Namespace, "web", "kubernetes")
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: env.Namespace},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web-primary"},
			Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}}}
	if err := c.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "web-test", Namespace: env.Namespace, Labels: map[string]string{
			discoveryv1.LabelServiceName: "web", discoveryv1.LabelManagedBy: "lastcall-test"}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for i, p := range pods {
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{fmt.Sprintf("10.244.0.%d", i+10)},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name, UID: p.UID},
		})
	}
	if err := c.Create(ctx, slice); err != nil {
		t.Fatal(err)
	}
	s.waitCached(t, slice)
	policy := drainPolicy(t, c, env.Namespace, "drain-web", "web", "")
	s.waitCached(t, policy)

	got := post(t, s.URL+"/flagger/gate", "", s.promotion(t, c, env.Namespace, "web", "r1"))
	a := gateAnswer(t, got)
	if got.code != http.StatusOK || a.Phase != gate.PhaseNotDrained || a.Run != "" || !strings.Contains(a.Message, "provider kubernetes") {
		t.Fatalf("answer %v, want 200 NotDrained naming the provider", got)
	}
	if runs := gateRuns(t, c, env.Namespace); len(runs) != 0 {
		t.Fatalf("%d gate runs, want none: the pods serve all the traffic", len(runs))
	}
	clustertest.Eventually(t, 10*time.Second, func(ctx context.Context) (bool, error) {
		var evs corev1.EventList
		if err := c.List(ctx, &evs, client.InNamespace(env.Namespace)); err != nil {
			return false, err
		}
		for _, e := range evs.Items {
			if e.Reason == gate.ReasonDrainSkipped && e.Type == corev1.EventTypeWarning && e.InvolvedObject.Kind == "Canary" && e.InvolvedObject.Name == "web" {
				return true, nil
			}
		}
		return false, nil
	}, "a DrainSkipped Warning Event on the Canary")

	// The Service has no ready endpoint any more: nothing is in service,
	// and the drain may run.
	for i := range slice.Endpoints {
		slice.Endpoints[i].Conditions.Ready = ptr.To(false)
	}
	if err := c.Update(ctx, slice); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 10*time.Second, func(ctx context.Context) (bool, error) {
		a := gateAnswer(t, post(t, s.URL+"/flagger/gate", "", s.promotion(t, c, env.Namespace, "web", "r1")))
		return a.Run != "", nil
	}, "the run to start once the Service has no ready endpoint")
}

// setProvider changes a test Canary's spec.provider.
func setProvider(t *testing.T, c client.Client, ns, name, provider string) {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gate.CanaryGVK)
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, u); err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedField(u.Object, provider, "spec", "provider"); err != nil {
		t.Fatal(err)
	}
	if err := c.Update(context.Background(), u); err != nil {
		t.Fatal(err)
	}
}
