package run

import (
	"math"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// Caps of the doubling waits: a step's retries (base backoff << attempt)
// and a run's retries. Past them a policy's large retry count waits the cap
// each time instead of overflowing into hours or a negative duration.
const (
	maxStepBackoff = 5 * time.Minute
	maxRunBackoff  = 30 * time.Minute
)

// doubled is the wait after the attempt-th failure: base, doubled for each
// later attempt, never above limit.
func doubled(base time.Duration, attempt int32, limit time.Duration) time.Duration {
	b := wait.Backoff{Duration: base, Factor: 2, Steps: math.MaxInt32, Cap: limit}
	for i := int32(1); ; i++ {
		d := b.Step()
		if i >= attempt {
			return min(d, limit)
		}
		if b.Steps == 0 { // capped: every later wait is the cap
			return limit
		}
	}
}
