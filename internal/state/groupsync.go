package state

import "sync"

// groupSyncer is group commit for fsyncs: writers that changed the same
// file or directory at about the same time (a fleet of pods of one
// namespace renaming into a shard, saves appending to the journal) share
// one sync instead of queueing one each. A writer is covered only by a
// sync that started after its change: one already under way may have
// missed it, so the writer waits for it to end and joins the next.
type groupSyncer struct {
	mu   sync.Mutex
	dirs map[string]*dirSync
	// syncFn syncs one target; nil means syncDir (the directory syncer of
	// fileStore). The journal sets its segment's fdatasync; tests count and
	// fail the calls.
	syncFn func(target string) error
}

type dirSync struct {
	users   int // writers waiting on this directory; the entry goes at 0
	running bool
	started uint64 // syncs started
	done    uint64 // the last sync that finished
	err     error  // and its error
	cond    sync.Cond
}

// sync returns once a sync of dir that started after the call has ended,
// with that sync's error (or a later one's, which covers the call too).
func (d *groupSyncer) sync(dir string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dirs == nil {
		d.dirs = map[string]*dirSync{}
	}
	s := d.dirs[dir]
	if s == nil {
		s = &dirSync{}
		s.cond.L = &d.mu
		d.dirs[dir] = s
	}
	s.users++
	target := s.started + 1
	for s.done < target {
		if s.running {
			s.cond.Wait()
			continue
		}
		s.running = true
		s.started++
		gen := s.started
		fn := d.syncFn
		if fn == nil {
			fn = syncDir
		}
		d.mu.Unlock()
		err := fn(dir)
		d.mu.Lock()
		s.running = false
		s.done, s.err = gen, err
		s.cond.Broadcast()
	}
	err := s.err
	if s.users--; s.users == 0 {
		delete(d.dirs, dir)
	}
	return err
}
