package node

import (
	"context"
	"math"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
)

// evictBackoff paces retries of a refused eviction: a PDB allows the next
// one as soon as a replacement is ready elsewhere, often within a second, so
// retries stay frequent (about 2 per second per pod at most) rather than the
// 5 s of kubectl drain.
var evictBackoff = wait.Backoff{Duration: 100 * time.Millisecond, Factor: 1.5, Jitter: 0.2, Steps: math.MaxInt32, Cap: 500 * time.Millisecond}

// disruptions tells when a PodDisruptionBudget may allow the next eviction
// (pdbWatch).
type disruptions interface {
	// Changed is closed at the next change of a PDB in namespace ns.
	Changed(ns string) <-chan struct{}
	// Allows reports whether every PDB selecting pod allows a disruption.
	Allows(pod *corev1.Pod) bool
}

// evictor takes one pod off the node within its group's deadline.
type evictor struct {
	client  kubernetes.Interface
	clock   clock.Clock
	mode    PDBMode
	margin  time.Duration
	sem     chan struct{} // bounds concurrent API requests
	backoff wait.Backoff
	pdbs    disruptions // nil: retries on the backoff only
}

// podResult is what became of one pod.
type podResult struct {
	pod      *corev1.Pod
	outcome  Outcome
	grace    time.Duration // the grace it got; zero when left
	started  time.Time     // when its deletion began
	attempts int           // eviction requests
	blocked  int           // of which refused with 429 (a PDB)
	err      error         // the last refusal or error
}

// evict asks the Eviction API to evict pod with grace min(its own, what is
// left until deadline), at least 1 s, and with its UID as precondition. A
// refusal (429 from a PDB, or any error) is retried with backoff until
// margin before deadline; then the pod is deleted with the grace left
// (PDBOverride) or left running (PDBRespect).
func (e *evictor) evict(ctx context.Context, pod *corev1.Pod, deadline time.Time) podResult {
	r := podResult{pod: pod}
	b := e.backoff
	overrideAt := deadline.Add(-e.margin)
	for {
		now := e.clock.Now()
		if r.attempts > 0 && !now.Before(overrideAt) {
			return e.fallback(ctx, r, deadline)
		}
		grace := graceFor(pod, deadline.Sub(now))
		var kick <-chan struct{}
		if e.pdbs != nil {
			kick = e.pdbs.Changed(pod.Namespace) // before the request: no change is missed
		}
		err := e.call(ctx, func(ctx context.Context) error {
			return e.client.PolicyV1().Evictions(pod.Namespace).Evict(ctx, &policyv1.Eviction{
				ObjectMeta:    metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace},
				DeleteOptions: deleteOptions(pod, grace),
			})
		})
		r.attempts++
		switch {
		case err == nil:
			r.outcome, r.grace, r.started, r.err = OutcomeGraceful, grace, now, nil
			return r
		case replaced(err):
			r.outcome, r.err = OutcomeGraceful, nil // gone already
			return r
		case ctx.Err() != nil:
			r.outcome, r.err = OutcomeLeft, context.Cause(ctx)
			return r
		case apierrors.IsTooManyRequests(err):
			r.blocked++
		default:
			kick = nil // not a PDB: wait for the backoff
		}
		r.err = err
		delay := min(b.Step(), overrideAt.Sub(e.clock.Now()))
		if delay <= 0 {
			continue // at the margin: the next turn falls back
		}
		if !e.waitRetry(ctx, pod, delay, kick) {
			r.outcome = OutcomeLeft
			return r
		}
	}
}

// waitRetry waits delay, or less when a PDB change lets pod go; false when
// ctx ended.
func (e *evictor) waitRetry(ctx context.Context, pod *corev1.Pod, delay time.Duration, kick <-chan struct{}) bool {
	t := e.clock.NewTimer(delay)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C():
			return true
		case <-kick:
			if e.pdbs.Allows(pod) {
				return true
			}
			kick = e.pdbs.Changed(pod.Namespace)
		}
	}
}

// fallback handles a pod whose eviction was still refused at the margin.
func (e *evictor) fallback(ctx context.Context, r podResult, deadline time.Time) podResult {
	if e.mode == PDBRespect {
		r.outcome = OutcomeLeft
		return r
	}
	now := e.clock.Now()
	grace := graceFor(r.pod, deadline.Sub(now))
	err := e.call(ctx, func(ctx context.Context) error {
		return e.client.CoreV1().Pods(r.pod.Namespace).Delete(ctx, r.pod.Name, *deleteOptions(r.pod, grace))
	})
	switch {
	case err == nil:
		r.outcome, r.grace, r.started = OutcomeOverridden, grace, now
	case replaced(err):
		r.outcome = OutcomeGraceful // went away by itself meanwhile
	default:
		r.outcome, r.err = OutcomeLeft, err
	}
	return r
}

// call runs f once a request slot is free.
func (e *evictor) call(ctx context.Context, f func(context.Context) error) error {
	select {
	case e.sem <- struct{}{}:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	defer func() { <-e.sem }()
	return f(ctx)
}

func deleteOptions(pod *corev1.Pod, grace time.Duration) *metav1.DeleteOptions {
	o := &metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(grace / time.Second))}
	if pod.UID != "" {
		o.Preconditions = &metav1.Preconditions{UID: ptr.To(pod.UID)}
	}
	return o
}

// replaced is true when the pod is gone: not found, or its UID precondition
// failed (a new pod of the same name exists).
func replaced(err error) bool {
	return apierrors.IsNotFound(err) || apierrors.IsConflict(err)
}
