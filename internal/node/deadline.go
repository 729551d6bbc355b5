package node

import (
	"context"
	"errors"
	"time"

	"k8s.io/utils/clock"
)

var (
	// errBudgetSpent ends a group or a shutdown whose budget is used up.
	errBudgetSpent = errors.New("budget spent")
	// errCancelled ends a shutdown that logind cancelled.
	errCancelled = errors.New("shutdown cancelled")
)

// withDeadline is context.WithDeadline on an injected clock: the context
// ends with cause errBudgetSpent when clk reaches deadline.
func withDeadline(parent context.Context, clk clock.Clock, deadline time.Time) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	left := deadline.Sub(clk.Now())
	if left <= 0 {
		cancel(errBudgetSpent)
		return ctx, func() { cancel(context.Canceled) }
	}
	t := clk.NewTimer(left)
	go func() {
		defer t.Stop()
		select {
		case <-t.C():
			cancel(errBudgetSpent)
		case <-ctx.Done():
		}
	}()
	return ctx, func() { cancel(context.Canceled) }
}
