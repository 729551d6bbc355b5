package run

import (
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
)

func TestDrainedConditions(t *testing.T) {
	metrics := "# TYPE inflight gauge\ninflight{route=\"/a\"} 2\ninflight{route=\"/b\"} 0\n# TYPE conns counter\nconns 0\n"
	for _, tc := range []struct {
		name string
		spec v1alpha1.WaitDrainedAction
		code int
		body string
		want bool
	}{
		{"default wants 2xx", v1alpha1.WaitDrainedAction{}, 204, "", true},
		{"default refuses 503", v1alpha1.WaitDrainedAction{}, 503, "", false},
		{"status list", v1alpha1.WaitDrainedAction{Status: []int32{410}}, 410, "", true},
		{"json at most", v1alpha1.WaitDrainedAction{JSONField: &v1alpha1.JSONFieldCondition{Path: "a.b", AtMost: ptr.To(0.0)}}, 200, `{"a":{"b":0}}`, true},
		{"json above", v1alpha1.WaitDrainedAction{JSONField: &v1alpha1.JSONFieldCondition{Path: "a.b", AtMost: ptr.To(0.0)}}, 200, `{"a":{"b":3}}`, false},
		{"json equals string", v1alpha1.WaitDrainedAction{JSONField: &v1alpha1.JSONFieldCondition{Path: "state", Equals: ptr.To("idle")}}, 200, `{"state":"idle"}`, true},
		{"json equals bool", v1alpha1.WaitDrainedAction{JSONField: &v1alpha1.JSONFieldCondition{Path: "idle", Equals: ptr.To("true")}}, 200, `{"idle":true}`, true},
		{"json missing field", v1alpha1.WaitDrainedAction{JSONField: &v1alpha1.JSONFieldCondition{Path: "x", AtMost: ptr.To(0.0)}}, 200, `{}`, false},
		{"json not json", v1alpha1.WaitDrainedAction{JSONField: &v1alpha1.JSONFieldCondition{Path: "x"}}, 200, `<html>`, false},
		{"metric sum above", v1alpha1.WaitDrainedAction{Metric: &v1alpha1.MetricCondition{Name: "inflight"}}, 200, metrics, false},
		{"metric with labels", v1alpha1.WaitDrainedAction{Metric: &v1alpha1.MetricCondition{Name: "inflight", Labels: map[string]string{"route": "/b"}}}, 200, metrics, true},
		{"metric counter", v1alpha1.WaitDrainedAction{Metric: &v1alpha1.MetricCondition{Name: "conns"}}, 200, metrics, true},
		{"metric absent", v1alpha1.WaitDrainedAction{Metric: &v1alpha1.MetricCondition{Name: "nope"}}, 200, metrics, false},
		{"metric endpoint down", v1alpha1.WaitDrainedAction{Metric: &v1alpha1.MetricCondition{Name: "conns"}}, 500, metrics, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, why, err := drained(&tc.spec, tc.code, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("drained = %v (%s), want %v", got, why, tc.want)
			}
		})
	}
}

// FuzzDrained feeds arbitrary pod answers to the conditions: they come from
// the app, so they must never panic.
func FuzzDrained(f *testing.F) {
	f.Add(200, `{"a":{"b":1}}`)
	f.Add(200, "# TYPE inflight gauge\ninflight 3\n")
	f.Add(500, "")
	specs := []v1alpha1.WaitDrainedAction{
		{JSONField: &v1alpha1.JSONFieldCondition{Path: "a.b", AtMost: ptr.To(0.0)}},
		{JSONField: &v1alpha1.JSONFieldCondition{Path: "a", Equals: ptr.To("x")}},
		{Metric: &v1alpha1.MetricCondition{Name: "inflight", Labels: map[string]string{"k": "v"}}},
		{Status: []int32{200}},
	}
	f.Fuzz(func(t *testing.T, code int, body string) {
		for i := range specs {
			_, _, _ = drained(&specs[i], code, body)
		}
	})
}

