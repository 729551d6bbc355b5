package run

import (
	"testing"
	"time"
)

func TestBackoffDoublesAndIsCapped(t *testing.T) {
	for _, c := range []struct {
		base    time.Duration
		attempt int32
		want    time.Duration
	}{
		{time.Second, 1, time.Second},
		{time.Second, 2, 2 * time.Second},
		{time.Second, 4, 8 * time.Second},
		{time.Second, 9, maxStepBackoff}, // 256 s < 300 s: not yet
		{time.Second, 10, maxStepBackoff},
		{time.Second, 70, maxStepBackoff}, // 1s << 69 overflowed before
		{time.Hour, 1, maxStepBackoff},
	} {
		want := min(c.want, maxStepBackoff)
		if c.attempt == 9 {
			want = 256 * time.Second
		}
		if got := doubled(c.base, c.attempt, maxStepBackoff); got != want {
			t.Errorf("doubled(%s, %d) = %s, want %s", c.base, c.attempt, got, want)
		}
	}
}

func TestBackoffOfAHugeAttemptIsImmediate(t *testing.T) {
	if got := doubled(time.Second, 1<<30, maxRunBackoff); got != maxRunBackoff {
		t.Fatalf("doubled(1s, 2^30) = %s, want the cap", got)
	}
}
