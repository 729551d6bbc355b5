package prestop

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"k8s.io/utils/clock"
)

// Backoff between attempts: exponential from backoffBase up to backoffMax,
// each wait drawn at random from its upper half so that many pods of one
// Deployment, all terminated at once, do not retry in step. Hand-written
// because apimachinery's wait package would pull klog and friends into the
// static helper.
const (
	backoffBase = 100 * time.Millisecond
	backoffMax  = 2 * time.Second
)

// permanentError marks a failure that retrying cannot fix (a 4xx answer, a
// bad configuration).
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return &permanentError{err} }

// retry calls attempt until it succeeds, returns a permanent error or ctx
// ends. It returns the number of attempts and the last attempt's error, or
// ctx's error when none was made.
func retry(ctx context.Context, clk clock.Clock, attempt func(ctx context.Context) error) (int, error) {
	wait := backoffBase
	for n := 1; ; n++ {
		err := attempt(ctx)
		if err == nil {
			return n, nil
		}
		var perm *permanentError
		if errors.As(err, &perm) {
			return n, perm.err
		}
		if ctx.Err() != nil {
			return n, giveUp(ctx, err)
		}
		d := wait/2 + rand.N(wait/2+1)
		select {
		case <-ctx.Done():
			return n, giveUp(ctx, err)
		case <-clk.After(d):
		}
		wait = min(2*wait, backoffMax)
	}
}

// giveUp says why retrying stopped and what the last attempt met.
func giveUp(ctx context.Context, last error) error {
	if errors.Is(last, ctx.Err()) {
		return last
	}
	return fmt.Errorf("gave up: %w; last attempt: %w", ctx.Err(), last)
}
