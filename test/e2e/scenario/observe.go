package scenario

import (
	"context"
	"fmt"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
)

// CanaryState is the part of a Canary's status the scenario follows.
type CanaryState struct {
	Phase        string
	Iterations   int64
	FailedChecks int64
	Message      string // the Promoted condition's message
}

// PhaseChange is a Canary phase and when it was first seen.
type PhaseChange struct {
	At    time.Time
	Phase string
}

// ImageChange is a new image in the primary Deployment's pod template: the
// moment Flagger promoted.
type ImageChange struct {
	At    time.Time
	Image string
}

// RunChange is a TerminationRun's phase, attempt or progress as first seen.
type RunChange struct {
	At                time.Time
	Run               string
	Phase             v1alpha1.RunPhase
	Attempt           int32
	PodsDone, Failed  int32
	Total             int32
	NextAttempt, Done bool
}

var runGVR = v1alpha1.GroupVersion.WithResource("terminationruns")

// routeGVR is the Gateway API HTTPRoute Flagger's gatewayapi:v1 provider
// writes.
var routeGVR = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "httproutes"}

// RouteChange is the HTTPRoute's weights as first seen: where Flagger
// sends the traffic.
type RouteChange struct {
	At              time.Time
	Primary, Canary int64
}

// observer follows the Canary, the primary Deployment and the runs of a
// namespace through watches and keeps every change with the time it was seen.
type observer struct {
	ns    string
	onLog func(format string, args ...any)

	mu       sync.Mutex
	canary   CanaryState
	phases   []PhaseChange
	images   []ImageChange
	runs     map[string]*v1alpha1.TerminationRun
	runOrder []string // names in order of first sight
	changes  []RunChange
	routes   []RouteChange
}

func newObserver(ns string, onLog func(string, ...any)) *observer {
	return &observer{ns: ns, onLog: onLog, runs: map[string]*v1alpha1.TerminationRun{}}
}

func (o *observer) run(ctx context.Context, cs kubernetes.Interface, dyn dynamic.Interface, routes bool) error {
	df := dynamicinformer.NewFilteredDynamicSharedInformerFactory(dyn, 0, o.ns, nil)
	handlers := map[cache.SharedIndexInformer]func(any){
		df.ForResource(canaryGVR).Informer(): o.onCanary,
		df.ForResource(runGVR).Informer():    o.onRun,
	}
	if routes {
		handlers[df.ForResource(routeGVR).Informer()] = o.onRoute
	}
	tf := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(o.ns))
	handlers[tf.Apps().V1().Deployments().Informer()] = o.onDeployment
	for inf, h := range handlers {
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: h, UpdateFunc: func(_, obj any) { h(obj) }}); err != nil {
			return err
		}
	}
	df.Start(ctx.Done())
	tf.Start(ctx.Done())
	for gvr, ok := range df.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("watch %s in %s did not sync", gvr.Resource, o.ns)
		}
	}
	tf.WaitForCacheSync(ctx.Done())
	return nil
}

func (o *observer) onCanary(obj any) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok || u.GetName() != App {
		return
	}
	var st CanaryState
	st.Phase, _, _ = unstructured.NestedString(u.Object, "status", "phase")
	st.Iterations, _, _ = unstructured.NestedInt64(u.Object, "status", "iterations")
	st.FailedChecks, _, _ = unstructured.NestedInt64(u.Object, "status", "failedChecks")
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == "Promoted" {
			st.Message, _ = m["message"].(string)
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.canary = st
	if n := len(o.phases); st.Phase != "" && (n == 0 || o.phases[n-1].Phase != st.Phase) {
		o.phases = append(o.phases, PhaseChange{At: time.Now(), Phase: st.Phase})
		o.onLog("canary %s", st.Phase)
	}
}

// onRoute records the primary and canary weights of the app's HTTPRoute.
func (o *observer) onRoute(obj any) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok || u.GetName() != App {
		return
	}
	var c RouteChange
	rules, _, _ := unstructured.NestedSlice(u.Object, "spec", "rules")
	for _, r := range rules {
		refs, _, _ := unstructured.NestedSlice(r.(map[string]any), "backendRefs")
		for _, b := range refs {
			ref := b.(map[string]any)
			name, _, _ := unstructured.NestedString(ref, "name")
			w, found, _ := unstructured.NestedInt64(ref, "weight")
			if !found {
				w = 1
			}
			switch name {
			case Primary:
				c.Primary += w
			case App + "-canary":
				c.Canary += w
			}
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if n := len(o.routes); n > 0 && o.routes[n-1].Primary == c.Primary && o.routes[n-1].Canary == c.Canary {
		return
	}
	c.At = time.Now()
	o.routes = append(o.routes, c)
	o.onLog("HTTPRoute %s: primary %d, canary %d", App, c.Primary, c.Canary)
}

func (o *observer) onDeployment(obj any) {
	d, ok := obj.(*appsv1.Deployment)
	if !ok || d.Name != Primary || len(d.Spec.Template.Spec.Containers) == 0 {
		return
	}
	img := d.Spec.Template.Spec.Containers[0].Image
	o.mu.Lock()
	defer o.mu.Unlock()
	if n := len(o.images); n == 0 || o.images[n-1].Image != img {
		o.images = append(o.images, ImageChange{At: time.Now(), Image: img})
		o.onLog("%s template image %s", Primary, img)
	}
}

func (o *observer) onRun(obj any) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return
	}
	r := &v1alpha1.TerminationRun{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, r); err != nil {
		o.onLog("decode run %s: %v", u.GetName(), err)
		return
	}
	st := r.Status
	c := RunChange{At: time.Now(), Run: r.Name, Phase: st.Phase, Attempt: st.Attempt, PodsDone: st.PodsDone,
		Failed: st.PodsFailed, Total: st.PodsTotal, NextAttempt: st.NextAttemptTime != nil, Done: complete(r)}
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, seen := o.runs[r.Name]; !seen {
		o.runOrder = append(o.runOrder, r.Name)
	}
	o.runs[r.Name] = r
	for i := len(o.changes) - 1; i >= 0; i-- {
		if o.changes[i].Run == r.Name {
			prev := o.changes[i]
			prev.At = c.At
			if prev == c {
				return
			}
			break
		}
	}
	o.changes = append(o.changes, c)
	o.onLog("run %s %s attempt %d, %d/%d pods done, %d failed", r.Name, orDash(string(st.Phase)), st.Attempt, st.PodsDone, st.PodsTotal, st.PodsFailed)
}

// complete reports the run's Complete condition: no attempt is left to run.
func complete(r *v1alpha1.TerminationRun) bool {
	for _, c := range r.Status.Conditions {
		if c.Type == v1alpha1.ConditionComplete && c.Status == "True" {
			return true
		}
	}
	return false
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// firstFailure is when a run was first seen failing, or zero: a failed pod,
// a Failed phase, or a retry (status writes are batched, so the Failed phase
// between two attempts may never be seen).
func (o *observer) firstFailure() time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, c := range o.changes {
		if c.Failed > 0 || c.Phase == v1alpha1.RunFailed || c.Attempt > 1 {
			return c.At
		}
	}
	return time.Time{}
}
