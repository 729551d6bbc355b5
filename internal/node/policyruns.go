package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
	"github.com/lastcall-dev/lastcall/internal/run"
)

// LabelShutdown is set on the runs a node shutdown starts: a hash of the
// shutdown (node, boot, start) and the priority group, which the agent
// watches them by.
const LabelShutdown = "lastcall.dev/node-shutdown"

// PolicyRuns is the RunStarter on TerminationRuns. For a priority group it
// finds the TerminationPolicies whose selector or targetRef covers pods of
// the group, creates one TerminationRun per policy for those pods (trigger
// NodeShutdown, a name derived from the shutdown, group and policy), and
// follows them with one watch. The run controller of `lastcall server`
// executes them.
type PolicyRuns struct {
	c       client.WithWatch
	rec     record.EventRecorder
	metrics *Metrics
	clock   clock.Clock
	log     *slog.Logger
}

// PolicyRunsOptions holds PolicyRuns' optional dependencies; the zero value
// means the defaults, as for Options.
type PolicyRunsOptions struct {
	Recorder record.EventRecorder
	Metrics  *Metrics
	Clock    clock.Clock
	Logger   *slog.Logger
}

// NewPolicyRuns returns a PolicyRuns that reads policies and writes runs
// through c (see NewRunsClient).
func NewPolicyRuns(c client.WithWatch, opts PolicyRunsOptions) *PolicyRuns {
	if opts.Recorder == nil {
		opts.Recorder = &record.FakeRecorder{}
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &PolicyRuns{c: c, rec: opts.Recorder, metrics: opts.Metrics, clock: opts.Clock, log: opts.Logger}
}

// NewRunsClient returns the client PolicyRuns needs: direct reads (no
// cache: the agent reads policies once per group) and watches.
func NewRunsClient(cfg *rest.Config) (client.WithWatch, error) {
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: run.Scheme()})
	if err != nil {
		return nil, fmt.Errorf("client for termination runs: %w", err)
	}
	return c, nil
}

// Check reports whether policies can be read: the CRDs are installed and
// RBAC allows it. The agent calls it at start, which also warms the client's
// discovery so that the first shutdown does not pay for it.
func (p *PolicyRuns) Check(ctx context.Context) error {
	var list v1alpha1.TerminationPolicyList
	if err := p.c.List(ctx, &list, anyVersion(), client.Limit(1)); err != nil {
		return fmt.Errorf("list TerminationPolicies: %w", err)
	}
	return nil
}

// anyVersion lets the API server answer from its watch cache at once: a
// consistent read would wait for the cache to catch up with etcd (up to
// ~100 ms), on the shutdown's critical path.
func anyVersion() *client.ListOptions {
	return &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: "0"}}
}

// AddPolicies fills plan.Policies: for each pod of the plan, the
// TerminationPolicies whose runs its eviction would wait for. Nothing is
// created.
func (p *PolicyRuns) AddPolicies(ctx context.Context, plan *Plan) error {
	var pods []corev1.Pod
	for _, g := range plan.Groups {
		for _, pp := range g.Pods {
			pods = append(pods, *pp.Pod)
		}
	}
	planned, err := p.match(ctx, RunRequest{Shutdown: ShutdownID{Node: plan.Node}, Pods: pods})
	if err != nil {
		return err
	}
	plan.Policies = map[types.NamespacedName][]string{}
	for _, pr := range planned {
		for _, pod := range pr.pods {
			k := types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name}
			plan.Policies[k] = append(plan.Policies[k], pr.req.Policy.Name)
		}
	}
	return nil
}

// plannedRun is a run to create and the pods it covers.
type plannedRun struct {
	req  run.Request
	run  *v1alpha1.TerminationRun // once started
	pods []*corev1.Pod
}

// StartRuns creates the group's runs and returns a waiter that follows them
// until ctx ends or req.Deadline passes. A policy that cannot be resolved
// (its targetRef's workload is gone) is skipped and logged; runs that
// already exist (an agent restarted during the same shutdown) are waited
// for, not created again.
func (p *PolicyRuns) StartRuns(ctx context.Context, req RunRequest) (RunWaiter, error) {
	planned, err := p.match(ctx, req)
	if err != nil || len(planned) == 0 {
		return nil, err
	}
	created := p.create(ctx, req, planned)
	if len(created) == 0 {
		return nil, errors.New("no termination run could be created")
	}
	// The waiter lists before it watches: a run that ended before it
	// looks is still seen.
	w := newRunWaiter(p, req)
	for _, pr := range created {
		w.add(pr)
	}
	go w.follow(ctx)
	return w, nil
}

// match lists the policies (from the API server's cache) and plans a run
// for each one that covers pods of the group.
func (p *PolicyRuns) match(ctx context.Context, req RunRequest) ([]plannedRun, error) {
	var list v1alpha1.TerminationPolicyList
	if err := p.c.List(ctx, &list, anyVersion()); err != nil {
		if meta.IsNoMatchError(err) {
			return nil, nil // no CRD, no policies; Check said so at start
		}
		return nil, fmt.Errorf("list TerminationPolicies: %w", err)
	}
	byNS := map[string][]*corev1.Pod{}
	for i := range req.Pods {
		pod := &req.Pods[i]
		byNS[pod.Namespace] = append(byNS[pod.Namespace], pod)
	}
	sort.Slice(list.Items, func(i, j int) bool {
		a, b := list.Items[i], list.Items[j]
		return a.Namespace < b.Namespace || a.Namespace == b.Namespace && a.Name < b.Name
	})
	var out []plannedRun
	for i := range list.Items {
		pol := &list.Items[i]
		pods := byNS[pol.Namespace]
		if len(pods) == 0 {
			continue
		}
		sel, err := run.PolicySelector(ctx, p.c, pol)
		if err != nil {
			p.log.Warn("node shutdown: policy skipped", "namespace", pol.Namespace, "policy", pol.Name, "err", err)
			continue
		}
		var covered []*corev1.Pod
		for _, pod := range pods {
			if sel.Matches(labels.Set(pod.Labels)) {
				covered = append(covered, pod)
			}
		}
		if len(covered) == 0 {
			continue
		}
		out = append(out, plannedRun{req: p.runRequest(pol, req, covered), pods: covered})
	}
	return out, nil
}

