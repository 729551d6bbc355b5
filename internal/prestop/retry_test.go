package prestop

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

// Retries wait on the injected clock with growing, capped, jittered waits.
func TestRetryBacksOffOnTheClockUntilSuccess(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	attempts := make(chan int)
	done := make(chan error, 1)
	go func() {
		calls := 0
		n, err := retry(context.Background(), clk, func(context.Context) error {
			calls++
			attempts <- calls
			if calls < 7 {
				return errors.New("transient")
			}
			return nil
		})
		if err == nil && n != 7 {
			err = fmt.Errorf("%d attempts", n)
		}
		done <- err
	}()
	var waits []time.Duration
	for n := 1; n <= 7; n++ {
		select {
		case <-attempts:
		case <-time.After(10 * time.Second):
			t.Fatalf("attempt %d never came", n)
		}
		if n == 7 {
			break
		}
		deadline := time.Now().Add(10 * time.Second)
		for !clk.HasWaiters() {
			if time.Now().After(deadline) {
				t.Fatalf("retry does not wait on the clock after attempt %d", n)
			}
			runtime.Gosched()
		}
		// Step 1 ms at a time: the waiter goes away exactly when it fires.
		start := clk.Now()
		for clk.HasWaiters() {
			clk.Step(time.Millisecond)
		}
		waits = append(waits, clk.Since(start))
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Each wait is in [w/2, w] for w = 100ms, 200ms, … capped at 2s.
	for i, w := range []time.Duration{100, 200, 400, 800, 1600, 2000} {
		w *= time.Millisecond
		if waits[i] < w/2 || waits[i] > w {
			t.Errorf("wait %d = %s, want in [%s, %s]", i+1, waits[i], w/2, w)
		}
	}
}

func TestRetryStopsAtAPermanentError(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	bad := errors.New("400")
	n, err := retry(context.Background(), clk, func(context.Context) error { return permanent(bad) })
	if n != 1 || err != bad {
		t.Errorf("retry = %d, %v", n, err)
	}
}

func TestRetryStopsWhenTheContextEnds(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	ctx, cancel := context.WithCancel(context.Background())
	n, err := retry(ctx, clk, func(context.Context) error { cancel(); return errors.New("503") })
	if n != 1 || !errors.Is(err, context.Canceled) {
		t.Errorf("retry = %d, %v", n, err)
	}
}
