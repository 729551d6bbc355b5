// Package gcfloor keeps the garbage collector's heap goal at or above a
// floor while the live heap is small, and leaves GOGC alone once it is not.
//
// Go collects when the heap has grown by GOGC per cent over what the last
// cycle found live, with a floor of only 4 MiB (scaled by GOGC). A process
// whose live heap is a few MiB of package state (client-go's scheme, the AWS
// SDK's endpoint tables) then collects dozens of times a second under load,
// and each cycle marks all of that state again. The runtime has no setting
// for a larger floor (golang/go#23044 was declined in favour of GOMEMLIMIT,
// which bounds the heap from above, not below), so this package sets GOGC
// after every cycle to the value whose goal is the floor, never below the
// GOGC the process started with. A large live heap (a 10,000-pod informer
// cache) is thus collected exactly as without it; a small one trades up to
// the floor in memory for far fewer, equally short, mark phases.
package gcfloor

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

// heapMinimum is the runtime's own floor at GOGC=100 (defaultHeapMinimum in
// runtime/mgcpacer.go). The runtime scales it by GOGC, so a GOGC above
// 100·floor/heapMinimum would make the runtime's floor, not ours, the goal.
const heapMinimum = 4 << 20

// Percent is the GOGC that puts the next heap goal at floor for a cycle
// that found live bytes of heap live, with roots the sum of the live heap,
// the stacks and the globals: the runtime's goal is live + roots·GOGC/100,
// and at least heapMinimum·GOGC/100. It is never below base, the GOGC to fall back
// to; a base below 0 (GOGC=off) is returned as is.
func Percent(live, roots, floor uint64, base int) int {
	if base < 0 || live >= floor || roots == 0 {
		return base
	}
	p := float64(floor-live) * 100 / float64(roots)
	p = math.Min(p, float64(floor)*100/heapMinimum)
	if p <= float64(base) {
		return base
	}
	return int(p) // floor of p: the goal stays at or just under floor
}

// Tuner adjusts GOGC after every GC cycle until Stop.
type Tuner struct {
	floor uint64
	base  int

	mu      sync.Mutex // cleanups may run concurrently
	samples []metrics.Sample
	percent int

	stopped atomic.Bool
}

// sentinel is the object whose collection marks the end of a cycle. It holds
// a pointer so that it is not put in a tiny-allocator block, whose cleanups
// may never run.
type sentinel struct{ _ *Tuner }

// Start begins tuning for floor bytes. GOGC as the process started with it
// (the GOGC environment variable, default 100) stays the lower bound; with
// GOGC=off there is nothing to tune and Start returns an error.
func Start(floor uint64) (*Tuner, error) {
	t := &Tuner{floor: floor, samples: []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/gc/scan/stack:bytes"},
		{Name: "/gc/scan/globals:bytes"},
	}}
	// The only way to read GOGC including off (-1) is to set it.
	t.base = debug.SetGCPercent(100)
	debug.SetGCPercent(t.base)
	if t.base < 0 {
		return nil, errors.New("gcfloor: GOGC=off: the heap floor has nothing to raise")
	}
	metrics.Read(t.samples)
	for _, s := range t.samples {
		if s.Value.Kind() != metrics.KindUint64 {
			return nil, fmt.Errorf("gcfloor: this Go runtime does not report %s", s.Name)
		}
	}
	t.percent = t.base
	t.adjust()
	t.arm()
	return t, nil
}

// Base is the GOGC the tuner never goes below.
func (t *Tuner) Base() int { return t.base }

// Current is the GOGC set after the last cycle.
func (t *Tuner) Current() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.percent
}

// Stop restores the base GOGC; cycles after it change nothing.
func (t *Tuner) Stop() {
	t.stopped.Store(true)
	t.mu.Lock()
	defer t.mu.Unlock()
	debug.SetGCPercent(t.base)
	t.percent = t.base
}

func (t *Tuner) arm() {
	runtime.AddCleanup(&sentinel{}, (*Tuner).onCycle, t)
}

func (t *Tuner) onCycle() {
	if t.stopped.Load() {
		return
	}
	t.adjust()
	t.arm()
}

func (t *Tuner) adjust() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped.Load() {
		return
	}
	metrics.Read(t.samples)
	live := t.samples[0].Value.Uint64()
	roots := live + t.samples[1].Value.Uint64() + t.samples[2].Value.Uint64()
	if p := Percent(live, roots, t.floor, t.base); p != t.percent {
		debug.SetGCPercent(p)
		t.percent = p
	}
}
