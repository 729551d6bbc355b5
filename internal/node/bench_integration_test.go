//go:build integration && bench

package node

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/kubectl/pkg/drain"

	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
	"github.com/lastcall-dev/lastcall/internal/node/logind/logindtest"
)

// benchRounds repeats every evacuation; the report gives medians. The
// machine is shared and one round moves by tens of percent.
var benchRounds = flag.Int("bench-rounds", 1, "rounds of TestBenchmarkEvacuationVsKubectlDrain")

// The agent's groups in the benchmark: the three priority classes, 30 s
// each, lowest first; or all of them in one group, as drain treats them.
var (
	threeClasses = []PriorityGracePeriod{{Priority: 0, ShutdownGracePeriodSeconds: 30}, {Priority: 10000, ShutdownGracePeriodSeconds: 30}, {Priority: 1000000, ShutdownGracePeriodSeconds: 30}}
	oneGroup     = []PriorityGracePeriod{{Priority: 0, ShutdownGracePeriodSeconds: 90}}
)

// contender evacuates the kwok node and returns the wall time.
type contender struct {
	name string
	run  func(t *testing.T, cs kubernetes.Interface, ns string, set benchSet) time.Duration
}

var contenders = []contender{
	{"lastcall", func(t *testing.T, cs kubernetes.Interface, ns string, set benchSet) time.Duration {
		return evacuateWithLastcall(t, cs, ns, set, threeClasses)
	}},
	{"kubectl drain", func(t *testing.T, cs kubernetes.Interface, ns string, _ benchSet) time.Duration {
		return evacuateWithDrain(t, cs, ns, nil)
	}},
	{"lastcall, one group", func(t *testing.T, cs kubernetes.Interface, ns string, set benchSet) time.Duration {
		return evacuateWithLastcall(t, cs, ns, set, oneGroup)
	}},
	{"kubectl drain per class", func(t *testing.T, cs kubernetes.Interface, ns string, _ benchSet) time.Duration {
		return evacuateWithDrain(t, cs, ns, threeClasses)
	}},
}

