package state

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
	"time"
)

// run is the materialiser: once saves pause for cfg.quiet (or at once when
// a delete waits, or the overlay or segment is half full) it writes the
// pending versions as files and moves the checkpoint, until close.
func (j *journal) run() {
	defer close(j.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-j.stop:
			return
		case <-j.wake:
			if !j.urgent() {
				timer.Reset(j.cfg.quiet)
				continue
			}
		case <-timer.C:
		}
		if err := j.materialise(); err != nil {
			timer.Reset(retryDelay)
		}
	}
}

// urgent reports whether materialising should not wait for a pause.
func (j *journal) urgent() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.want > j.checkpoint || j.over.bytes > j.cfg.overlayBytes/2 || j.off > j.cfg.segmentBytes/2
}

// materialise writes every pending version without a file, makes them
// durable as a batch (see writeBatch), then writes the checkpoint that
// covers them, forgets them, and starts the segment over when nothing in
// it is needed any more.
func (j *journal) materialise() error {
	j.mu.Lock()
	batch := j.over.unmaterialised()
	j.mu.Unlock()
	slices.SortFunc(batch, func(a, b *pending) int { return cmp.Compare(a.seq, b.seq) })
	err := j.files.writeBatch(batch, func(p *pending) {
		j.mu.Lock()
		p.materialised = true
		j.mu.Unlock()
	})

	j.mu.Lock()
	from := j.checkpoint
	cp := j.over.covered(from, j.next)
	j.mu.Unlock()
	if cp > from {
		// Only this goroutine (or close, after it stopped) writes the
		// checkpoint, so from is still current.
		if cerr := j.cp.write(cp); cerr != nil && err == nil {
			err = cerr
		}
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if err == nil && cp > from {
		j.over.dropThrough(from, cp)
		j.checkpoint = cp
	}
	if j.checkpoint+1 == j.next {
		// Everything written is in files: the next record goes to the
		// start, and the older ones after it end the chain on replay
		// (their sequence numbers are lower).
		j.off = 0
	}
	j.lastErr = err
	close(j.changed)
	j.changed = make(chan struct{})
	return err
}

// writeAll writes the pending versions as files with write, materialisers
// at a time, calling done for each one written, and returns the first
// error.
func writeAll(ps []*pending, write func(name string, data []byte) error, done func(*pending)) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	sem := make(chan struct{}, materialisers)
	for _, p := range ps {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := write(p.name, p.data); err != nil {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("materialise %s: %w", p.name, err)
				}
				mu.Unlock()
				return
			}
			done(p)
		})
	}
	wg.Wait()
	return first
}
