package scenario

import (
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
	"github.com/lastcall-dev/lastcall/internal/devcluster"
)

// Names of the objects the scenario creates.
const (
	App     = "podinfo"
	Primary = App + "-primary" // Flagger's stable copy of the target
	Policy  = "drain-" + App
	AppPort = 8080
)

// canaryGVR is Flagger's Canary resource.
var canaryGVR = schema.GroupVersionResource{Group: "flagger.app", Version: "v1beta1", Resource: "canaries"}

// image is the app's image at a version; kwok never pulls it.
func image(version string) string { return "example.invalid/podinfo:" + version }

// deployment is the target Flagger rolls out. Pods leave 500 ms after their
// deletion (kwok runs no containers) so that promotion does not wait out a
// grace period.
func deployment(replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": App}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: App, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{devcluster.AnnotationExitAfter: "500ms"}},
				Spec: corev1.PodSpec{
					// The app is played by the scenario's pod servers: on
					// kwok's nodes, also when the cluster has a real node.
					NodeSelector:                  map[string]string{"type": "kwok"},
					TerminationGracePeriodSeconds: ptr.To[int64](10),
					Containers: []corev1.Container{{
						Name: "app", Image: image("1.0"),
						Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: AppPort}},
					}},
				},
			},
		},
	}
}

// Mode is how Flagger moves traffic in a scenario, and so when the gate may
// drain the old primary pods (docs/gate.md).
type Mode string

const (
	// ModeBlueGreen: the gatewayapi:v1 provider, Blue/Green. The first
	// confirm-promotion call passes without a drain (all traffic still on
	// the primary); Flagger routes everything to the canary; the next call
	// drains, and the promotion waits for it. The main scenario, with its
	// faults.
	ModeBlueGreen Mode = "gatewayapi-bluegreen"
	// ModeProgressive: gatewayapi:v1, progressive canary to weight 100:
	// confirm-promotion comes at primary weight 0, and drains.
	ModeProgressive Mode = "gatewayapi-progressive"
	// ModeKubernetes: the kubernetes provider (Blue/Green by Service
	// selectors): the old primary pods take all traffic until Flagger
	// replaces them, so nothing drains them; a snapshot policy
	// (drainsTraffic: false) saves their state while they serve.
	ModeKubernetes Mode = "kubernetes-bluegreen"
)

// Gateway is the Gateway the HTTPRoute names; no controller serves it (the
// route's weights are the routing state the scenario checks).
const Gateway = "edge"

func (m Mode) gatewayAPI() bool { return m == ModeBlueGreen || m == ModeProgressive }

// policy is the scenario's TerminationPolicy for mode: a drain for the
// Gateway API modes, a state snapshot for the kubernetes provider.
func policy(mode Mode, retryBackoff time.Duration) *v1alpha1.TerminationPolicy {
	if mode == ModeKubernetes {
		return snapshotPolicy()
	}
	return drainPolicy(retryBackoff)
}

// snapshotPolicy saves each old primary pod's state without stopping it
// (drainsTraffic: false, so the gate runs it at any call).
func snapshotPolicy() *v1alpha1.TerminationPolicy {
	return &v1alpha1.TerminationPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: Policy},
		Spec: v1alpha1.TerminationPolicySpec{
			TargetRef: &v1alpha1.TargetRef{Kind: "Deployment", Name: Primary},
			Gate:      v1alpha1.GatePolicy{DrainsTraffic: ptr.To(false)},
			Steps: []v1alpha1.Step{{
				Name:      "snapshot",
				SaveState: &v1alpha1.SaveStateAction{Endpoint: v1alpha1.Endpoint{Port: AppPort, Path: "/state"}, Key: "{{.Pod.Name}}"},
			}},
		},
	}
}

// drainPolicy drains each old primary pod with POST /drain, one pod at a
// time so the live view reads well. A failed attempt is retried by an exit
// handler after retryBackoff, for the failed pods only.
func drainPolicy(retryBackoff time.Duration) *v1alpha1.TerminationPolicy {
	return &v1alpha1.TerminationPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: Policy},
		Spec: v1alpha1.TerminationPolicySpec{
			TargetRef:   &v1alpha1.TargetRef{Kind: "Deployment", Name: Primary},
			Concurrency: 1,
			StepDefaults: v1alpha1.StepPolicy{
				Timeout: &metav1.Duration{Duration: 5 * time.Second},
				Retries: ptr.To[int32](2),
				Backoff: &metav1.Duration{Duration: 500 * time.Millisecond},
			},
			Steps: []v1alpha1.Step{{
				Name: "drain",
				HTTP: &v1alpha1.HTTPAction{
					Endpoint:       v1alpha1.Endpoint{Port: AppPort, Path: "/drain"},
					Method:         "POST",
					Body:           `{"run": {{.Run.Name | json}}, "attempt": {{.Run.Attempt}}}`,
					ExpectedStatus: []int32{200},
				},
			}},
			ExitHandlers: []v1alpha1.ExitHandler{{
				Name: "again", When: v1alpha1.ExitFailed,
				Retry: &v1alpha1.RetryAction{Scope: v1alpha1.RetryFailedPods, Limit: 3, Backoff: &metav1.Duration{Duration: retryBackoff}},
			}},
		},
	}
}

// canary is the Flagger Canary for mode, with lastcall's gate (through the
// recorder) as the confirm-promotion webhook.
func canary(mode Mode, namespace string, interval time.Duration, gateURL string) *unstructured.Unstructured {
	analysis := map[string]any{
		"interval":  interval.String(),
		"threshold": int64(2),
		"webhooks": []any{map[string]any{
			"name": "drain", "type": "confirm-promotion", "url": gateURL,
		}},
	}
	service := map[string]any{"port": int64(AppPort)}
	provider := "gatewayapi:v1"
	switch mode {
	case ModeKubernetes:
		provider = "kubernetes"
		analysis["iterations"] = int64(2)
	case ModeProgressive:
		analysis["maxWeight"], analysis["stepWeight"] = int64(100), int64(50)
	default:
		analysis["iterations"] = int64(2)
	}
	if mode.gatewayAPI() {
		service["gatewayRefs"] = []any{map[string]any{"name": Gateway, "namespace": namespace}}
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "flagger.app/v1beta1",
		"kind":       "Canary",
		"metadata":   map[string]any{"name": App},
		"spec": map[string]any{
			"provider":                provider,
			"targetRef":               map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": App},
			"progressDeadlineSeconds": int64(120),
			"service":                 service,
			"analysis":                analysis,
		},
	}}
}
