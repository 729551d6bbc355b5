package run

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
)

// Step defaults when neither the step nor the policy sets them.
const (
	defaultStepTimeout = 30 * time.Second
	defaultRetries     = 2
	defaultBackoff     = time.Second
	defaultDeadline    = 10 * time.Minute
	defaultConcurrency = 10
)

// errPodGone means the pod was deleted or replaced: nothing left to do.
var errPodGone = errors.New("pod is gone")

// execution drives one attempt of one run with the built-in runner.
type execution struct {
	c      *Controller
	w      *statusWriter
	policy *v1alpha1.TerminationPolicy
}

// runPods works on every pod not yet done, Concurrency at a time.
func (e *execution) runPods(ctx context.Context) {
	limit := int(e.policy.Spec.Concurrency)
	if limit <= 0 {
		limit = defaultConcurrency
	}
	var todo []int
	e.w.read(func(run *v1alpha1.TerminationRun) {
		for i, p := range run.Status.Pods {
			if !p.Phase.Done() {
				todo = append(todo, i)
			}
		}
	})
	var g errgroup.Group
	g.SetLimit(limit)
	for _, i := range todo {
		if ctx.Err() != nil {
			break
		}
		// Go waits for a free slot; a slot frees as soon as a pod's steps
		// end, and they end with ctx.
		g.Go(func() error {
			e.runPod(ctx, i)
			return nil
		})
	}
	_ = g.Wait() // runPod records its failures in the status
}

// runPod runs the policy's steps in order for pod i, skipping those already
// recorded as Succeeded (a resumed run).
func (e *execution) runPod(ctx context.Context, i int) {
	var name string
	var uid types.UID
	var runName string
	e.w.read(func(run *v1alpha1.TerminationRun) {
		name, uid, runName = run.Status.Pods[i].Name, run.Status.Pods[i].UID, run.Name
	})
	logger := log.FromContext(ctx).WithValues("pod", name)
	if err := e.authorizePod(ctx, i, name, uid); err != nil {
		e.finishPod(ctx, i, err, "")
		return
	}

	for j := range e.policy.Spec.Steps {
		step := &e.policy.Spec.Steps[j]
		var done bool
		e.w.read(func(run *v1alpha1.TerminationRun) {
			done = stepStatus(&run.Status.Pods[i], step.Name).Phase == v1alpha1.StepSucceeded
		})
		if done {
			continue
		}
		pod, err := e.livePod(ctx, name, uid)
		if err != nil {
			e.finishPod(ctx, i, err, step.Name)
			return
		}
		// The Running mark is queued, not waited for: what keeps a finished
		// step from running twice is its outcome, written below before the
		// pod's next step starts. Writes stay ordered, so it lands first.
		now := metav1.NewTime(e.c.clock.Now())
		e.w.update(func(st *v1alpha1.TerminationRunStatus) {
			p := &st.Pods[i]
			p.Phase = v1alpha1.PodRunning
			s := stepStatus(p, step.Name)
			// A step found Running was cut short by a restart: it keeps its
			// start, so that a sleep resumes with the time it already slept.
			if s.Phase != v1alpha1.StepRunning || s.StartTime == nil {
				s.StartTime = &now
			}
			s.Phase, s.CompletionTime, s.Message = v1alpha1.StepRunning, nil, ""
		})
		start := e.c.clock.Now()
		msg, attempts, err := e.runStep(ctx, Target{Pod: pod, Run: e.snapshot(), Policy: e.policy, Step: step, URLs: e.c.urls}, name, uid)
		e.c.metrics.observeStep(kindOf(step), err, e.c.clock.Since(start))
		end := metav1.NewTime(e.c.clock.Now())
		if err != nil {
			logger.Info("step failed", "step", step.Name, "attempts", attempts, "error", err.Error())
			_ = e.w.sync(ctx, func(st *v1alpha1.TerminationRunStatus) {
				s := stepStatus(&st.Pods[i], step.Name)
				s.Phase, s.Attempts, s.CompletionTime, s.Message = v1alpha1.StepFailed, attempts, &end, trim(err.Error())
			})
			e.finishPod(ctx, i, err, step.Name)
			return
		}
		last := j == len(e.policy.Spec.Steps)-1
		if err := e.w.sync(ctx, func(st *v1alpha1.TerminationRunStatus) {
			s := stepStatus(&st.Pods[i], step.Name)
			s.Phase, s.Attempts, s.CompletionTime, s.Message = v1alpha1.StepSucceeded, attempts, &end, trim(msg)
			if last { // one write for the last step and the pod's outcome
				st.Pods[i].Phase, st.Pods[i].Message = v1alpha1.PodSucceeded, ""
				countPods(st)
			}
		}); err != nil {
			return
		}
		if last {
			break
		}
	}
	if !e.podDone(i) {
		e.finishPod(ctx, i, nil, "")
	}
	if pod, err := e.livePod(ctx, name, uid); err == nil {
		e.c.recorder.Eventf(pod, corev1.EventTypeNormal, "TerminationStepsDone", "run %s: all %d steps done", runName, len(e.policy.Spec.Steps))
	}
}

