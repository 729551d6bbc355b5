package node

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

func TestPodsFallIntoTheGroupWithTheHighestPriorityNotAboveTheirs(t *testing.T) {
	groups := []Group{{0, time.Second}, {1000, time.Second}, {CriticalPriority, time.Second}}
	for _, tc := range []struct {
		priority int32
		want     int32
	}{
		{-10, 0},           // below the lowest group: the lowest
		{0, 0},             // on a boundary: that group
		{999, 0},           // between: the lower one
		{1000, 1000},       //
		{1999999999, 1000}, //
		{2000000000, 2e9},  // system-cluster-critical
		{2000001000, 2e9},  // system-node-critical: above the highest, the highest
	} {
		p := NewPlan(testNode, groups, []corev1.Pod{*newPod("p", withPriority(tc.priority))})
		for _, g := range p.Groups {
			if len(g.Pods) == 1 && g.Priority != tc.want {
				t.Errorf("priority %d in group %d, want %d", tc.priority, g.Priority, tc.want)
			}
		}
		if p.PodCount() != 1 {
			t.Errorf("priority %d: %d pods planned, want 1", tc.priority, p.PodCount())
		}
	}
}

func TestPlanWritesOrderBudgetsAndGrace(t *testing.T) {
	groups := Config{ShutdownGracePeriod: dur(30 * time.Second), ShutdownGracePeriodCriticalPods: dur(10 * time.Second)}.Groups()
	pods := []corev1.Pod{
		*newPod("web-1", withGrace(60)),
		*newPod("web-0", withGrace(5)),
		*newPod("batch", withPriority(-1)),
		*newPod("dns", withPriority(CriticalPriority), withGrace(30)),
		*newPod("fluentd", ownedBy("DaemonSet")),
		*newPod("kube-proxy", mirror()),
		*newPod("job-done", withPhase(corev1.PodSucceeded)),
	}
	plan := NewPlan(testNode, groups, pods)
	plan.Policies = map[types.NamespacedName][]string{{Namespace: "ns", Name: "web-1"}: {"drain-web", "save-sessions"}}
	var out bytes.Buffer
	if err := plan.Write(&out); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "plan.golden")
	if *update {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("plan output differs from %s (-update rewrites it):\n%s", golden, out.String())
	}
}
