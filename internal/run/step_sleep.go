package run

import (
	"context"
	"fmt"

	"k8s.io/utils/clock"
)

// SleepAction waits for the step's duration.
type SleepAction struct {
	Clock clock.Clock
}

// Do implements Action.
func (a SleepAction) Do(ctx context.Context, t Target) (string, error) {
	d := t.Step.Sleep.Duration.Duration
	timer := a.Clock.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C():
		return fmt.Sprintf("slept %s", d), nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}
