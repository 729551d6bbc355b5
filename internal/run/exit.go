package run

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
)

const defaultRetryBackoff = 5 * time.Second

// exitHandlers runs the handlers of the attempt that just ended, each once
// (recorded in status, so a restart does not notify twice), then either
// schedules a retry (returns true) or marks the run complete.
func (c *Controller) exitHandlers(ctx context.Context, w *statusWriter, policy *v1alpha1.TerminationPolicy) (bool, error) {
	var run *v1alpha1.TerminationRun
	w.read(func(r *v1alpha1.TerminationRun) { run = r.DeepCopy() })
	phase, attempt := run.Status.Phase, run.Status.Attempt
	var retry *v1alpha1.RetryAction
	for _, h := range policy.Spec.ExitHandlers {
		if !applies(h.When, phase) {
			continue
		}
		if h.Retry != nil {
			retry = h.Retry
			continue
		}
		if handled(run, h.Name, attempt) {
			continue
		}
		res := v1alpha1.StepSucceeded
		msg, err := c.notify(ctx, h.Notify, run, policy)
		if err != nil {
			res, msg = v1alpha1.StepFailed, err.Error()
			c.recorder.Eventf(run, corev1.EventTypeWarning, "NotifyFailed", "exit handler %s: %v", h.Name, err)
		}
		if err := w.sync(ctx, func(st *v1alpha1.TerminationRunStatus) {
			now := c.now()
			st.ExitHandlers = append(st.ExitHandlers, v1alpha1.ExitHandlerStatus{Name: h.Name, Attempt: attempt, Phase: res, Message: trim(msg), Time: &now})
		}); err != nil {
			return false, err
		}
	}
	if retry != nil && attempt <= retry.Limit {
		base := defaultRetryBackoff
		if retry.Backoff != nil {
			base = retry.Backoff.Duration
		}
		backoff := doubled(base, attempt, maxRunBackoff)
		c.recorder.Eventf(run, corev1.EventTypeNormal, "Retry", "attempt %d failed; attempt %d of at most %d starts in %s (scope %s)", attempt, attempt+1, retry.Limit+1, backoff, retry.Scope)
		err := w.sync(ctx, func(st *v1alpha1.TerminationRunStatus) {
			next := metav1.NewTime(c.clock.Now().Add(backoff))
			st.Attempt++
			st.NextAttemptTime, st.CompletionTime = &next, nil
			st.Phase, st.Reason, st.Message = v1alpha1.RunRunning, "RetryScheduled", fmt.Sprintf("attempt %d at %s", st.Attempt, next.Format(time.RFC3339))
			resetPods(st, retry.Scope)
		})
		return err == nil, err
	}
	return false, w.sync(ctx, func(st *v1alpha1.TerminationRunStatus) {
		setComplete(st, c.now(), st.Reason, st.Message)
	})
}

// resetPods makes pods eligible again for a new attempt.
func resetPods(st *v1alpha1.TerminationRunStatus, scope v1alpha1.RetryScope) {
	for i := range st.Pods {
		p := &st.Pods[i]
		if p.Phase == v1alpha1.PodGone || (scope != v1alpha1.RetryRun && p.Phase != v1alpha1.PodFailed) {
			continue
		}
		p.Phase, p.Message = v1alpha1.PodPending, ""
		for j := range p.Steps {
			if scope == v1alpha1.RetryRun || p.Steps[j].Phase != v1alpha1.StepSucceeded {
				p.Steps[j] = v1alpha1.StepStatus{Name: p.Steps[j].Name, Phase: v1alpha1.StepPending}
			}
		}
	}
	countPods(st)
}

func applies(when v1alpha1.ExitWhen, phase v1alpha1.RunPhase) bool {
	switch when {
	case v1alpha1.ExitSucceeded:
		return phase == v1alpha1.RunSucceeded
	case v1alpha1.ExitFailed:
		return phase == v1alpha1.RunFailed
	default:
		return phase.Finished()
	}
}

func handled(run *v1alpha1.TerminationRun, name string, attempt int32) bool {
	for _, h := range run.Status.ExitHandlers {
		if h.Name == name && h.Attempt == attempt {
			return true
		}
	}
	return false
}

// notifyData is what a notify body template sees.
type notifyData struct {
	Run     *v1alpha1.TerminationRun
	Policy  *v1alpha1.TerminationPolicy
	Phase   v1alpha1.RunPhase
	Message string
	Attempt int32
}

func (c *Controller) notify(ctx context.Context, n *v1alpha1.NotifyAction, run *v1alpha1.TerminationRun, policy *v1alpha1.TerminationPolicy) (string, error) {
	data := notifyData{Run: run, Policy: policy, Phase: run.Status.Phase, Message: run.Status.Message, Attempt: run.Status.Attempt}
	body, err := render("notify body", n.Body, data)
	if err != nil {
		return "", err
	}
	if n.Body == "" {
		// json.Marshal, not %q: Go quoting is not JSON for control
		// characters and non-ASCII runes.
		b, err := json.Marshal(struct {
			Run       string `json:"run"`
			Namespace string `json:"namespace"`
			Phase     string `json:"phase"`
			Message   string `json:"message"`
			Attempt   int32  `json:"attempt"`
		}{run.Name, run.Namespace, string(run.Status.Phase), run.Status.Message, run.Status.Attempt})
		if err != nil {
			return "", err
		}
		body = string(b)
	}
	if !c.urls.Allows(n.URL) {
		return "", fmt.Errorf("notify URL %s is not allowed: the operator lists the URL prefixes exit handlers may call (lastcall server --step-url-prefix)", n.URL)
	}
	method := n.Method
	if method == "" {
		method = http.MethodPost
	}
	nctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(nctx, method, n.URL, strings.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range n.Headers {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("notify %s: %w", n.URL, err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		return "", fmt.Errorf("notify %s: status %d", n.URL, resp.StatusCode)
	}
	return fmt.Sprintf("%s %s: %d", method, n.URL, resp.StatusCode), nil
}

func setComplete(st *v1alpha1.TerminationRunStatus, now metav1.Time, reason, msg string) {
	if reason == "" {
		reason = string(st.Phase)
	}
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionComplete, Status: metav1.ConditionTrue, Reason: reason, Message: msg,
		LastTransitionTime: now, ObservedGeneration: st.ObservedGeneration,
	})
}

func complete(run *v1alpha1.TerminationRun) bool {
	return meta.IsStatusConditionTrue(run.Status.Conditions, v1alpha1.ConditionComplete)
}