func (e *execution) podDone(i int) bool {
	var done bool
	e.w.read(func(run *v1alpha1.TerminationRun) { done = run.Status.Pods[i].Phase.Done() })
	return done
}

// finishPod records a pod's outcome: Succeeded, Gone, or Failed at a step.
func (e *execution) finishPod(ctx context.Context, i int, err error, step string) {
	phase, msg := v1alpha1.PodSucceeded, ""
	switch {
	case err == nil:
	case errors.Is(err, errPodGone):
		phase, msg = v1alpha1.PodGone, "pod was deleted or replaced during the run"
	case ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded):
		phase, msg = v1alpha1.PodFailed, fmt.Sprintf("step %s: run deadline exceeded", step)
	case ctx.Err() != nil:
		return // shutting down: leave the pod as it is for the next leader
	case step == "": // refused before its first step
		phase, msg = v1alpha1.PodFailed, trim(err.Error())
	default:
		phase, msg = v1alpha1.PodFailed, trim(fmt.Sprintf("step %s: %v", step, err))
	}
	// The outcome must be written even when the attempt's deadline has passed.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	_ = e.w.sync(wctx, func(st *v1alpha1.TerminationRunStatus) {
		st.Pods[i].Phase, st.Pods[i].Message = phase, msg
		countPods(st)
	})
}

// doStep runs an action and turns a panic in it into a permanent failure
// of the step: a bug in one step kind fails that pod's step with a reason,
// and the process (the gate, the state API, other runs) lives on.
func doStep(ctx context.Context, action Action, t Target) (msg string, err error) {
	defer func() {
		if r := recover(); r != nil {
			log.FromContext(ctx).Error(fmt.Errorf("%v", r), "step panicked", "step", t.Step.Name, "stack", string(debug.Stack()))
			msg, err = "", permanent("step %s panicked: %v (a lastcall bug: please report it with the server log)", t.Step.Name, r)
		}
	}()
	return action.Do(ctx, t)
}

// runStep runs one step with its timeout, retries and backoff. It stops
// retrying when the pod is gone.
func (e *execution) runStep(ctx context.Context, t Target, name string, uid types.UID) (string, int32, error) {
	action, ok := e.c.actions[t.Step.Kind()]
	if !ok {
		return "", 0, permanent("no runner for step kind %q in this server (saveState needs --state-url)", t.Step.Kind())
	}
	timeout, retries, base := e.stepPolicy(t.Step)
	var attempts int32
	for {
		attempts++
		actx, cancel := context.WithTimeout(ctx, timeout)
		msg, err := doStep(actx, action, t)
		cancel()
		if err == nil {
			return msg, attempts, nil
		}
		// RBAC refusals do not heal by retrying; they need an operator.
		permanent := errors.Is(err, ErrPermanent) || apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err)
		if permanent || int(attempts) > retries || ctx.Err() != nil {
			if _, gone := e.livePod(ctx, name, uid); errors.Is(gone, errPodGone) {
				return "", attempts, errPodGone
			}
			return "", attempts, err
		}
		select {
		case <-e.c.clock.After(doubled(base, attempts, maxStepBackoff)):
		case <-ctx.Done():
			return "", attempts, ctx.Err()
		}
		pod, err := e.livePod(ctx, name, uid)
		if err != nil {
			return "", attempts, err
		}
		t.Pod = pod
	}
}