// evacuateWithLastcall runs the agent's sequence on a logind shutdown and
// returns the time from PrepareForShutdown(true) to the lock's release
// (every pod of the node gone).
func evacuateWithLastcall(t *testing.T, cs kubernetes.Interface, ns string, set benchSet, groups []PriorityGracePeriod) time.Duration {
	t.Helper()
	tl := watchTimeline(t, cs, ns)
	svc := logindtest.Start(t, logindtest.Options{})
	run := startAgent(t, svc, cs, Config{ShutdownGracePeriodByPodPriority: groups})
	locks, err := svc.WaitLocks(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := svc.PrepareForShutdown(true); err != nil {
		t.Fatal(err)
	}
	select {
	case <-locks[0].Released():
	case <-time.After(2 * time.Minute):
		t.Fatal("lastcall: the delay lock was never released")
	}
	took := time.Since(start)
	if left, err := podsLeft(context.Background(), cs, ns, kwokNode); err != nil || left != 0 {
		t.Errorf("lastcall: %d pods left on the node (%v)", left, err)
	}
	run.stop()
	t.Logf("group durations (s, by lowest priority): %v", run.groupSeconds(t))
	for _, prefix := range []string{"low", "mid", "high", "long"} {
		firstDel, lastDel, lastGone := time.Hour, time.Duration(0), time.Duration(0)
		for _, p := range set.bare {
			if p.app != prefix {
				continue
			}
			if del, _, gone, ok := tl.get(p.name); ok {
				firstDel, lastDel, lastGone = min(firstDel, del.Sub(start)), max(lastDel, del.Sub(start)), max(lastGone, gone.Sub(start))
			}
		}
		t.Logf("%s pods: evictions seen from +%s to +%s, last gone +%s", prefix, firstDel.Round(time.Millisecond), lastDel.Round(time.Millisecond), lastGone.Round(time.Millisecond))
	}
	return took
}

// evacuateWithDrain does what `kubectl drain --ignore-daemonsets
// --delete-emptydir-data --force` does, through the same library: once for
// the whole node (byClass nil), or once per priority class, lowest first, as
// one would run it to keep the agent's order.
func evacuateWithDrain(t *testing.T, cs kubernetes.Interface, ns string, byClass []PriorityGracePeriod) time.Duration {
	t.Helper()
	var errOut bytes.Buffer
	h := &drain.Helper{
		Ctx:                 context.Background(),
		Client:              cs,
		Force:               true,
		GracePeriodSeconds:  -1, // each pod's own terminationGracePeriodSeconds
		IgnoreAllDaemonSets: true,
		DeleteEmptyDirData:  true,
		Timeout:             2 * time.Minute,
		Out:                 io.Discard,
		ErrOut:              &errOut,
		// k8s.io/kubectl v0.34 has no EvictErrorRetryDelay field: it waits
		// 5 s after a 429, as the kubectl CLI sets it in later versions.
	}
	start := time.Now()
	n, err := cs.CoreV1().Nodes().Get(context.Background(), kwokNode, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := drain.RunCordonOrUncordon(h, n, true); err != nil {
		t.Fatal(err)
	}
	passes := [][2]int64{{math.MinInt64, math.MaxInt64}}
	if byClass != nil {
		passes = passes[:0]
		for i, g := range byClass {
			hi := int64(math.MaxInt64)
			if i+1 < len(byClass) {
				hi = int64(byClass[i+1].Priority)
			}
			passes = append(passes, [2]int64{int64(g.Priority), hi})
		}
	}
	for _, p := range passes {
		h.AdditionalFilters = []drain.PodFilter{func(pod corev1.Pod) drain.PodDeleteStatus {
			if prio := int64(podPriority(&pod)); prio >= p[0] && prio < p[1] {
				return drain.MakePodDeleteStatusOkay()
			}
			return drain.MakePodDeleteStatusSkip()
		}}
		if err := drain.RunNodeDrain(h, kwokNode); err != nil {
			t.Fatalf("kubectl drain: %v\n%s\n%s", err, errOut.String(), podStates(cs, ns))
		}
	}
	took := time.Since(start)
	if left, err := podsLeft(context.Background(), cs, ns, kwokNode); err != nil || left != 0 {
		t.Errorf("drain: %d pods left on the node (%v)", left, err)
	}
	n, err = cs.CoreV1().Nodes().Get(context.Background(), kwokNode, metav1.GetOptions{})
	if err == nil {
		err = drain.RunCordonOrUncordon(h, n, false)
	}
	if err != nil {
		t.Fatal(err)
	}
	return took
}

// TestBenchmarkEvacuationVsKubectlDrain evacuates the same 110-pod set,
// in fresh namespaces, with each contender in turn, round after round
// (-bench-rounds), and reports the medians: lastcall (three priority groups,
// the issue's comparison) against kubectl's drain library, and the two
// comparisons that do the same thing on both sides: lastcall with one group
// against drain, and lastcall against drain run once per priority class.
func TestBenchmarkEvacuationVsKubectlDrain(t *testing.T) {
	setup := clustertest.New(t)
	cs := fastClient(t, setup)
	addSpareNode(t, cs)
	keepNodesFresh(t, cs, kwokNode, spareNode)
	cl := classes(t, cs, setup.Namespace, 100, 10000, 1000000)
	for _, tc := range []struct {
		name     string
		withPDBs bool
	}{{"pdb-protected deployments", true}, {"no PDBs", false}} {
		t.Run(tc.name, func(t *testing.T) {
			set := newBenchSet(cl, tc.withPDBs)
			if set.size() != 110 {
				t.Fatalf("pod set has %d pods, want 110", set.size())
			}
			times := map[string][]time.Duration{}
			for round := range *benchRounds {
				for _, c := range contenders {
					cleanNode(t, cs)
					waitNodeEmpty(t, cs)
					env := clustertest.New(t)
					set.create(t, cs, env.Namespace)
					took := c.run(t, cs, env.Namespace, set)
					times[c.name] = append(times[c.name], took)
					t.Logf("round %d, %s: %s", round+1, c.name, took.Round(time.Millisecond))
				}
			}
			med := map[string]time.Duration{}
			for name, ds := range times {
				med[name] = median(ds)
			}
			report := func(a, b string) float64 {
				ratio := med[a].Seconds() / med[b].Seconds()
				t.Logf("110 pods (%s), median of %d: %s %s vs %s %s: ratio %.2f; over the longest grace (%s): %s vs %s [%s | %s]",
					tc.name, *benchRounds, a, med[a].Round(time.Millisecond), b, med[b].Round(time.Millisecond), ratio, set.longest,
					(med[a] - set.longest).Round(time.Millisecond), (med[b] - set.longest).Round(time.Millisecond), list(times[a]), list(times[b]))
				return ratio
			}
			issue := report("lastcall", "kubectl drain")
			report("lastcall, one group", "kubectl drain")
			byClass := report("lastcall", "kubectl drain per class")
			if tc.withPDBs && issue > 1.0 {
				t.Errorf("lastcall took %s, longer than kubectl drain's %s on PDB-protected pods", med["lastcall"], med["kubectl drain"])
			}
			if byClass > 1.0 {
				t.Errorf("lastcall took %s, longer than kubectl drain run once per priority class (%s), which keeps the same order", med["lastcall"], med["kubectl drain per class"])
			}
		})
	}
}

// waitNodeEmpty waits until no pod of any namespace is left on the kwok
// node (those of earlier tests terminate with their grace), so that every
// contender evacuates the same 110 pods and nothing else.
func waitNodeEmpty(t *testing.T, cs kubernetes.Interface) {
	t.Helper()
	clustertest.Eventually(t, 90*time.Second, func(ctx context.Context) (bool, error) {
		n, err := podsLeft(ctx, cs, metav1.NamespaceAll, kwokNode)
		return n == 0, err
	}, "the kwok node to be empty")
}

// podStates says where the pods of ns are and whether they are ready, and
// what their PDBs allow, for a failure message.
func podStates(cs kubernetes.Interface, ns string) string {
	var b strings.Builder
	pods, err := cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	for _, p := range pods.Items {
		ready := false
		for _, c := range p.Status.Conditions {
			ready = ready || (c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue)
		}
		fmt.Fprintf(&b, "pod %s node=%q phase=%s ready=%v deleting=%v\n", p.Name, p.Spec.NodeName, p.Status.Phase, ready, p.DeletionTimestamp != nil)
	}
	pdbs, err := cs.PolicyV1().PodDisruptionBudgets(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	for _, p := range pdbs.Items {
		fmt.Fprintf(&b, "pdb %s healthy=%d/%d allowed=%d\n", p.Name, p.Status.CurrentHealthy, p.Status.DesiredHealthy, p.Status.DisruptionsAllowed)
	}
	// Pods not ready on a running node: the node-lifecycle controller
	// marked them when the node's heartbeat went stale.
	if n, err := cs.CoreV1().Nodes().Get(context.Background(), kwokNode, metav1.GetOptions{}); err == nil {
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				fmt.Fprintf(&b, "node %s Ready=%s (%s) heartbeat %s, transition %s\n", kwokNode, c.Status, c.Reason, c.LastHeartbeatTime.Format(time.RFC3339), c.LastTransitionTime.Format(time.RFC3339))
			}
		}
	}
	if l, err := cs.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(context.Background(), kwokNode, metav1.GetOptions{}); err == nil && l.Spec.RenewTime != nil {
		fmt.Fprintf(&b, "node lease renewed %s (now %s)\n", l.Spec.RenewTime.Format(time.RFC3339), time.Now().UTC().Format(time.RFC3339))
	}
	return b.String()
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func list(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = fmt.Sprintf("%.2f", d.Seconds())
	}
	return strings.Join(parts, " ")
}
