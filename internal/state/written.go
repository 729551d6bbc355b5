package state

import "sync"

// maxWritten bounds the keys waiting for Run to prune them; beyond it a
// write prunes its key itself, so a stalled Run cannot make memory grow.
const maxWritten = 10000

type nsKey struct{ ns, key string }

// writtenKeys are the keys written since Run last applied the retention
// policy to them. Only a running Run accepts keys.
type writtenKeys struct {
	mu      sync.Mutex
	wake    chan struct{} // nil unless Run is running
	pending map[nsKey]struct{}
}

// start makes add accept keys and returns the channel that signals them.
func (w *writtenKeys) start() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.wake = make(chan struct{}, 1)
	w.pending = map[nsKey]struct{}{}
	return w.wake
}

// stop makes add refuse keys again; the ones still waiting are left to the
// next whole-store prune.
func (w *writtenKeys) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.wake, w.pending = nil, nil
}

// add queues a key and reports whether Run will prune it.
func (w *writtenKeys) add(ns, key string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.wake == nil || len(w.pending) >= maxWritten {
		return false
	}
	w.pending[nsKey{ns, key}] = struct{}{}
	select {
	case w.wake <- struct{}{}:
	default: // Run is already woken
	}
	return true
}

// take returns the waiting keys and forgets them.
func (w *writtenKeys) take() []nsKey {
	w.mu.Lock()
	defer w.mu.Unlock()
	keys := make([]nsKey, 0, len(w.pending))
	for k := range w.pending {
		keys = append(keys, k)
	}
	clear(w.pending)
	return keys
}
