package run

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
	"github.com/lastcall-dev/lastcall/internal/text"
)

// Target is what a step acts on.
type Target struct {
	Pod    *corev1.Pod
	Run    *v1alpha1.TerminationRun
	Policy *v1alpha1.TerminationPolicy
	Step   *v1alpha1.Step
	// URLs says whether a step may call a URL given in the policy
	// (endpoint.url) rather than the pod itself; nil: none may.
	URLs *URLAllowList
}

// Action performs one kind of step against a pod. It returns a short message
// for the run's status (trimmed output, the answer's code) or an error.
type Action interface {
	Do(ctx context.Context, t Target) (string, error)
}

// ActionFunc adapts a function to Action.
type ActionFunc func(ctx context.Context, t Target) (string, error)

// Do calls f.
func (f ActionFunc) Do(ctx context.Context, t Target) (string, error) { return f(ctx, t) }

// Actions maps step kinds to their implementation. The saveState kind is
// added by whoever wires the state service (see cmd/lastcall server); a
// policy using a kind with no action fails at that step with a clear message.
type Actions map[v1alpha1.StepKind]Action

// ErrPermanent marks a step failure that retrying cannot fix (a bad
// template, an unknown container).
var ErrPermanent = errors.New("permanent")

func permanent(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrPermanent, fmt.Sprintf(format, args...))
}

// maxMessage bounds what a step may put in status: run objects hold many
// pods, and etcd objects are limited to 1.5 MiB.
const maxMessage = 512

func trim(s string) string { return text.Truncate(s, maxMessage, "...") }
