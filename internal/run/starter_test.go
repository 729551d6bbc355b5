package run

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
)

func fakeClient(t *testing.T, objs ...client.Object) client.Client {
	t.Helper()
	return fake.NewClientBuilder().WithScheme(Scheme()).WithObjects(objs...).Build()
}

func policy(name string, mod func(*v1alpha1.TerminationPolicySpec)) *v1alpha1.TerminationPolicy {
	p := &v1alpha1.TerminationPolicy{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"}}
	mod(&p.Spec)
	return p
}

func TestStarterFindsTheRunARepeatedTriggerStarted(t *testing.T) {
	c := fakeClient(t)
	s := &Starter{Client: c, Reader: c}
	pol := policy("drain", func(*v1alpha1.TerminationPolicySpec) {})
	req := Request{Policy: pol, Pods: []corev1.Pod{{ObjectMeta: metav1.ObjectMeta{Name: "web-0", UID: "u0"}}},
		Key: []string{"u0"}, NamePrefix: "drain-prestop", TTL: time.Hour, Labels: map[string]string{"extra": "x"},
		Trigger: v1alpha1.Trigger{Source: v1alpha1.TriggerWatcher, Reason: "hook failed"}}
	first, created, err := s.Start(context.Background(), req)
	if err != nil || !created {
		t.Fatalf("first start: created %v, %v", created, err)
	}
	if first.Name != RunName(req) || !strings.HasPrefix(first.Name, "drain-prestop-") {
		t.Fatalf("name %q, want the deterministic %q", first.Name, RunName(req))
	}
	if got := first.Labels; got[LabelPolicy] != "drain" || got[LabelTrigger] != "Watcher" || got["extra"] != "x" {
		t.Fatalf("labels %v", got)
	}
	if ttl := first.Spec.TTLSecondsAfterFinished; ttl == nil || *ttl != 3600 {
		t.Fatalf("ttl %v, want 3600", ttl)
	}
	if len(first.Spec.Pods) != 1 || first.Spec.Pods[0].UID != "u0" {
		t.Fatalf("pods %v", first.Spec.Pods)
	}
	again, created, err := s.Start(context.Background(), req)
	if err != nil || created || again.UID != first.UID {
		t.Fatalf("repeated start: created %v, uid %q (first %q), %v; want the first run", created, again.UID, first.UID, err)
	}
}

func TestStarterWithoutKeyStartsANewRunEachTime(t *testing.T) {
	c := fakeClient(t)
	s := &Starter{Client: c, Reader: c}
	req := Request{Policy: policy(strings.Repeat("p", 70), func(*v1alpha1.TerminationPolicySpec) {}), Trigger: v1alpha1.Trigger{Source: v1alpha1.TriggerCLI}}
	a, _, err := s.Start(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := s.Start(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if a.Name == b.Name {
		t.Fatalf("two runs named %q", a.Name)
	}
	if _, ok := a.Labels[LabelPolicy]; ok {
		t.Fatalf("a 70-character policy name cannot be a label value, got %v", a.Labels)
	}
}

func TestCoversEveryWorkloadKindTheSameWay(t *testing.T) {
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	tmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}}}
	meta := func(n string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: n, Namespace: "shop"} }
	c := fakeClient(t,
		&appsv1.Deployment{ObjectMeta: meta("d"), Spec: appsv1.DeploymentSpec{Selector: sel, Template: tmpl}},
		&appsv1.StatefulSet{ObjectMeta: meta("s"), Spec: appsv1.StatefulSetSpec{Selector: sel, Template: tmpl}},
		&appsv1.DaemonSet{ObjectMeta: meta("ds"), Spec: appsv1.DaemonSetSpec{Selector: sel, Template: tmpl}},
		&appsv1.ReplicaSet{ObjectMeta: meta("rs"), Spec: appsv1.ReplicaSetSpec{Selector: sel, Template: tmpl}},
	)
	pod := Covered{Kind: "Pod", Name: "web-0", Labels: map[string]string{"app": "web"}}
	other := Covered{Kind: "Pod", Name: "db-0", Labels: map[string]string{"app": "db"}}
	for _, kind := range []struct{ kind, name string }{{"Deployment", "d"}, {"StatefulSet", "s"}, {"DaemonSet", "ds"}, {"ReplicaSet", "rs"}} {
		p := policy("p", func(s *v1alpha1.TerminationPolicySpec) {
			s.TargetRef = &v1alpha1.TargetRef{Kind: kind.kind, Name: kind.name}
		})
		for _, tc := range []struct {
			w    Covered
			want bool
		}{{pod, true}, {other, false}, {Covered{Kind: kind.kind, Name: kind.name}, true}, {Covered{Kind: kind.kind, Name: "else"}, false}} {
			got, err := Covers(context.Background(), c, p, tc.w)
			if err != nil || got != tc.want {
				t.Errorf("%s %s covers %+v: %v, %v; want %v", kind.kind, kind.name, tc.w, got, err, tc.want)
			}
		}
	}
	missing := policy("p", func(s *v1alpha1.TerminationPolicySpec) {
		s.TargetRef = &v1alpha1.TargetRef{Kind: "Deployment", Name: "gone"}
	})
	if got, err := Covers(context.Background(), c, missing, pod); got || err != nil {
		t.Errorf("a policy whose target is gone covers %v, %v; want nothing", got, err)
	}
}

func TestCoveringPoliciesFiltersAndSkipsWhatCannotBeEvaluated(t *testing.T) {
	asked := policy("asked", func(s *v1alpha1.TerminationPolicySpec) {
		s.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
		s.RunOnFailedPreStop = true
	})
	notAsked := policy("not-asked", func(s *v1alpha1.TerminationPolicySpec) {
		s.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	})
	odd := policy("odd-kind", func(s *v1alpha1.TerminationPolicySpec) {
		s.TargetRef = &v1alpha1.TargetRef{Kind: "CronJob", Name: "x"}
		s.RunOnFailedPreStop = true
	})
	c := fakeClient(t, asked, notAsked, odd)
	got, err := CoveringPolicies(context.Background(), c, "shop", Covered{Kind: "Pod", Name: "web-0", Labels: map[string]string{"app": "web"}},
		func(p *v1alpha1.TerminationPolicy) bool { return p.Spec.RunOnFailedPreStop })
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Name != "asked" {
		t.Fatalf("covering policies %v, want only asked", got)
	}
}
