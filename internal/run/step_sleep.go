package run

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
)

// SleepAction waits for the step's duration.
type SleepAction struct {
	Clock clock.Clock
}

// Do implements Action. A sleep resumed after a restart waits only for
// what is left since the step first started.
func (a SleepAction) Do(ctx context.Context, t Target) (string, error) {
	d := t.Step.Sleep.Duration.Duration
	left := d
	if started := stepStart(t); started != nil {
		left = max(0, d-a.Clock.Since(started.Time))
	}
	timer := a.Clock.NewTimer(left)
	defer timer.Stop()
	select {
	case <-timer.C():
		return fmt.Sprintf("slept %s", d), nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// stepStart is when the target's step first started on its pod, from the
// run's status; nil when not recorded.
func stepStart(t Target) *metav1.Time {
	if t.Run == nil || t.Pod == nil {
		return nil
	}
	for i := range t.Run.Status.Pods {
		p := &t.Run.Status.Pods[i]
		if p.Name != t.Pod.Name {
			continue
		}
		for j := range p.Steps {
			if p.Steps[j].Name == t.Step.Name {
				return p.Steps[j].StartTime
			}
		}
	}
	return nil
}