func TestEndpointURLAndTemplates(t *testing.T) {
	target := Target{
		Pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "shop", Labels: map[string]string{"app": "web"}},
			Status: corev1.PodStatus{PodIP: "127.1.0.7"}},
		Run:    &v1alpha1.TerminationRun{ObjectMeta: metav1.ObjectMeta{Name: "r1"}, Status: v1alpha1.TerminationRunStatus{Attempt: 2}},
		Policy: &v1alpha1.TerminationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p"}},
	}
	u, err := endpointURL(v1alpha1.Endpoint{Port: 8080, Path: "/drain"}, target)
	if err != nil || u != "http://127.1.0.7:8080/drain" {
		t.Fatalf("default URL %q, %v", u, err)
	}
	templated := v1alpha1.Endpoint{URL: "http://lb/{{.Pod.Namespace}}/{{.Pod.Labels.app}}?run={{.Run.Name}}&a={{.Run.Attempt}}"}
	if _, err := endpointURL(templated, target); !errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), "not allowed") {
		t.Fatalf("a URL with no allow list: %v, want a permanent refusal", err)
	}
	if target.URLs, err = NewURLAllowList([]string{"http://lb/shop/"}); err != nil {
		t.Fatal(err)
	}
	u, err = endpointURL(templated, target)
	if err != nil || u != "http://lb/shop/web?run=r1&a=2" {
		t.Fatalf("templated URL %q, %v", u, err)
	}
	other := v1alpha1.Endpoint{URL: "http://lb/{{.Pod.Labels.app}}/"}
	if _, err := endpointURL(other, target); err == nil {
		t.Fatal("a URL outside the allowed prefix was allowed")
	}
	for _, bad := range []string{"lb/", "ftp://lb/", "http://lb", "http:///x/"} {
		if _, err := NewURLAllowList([]string{bad}); err == nil {
			t.Errorf("prefix %q accepted", bad)
		}
	}
	_, err = endpointURL(v1alpha1.Endpoint{URL: "http://x/{{.Pod.Nope}}"}, target)
	if !errors.Is(err, ErrPermanent) {
		t.Fatalf("a bad template must be a permanent error, got %v", err)
	}
	body, err := render("body", `{"m": {{json .Policy.Name}}, "q": {{json "a\"b\nc"}}}`, dataFor(target))
	if err != nil || body != `{"m": "p", "q": "a\"b\nc"}` {
		t.Fatalf("json func: %q, %v", body, err)
	}
	target.Pod.Status.PodIP = ""
	if _, err := endpointURL(v1alpha1.Endpoint{Port: 80}, target); err == nil || !strings.Contains(err.Error(), "no IP") {
		t.Fatalf("a pod without IP: %v", err)
	}
}

func TestStatusExpected(t *testing.T) {
	if !statusExpected(202, nil) || statusExpected(301, nil) || !statusExpected(404, []int32{404}) || statusExpected(200, []int32{202}) {
		t.Fatal("statusExpected")
	}
}

func TestResetPodsByScope(t *testing.T) {
	mk := func() v1alpha1.TerminationRunStatus {
		return v1alpha1.TerminationRunStatus{Pods: []v1alpha1.PodStatus{
			{Name: "ok", Phase: v1alpha1.PodSucceeded, Steps: []v1alpha1.StepStatus{{Name: "a", Phase: v1alpha1.StepSucceeded}}},
			{Name: "bad", Phase: v1alpha1.PodFailed, Steps: []v1alpha1.StepStatus{{Name: "a", Phase: v1alpha1.StepSucceeded}, {Name: "b", Phase: v1alpha1.StepFailed}}},
			{Name: "gone", Phase: v1alpha1.PodGone},
		}}
	}
	st := mk()
	resetPods(&st, v1alpha1.RetryFailedPods)
	if st.Pods[0].Phase != v1alpha1.PodSucceeded || st.Pods[1].Phase != v1alpha1.PodPending || st.Pods[1].Steps[0].Phase != v1alpha1.StepSucceeded || st.Pods[1].Steps[1].Phase != v1alpha1.StepPending || st.PodsDone != 2 {
		t.Errorf("FailedPods: %+v", st)
	}
	st = mk()
	resetPods(&st, v1alpha1.RetryRun)
	if st.Pods[0].Phase != v1alpha1.PodPending || st.Pods[1].Steps[0].Phase != v1alpha1.StepPending || st.Pods[2].Phase != v1alpha1.PodGone {
		t.Errorf("Run: %+v", st)
	}
}

func TestDeterministicName(t *testing.T) {
	a := DeterministicName("gate-podinfo-", "ns", "podinfo", "abc", "confirm-promotion")
	if a != DeterministicName("gate-podinfo", "ns", "podinfo", "abc", "confirm-promotion") || a == DeterministicName("gate-podinfo", "ns", "podinfo", "abd", "confirm-promotion") {
		t.Fatal("names must be stable for the same parts and differ otherwise")
	}
	if len(DeterministicName(strings.Repeat("x", 300), "a")) > 63 {
		t.Fatal("too long for a name")
	}
}
