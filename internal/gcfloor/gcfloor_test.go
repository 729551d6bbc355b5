package gcfloor

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

const mib = 1 << 20

func TestPercent(t *testing.T) {
	for _, tc := range []struct {
		name               string
		live, roots, floor uint64
		base, want         int
	}{
		// (64-5)·100/6 = 983; the runtime's floor is then 4·9.83 = 39 MiB.
		{"small heap is raised to the floor", 5 * mib, 6 * mib, 64 * mib, 100, 983},
		{"live heap at the floor keeps base", 64 * mib, 70 * mib, 64 * mib, 100, 100},
		{"large heap keeps base", 300 * mib, 310 * mib, 64 * mib, 100, 100},
		{"goal from base already past floor", 40 * mib, 42 * mib, 64 * mib, 100, 100},
		{"never below a higher base", 5 * mib, 6 * mib, 64 * mib, 2000, 2000},
		// 64·100/4 = 1600: above it the runtime's own floor, 4 MiB·GOGC/100,
		// would pass 64 MiB.
		{"capped by the runtime's scaled floor", 1 * mib, 1 * mib, 64 * mib, 100, 1600},
		{"GOGC=off stays off", 5 * mib, 6 * mib, 64 * mib, -1, -1},
		{"no roots yet keeps base", 0, 0, 64 * mib, 100, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Percent(tc.live, tc.roots, tc.floor, tc.base); got != tc.want {
				t.Errorf("Percent(%d MiB, %d MiB, %d MiB, %d) = %d, want %d",
					tc.live/mib, tc.roots/mib, tc.floor/mib, tc.base, got, tc.want)
			}
		})
	}
}

// heapGoal runs a GC cycle, waits for the tuner's cleanup to have run after
// it, and returns the runtime's heap goal then.
func heapGoal(t *testing.T, tu *Tuner, want func(goal uint64) bool) uint64 {
	t.Helper()
	s := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}}
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		time.Sleep(10 * time.Millisecond) // cleanups run on their own goroutine
		metrics.Read(s)
		if g := s[0].Value.Uint64(); want(g) || time.Now().After(deadline) {
			return g
		}
	}
}

func TestTunerRaisesSmallHeapGoalToFloor(t *testing.T) {
	const floor = 48 * mib
	tu, err := Start(floor)
	if err != nil {
		t.Fatal(err)
	}
	defer tu.Stop()
	near := func(g uint64) bool { return g > floor*9/10 && g <= floor }
	if g := heapGoal(t, tu, near); !near(g) {
		t.Fatalf("heap goal %d MiB with a small live heap, want just under the %d MiB floor (GOGC now %d)", g/mib, floor/mib, tu.Current())
	}
	if tu.Current() <= tu.Base() {
		t.Fatalf("GOGC %d, want above the base %d", tu.Current(), tu.Base())
	}

	// A live heap past the floor: GOGC goes back to its base and the goal
	// is the runtime's own, about twice the live heap.
	keep := make([][]*int, 0, 64)
	for range 64 {
		keep = append(keep, make([]*int, mib/8)) // 1 MiB of pointers each
	}
	base := func(g uint64) bool { return tu.Current() == tu.Base() }
	if g := heapGoal(t, tu, base); !base(g) || g < 2*64*mib*9/10 {
		t.Fatalf("with 64 MiB live: GOGC %d (base %d), heap goal %d MiB, want base and about 128 MiB",
			tu.Current(), tu.Base(), g/mib)
	}
	runtime.KeepAlive(keep)

	tu.Stop()
	if got := debug.SetGCPercent(tu.Base()); got != tu.Base() {
		t.Fatalf("after Stop GOGC is %d, want %d", got, tu.Base())
	}
}

func TestStartRefusesGOGCOff(t *testing.T) {
	old := debug.SetGCPercent(-1)
	defer debug.SetGCPercent(old)
	if _, err := Start(64 * mib); err == nil {
		t.Fatal("Start with GOGC=off: no error")
	}
	if got := debug.SetGCPercent(-1); got != -1 {
		t.Fatalf("Start changed GOGC=off to %d", got)
	}
}