func (e *execution) stepPolicy(s *v1alpha1.Step) (time.Duration, int, time.Duration) {
	timeout, retries, backoff := defaultStepTimeout, defaultRetries, defaultBackoff
	for _, p := range []v1alpha1.StepPolicy{e.policy.Spec.StepDefaults, s.StepPolicy} {
		if p.Timeout != nil {
			timeout = p.Timeout.Duration
		}
		if p.Retries != nil {
			retries = int(*p.Retries)
		}
		if p.Backoff != nil {
			backoff = p.Backoff.Duration
		}
	}
	return timeout, retries, backoff
}

// livePod reads the pod from the cache; errPodGone when it no longer exists
// or another pod took its name.
func (e *execution) livePod(ctx context.Context, name string, uid types.UID) (*corev1.Pod, error) {
	var pod corev1.Pod
	err := e.c.client.Get(ctx, client.ObjectKey{Namespace: e.policy.Namespace, Name: name}, &pod)
	if apierrors.IsNotFound(err) || (err == nil && uid != "" && pod.UID != uid) {
		return nil, errPodGone
	}
	if err != nil {
		return nil, fmt.Errorf("get pod %s: %w", name, err)
	}
	return &pod, nil
}

func (e *execution) snapshot() *v1alpha1.TerminationRun {
	var out *v1alpha1.TerminationRun
	e.w.read(func(run *v1alpha1.TerminationRun) { out = run.DeepCopy() })
	return out
}

// stepStatus finds (or adds) a step's status by name; matching by name keeps
// a resumed run right even if the policy's step list was edited.
func stepStatus(p *v1alpha1.PodStatus, name string) *v1alpha1.StepStatus {
	for i := range p.Steps {
		if p.Steps[i].Name == name {
			return &p.Steps[i]
		}
	}
	p.Steps = append(p.Steps, v1alpha1.StepStatus{Name: name, Phase: v1alpha1.StepPending})
	return &p.Steps[len(p.Steps)-1]
}

// countPods refreshes the summary counters from the per-pod phases.
func countPods(st *v1alpha1.TerminationRunStatus) {
	st.PodsTotal, st.PodsDone, st.PodsFailed = int32(len(st.Pods)), 0, 0
	for _, p := range st.Pods {
		switch p.Phase {
		case v1alpha1.PodSucceeded, v1alpha1.PodGone:
			st.PodsDone++
		case v1alpha1.PodFailed:
			st.PodsFailed++
		}
	}
}

// authorizePod refuses a pod the policy does not cover, before any of its
// steps: a TerminationRun may name any pods, and whoever may create runs
// must not get the policy's exec and http steps run against pods its
// author never selected. Checked once, before the first step, since a
// step may change the labels it was selected by (a label step).
func (e *execution) authorizePod(ctx context.Context, i int, name string, uid types.UID) error {
	started := false
	e.w.read(func(run *v1alpha1.TerminationRun) { started = len(run.Status.Pods[i].Steps) > 0 })
	if started {
		return nil
	}
	pod, err := e.livePod(ctx, name, uid)
	if err != nil {
		return err
	}
	ok, err := Covers(ctx, e.c.client, e.policy, Covered{Kind: "Pod", Name: pod.Name, Labels: pod.Labels})
	if err != nil {
		return err
	}
	if !ok {
		return permanent("pod %s is not selected by policy %s: a run acts only on the pods its policy covers", name, e.policy.Name)
	}
	return nil
}