// runRequest asks for the run of pol for pods, named after the shutdown,
// the group and the policy.
func (p *PolicyRuns) runRequest(pol *v1alpha1.TerminationPolicy, req RunRequest, pods []*corev1.Pod) run.Request {
	sid := req.Shutdown
	group := groupLabel(req.Group)
	list := make([]corev1.Pod, len(pods))
	for i, pod := range pods {
		list[i] = *pod
	}
	return run.Request{Policy: pol, Pods: list, NamePrefix: pol.Name + "-shutdown", Key: []string{sid.Key(), group, pol.Name},
		Labels: map[string]string{LabelShutdown: groupKey(req)},
		Trigger: v1alpha1.Trigger{
			Source: v1alpha1.TriggerNodeShutdown,
			Node:   sid.Node,
			Reason: fmt.Sprintf("node %s shuts down: priority group %s; its pods are evicted at %s at the latest",
				sid.Node, group, req.Deadline.UTC().Format("15:04:05.000Z")),
		}}
}

// groupKey is the label value of the runs of one group of one shutdown.
func groupKey(req RunRequest) string {
	sum := sha256.Sum256([]byte(req.Shutdown.Key() + "\x00" + groupLabel(req.Group)))
	return hex.EncodeToString(sum[:])[:16]
}

// create creates the planned runs in parallel and returns those that exist
// now (created, or already there); failures are reported and dropped.
func (p *PolicyRuns) create(ctx context.Context, req RunRequest, planned []plannedRun) []plannedRun {
	var (
		mu   sync.Mutex
		out  []plannedRun
		errs []string
		wg   sync.WaitGroup
	)
	for _, pr := range planned {
		wg.Go(func() {
			r, created, err := (&run.Starter{Client: p.c, Reader: p.c}).Start(ctx, pr.req)
			if err == nil {
				pr.run = r
				if !created {
					pr = p.existing(pr)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				p.metrics.runs.WithLabelValues(runError).Inc()
				p.log.Error("node shutdown: cannot create termination run", "namespace", pr.req.Policy.Namespace, "run", run.RunName(pr.req), "policy", pr.req.Policy.Name, "err", err)
				errs = append(errs, fmt.Sprintf("%s/%s: %v", pr.req.Policy.Namespace, pr.req.Policy.Name, err))
				return
			}
			out = append(out, pr)
		})
	}
	wg.Wait()
	ref := nodeRef(req.Shutdown.Node)
	if len(errs) > 0 {
		p.rec.Eventf(ref, corev1.EventTypeWarning, ReasonRunsFailed,
			"Priority group %d: %d termination runs could not be created (%s): their pods are evicted without them",
			req.Group.Priority, len(errs), strings.Join(errs, "; "))
	}
	if len(out) > 0 {
		n := 0
		names := make([]string, len(out))
		for i, pr := range out {
			n += len(pr.pods)
			names[i] = pr.run.Namespace + "/" + pr.run.Name
		}
		sort.Strings(names)
		wait := req.Deadline.Sub(p.clock.Now()).Round(100 * time.Millisecond)
		p.log.Info("node shutdown: termination runs started", "group", req.Group.Priority, "runs", len(out), "pods", n, "wait", wait)
		p.rec.Eventf(ref, corev1.EventTypeNormal, ReasonRunsStarted,
			"Priority group %d: %d termination runs for %d pods (%s); their evictions wait for them up to %s",
			req.Group.Priority, len(out), n, strings.Join(names, ", "), wait)
	}
	return out
}

// existing adopts a run that an agent restarted during the same shutdown
// created: its pods are fixed, so only those it covers wait for it.
func (p *PolicyRuns) existing(pr plannedRun) plannedRun {
	cur := pr.run
	covers := map[string]types.UID{}
	for _, ref := range cur.Spec.Pods {
		covers[ref.Name] = ref.UID
	}
	var pods []*corev1.Pod
	for _, pod := range pr.pods {
		if uid, ok := covers[pod.Name]; ok && (uid == "" || uid == pod.UID) {
			pods = append(pods, pod)
		}
	}
	p.log.Info("node shutdown: termination run exists already (agent restarted?); waiting for it",
		"namespace", cur.Namespace, "run", cur.Name, "pods", len(pods), "planned", len(pr.pods))
	pr.pods = pods
	return pr
}

// runRef is how Events refer to a run.
func runRef(key types.NamespacedName, uid types.UID) *corev1.ObjectReference {
	return &corev1.ObjectReference{
		APIVersion: v1alpha1.GroupVersion.String(), Kind: "TerminationRun",
		Namespace: key.Namespace, Name: key.Name, UID: uid,
	}
}
