package state

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// The journal makes small file:// saves durable with less than one flush
// each: a save appends one record (the whole object) to a preallocated
// segment, and the saves that arrive together share one fdatasync (see
// groupSyncer); Put returns once its record is synced. The version is
// served from memory (the overlay) until a background materialiser has
// written it as a file, made its batch durable with one syncfs (see
// writeBatch), and a durable checkpoint says so.
// OpenStore replays what the checkpoint does not cover before it returns.
// docs/state.md describes the model.

// journalDir holds the segment and the checkpoint. A leading "." is never
// a namespace (a DNS label), so no listing takes it for versions, and
// prune never removes its files (they are not temp files of versions).
const journalDir = ".journal"

// Defaults for journalConfig.
const (
	defaultOverlayBytes = 64 << 20
	defaultSegmentBytes = 64 << 20
	// segmentChunk is how far the segment is preallocated at a time.
	segmentChunk = 2 << 20
	// defaultQuiet is how long saves must pause before the materialiser
	// writes their files: a burst (a rollout) pays for its journal syncs
	// only, and the files are written once it is over.
	defaultQuiet = 20 * time.Millisecond
	// materialisers is how many files are written at once (where there is
	// no syncfs, their fsyncs share the file system's journal commits).
	materialisers = 8
	// retryDelay spaces materialisation attempts after a failure.
	retryDelay = time.Second
)

// journalConfig tunes the journal; the zero value means the defaults.
type journalConfig struct {
	disabled     bool
	overlayBytes int64
	segmentBytes int64
	// quiet is the pause after which pending versions are materialised;
	// the tests set it to hours to keep versions pending.
	quiet time.Duration
}

func (c journalConfig) withDefaults() journalConfig {
	if c.overlayBytes <= 0 {
		c.overlayBytes = defaultOverlayBytes
	}
	if c.segmentBytes <= 0 {
		c.segmentBytes = defaultSegmentBytes
	}
	if c.quiet <= 0 {
		c.quiet = defaultQuiet
	}
	return c
}

// errJournalSkipped means the journal did not take a save (overlay or
// segment full, journal closed or failed): it goes the direct way.
var errJournalSkipped = errors.New("journal skipped")

// errJournalFailed is sticky: once a write or sync of the segment failed,
// its contents are unknown (a later fdatasync may succeed without the lost
// pages), so no later record may rely on it.
var errJournalFailed = errors.New("journal failed earlier")

type journal struct {
	cfg   journalConfig
	files *fileStore
	seg   *os.File
	cp    *checkpointFile
	sync  groupSyncer // one target: the segment
	// failed is set by the first failed write or sync, before anyone
	// waiting on that sync wakes.
	failed atomic.Bool

	mu         sync.Mutex
	over       overlay
	next       uint64        // the next record's sequence number
	off        int64         // where it goes
	allocated  int64         // the segment's zeroed length
	checkpoint uint64        // durable
	want       uint64        // a delete waits for a checkpoint this high
	lastErr    error         // the last materialisation's failure
	changed    chan struct{} // closed and replaced when checkpoint or lastErr moves
	closed     bool          // no more saves: Close has begun
	buf        []byte
	inflight   sync.WaitGroup // saves between their write and their sync

	wake chan struct{}
	stop chan struct{}
	done chan struct{}
}

// openJournal opens (or creates) the journal under root, replays it, and
// starts its materialiser; Close stops it. It returns nil, nil when the
// journal is disabled or another process holds it (that process serves
// its versions; this one writes directly).
func openJournal(root string, files *fileStore, cfg journalConfig) (*journal, error) {
	if cfg.disabled {
		return nil, nil
	}
	j := &journal{cfg: cfg.withDefaults(), files: files, over: newOverlay(), changed: make(chan struct{}),
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	dir := filepath.Join(root, journalDir)
	if err := os.Mkdir(dir, 0o750); err == nil {
		if err := syncDir(root); err != nil {
			return nil, fmt.Errorf("journal %s: %w", dir, err)
		}
	} else if !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("journal %s: %w", dir, err)
	}
	seg, err := os.OpenFile(filepath.Join(dir, "segment"), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("journal %s: %w", dir, err)
	}
	if err := unix.Flock(int(seg.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		seg.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, nil
		}
		return nil, fmt.Errorf("journal %s: lock: %w", dir, err)
	}
	j.seg = seg
	j.sync.syncFn = j.syncSegment
	var cp uint64
	if j.cp, cp, err = openCheckpoint(filepath.Join(dir, "checkpoint")); err == nil {
		err = syncDir(dir) // the files' entries, if just created
	}
	if err == nil {
		err = j.replay(cp)
	}
	if err != nil {
		j.closeFiles()
		return nil, fmt.Errorf("journal %s: %w", dir, err)
	}
	go j.run()
	return j, nil
}

func (j *journal) syncSegment(string) error {
	if j.failed.Load() {
		return errJournalFailed
	}
	if err := unix.Fdatasync(int(j.seg.Fd())); err != nil {
		j.failed.Store(true)
		return err
	}
	return nil
}

// put appends a version and returns once it is durable, or
// errJournalSkipped, or the write's error; on any error the version is
// not visible through the journal and the caller writes it directly.
func (j *journal) put(name string, data []byte) error {
	n := recordLen(name, data)
	j.mu.Lock()
	if j.closed || j.failed.Load() || j.over.bytes+int64(len(data)) > j.cfg.overlayBytes || j.off+n > j.cfg.segmentBytes {
		j.mu.Unlock()
		j.kick()
		return errJournalSkipped
	}
	if j.off+n > j.allocated {
		// Zeroed ahead, so that records overwrite written blocks and their
		// fdatasync commits no metadata.
		grow := min(j.cfg.segmentBytes, max(j.off+n, j.allocated+segmentChunk)) - j.allocated
		if err := writeZeros(j.seg, j.allocated, grow); err != nil {
			j.mu.Unlock()
			return fmt.Errorf("journal preallocate: %w", err)
		}
		j.allocated += grow
	}
	p := &pending{name: name, seq: j.next, data: data}
	j.buf = appendRecord(j.buf[:0], p.seq, name, data)
	// Written under the lock, in sequence order: a sync that starts after
	// this write covers every earlier record too, so the durable records
	// always form an unbroken chain.
	if _, err := j.seg.WriteAt(j.buf, j.off); err != nil {
		j.failed.Store(true)
		j.mu.Unlock()
		return fmt.Errorf("journal write %s: %w", name, err)
	}
	j.next++
	j.off += n
	j.over.add(p)
	j.inflight.Add(1)
	j.mu.Unlock()
	defer j.inflight.Done()
	j.kick()
	if err := j.sync.sync(""); err != nil {
		j.mu.Lock()
		j.over.remove(p) // its sequence number now counts as done
		j.mu.Unlock()
		return fmt.Errorf("journal sync %s: %w", name, err)
	}
	return nil
}

// kick wakes the materialiser.
func (j *journal) kick() {
	select {
	case j.wake <- struct{}{}:
	default:
	}
}

// lookup returns a pending version's object.
func (j *journal) lookup(name string) ([]byte, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	p := j.over.byName[name]
	if p == nil {
		return nil, false
	}
	return p.data, true
}

// listed returns the pending versions under prefix as a listing shows
// them, and the overlay's generation they are from.
func (j *journal) listed(prefix string) ([]listed, uint64) {
	j.mu.Lock()
	ps, gen := j.over.under(prefix), j.over.gen
	j.mu.Unlock()
	out := make([]listed, 0, len(ps))
	for _, p := range ps {
		ns, key, version, _ := splitName(p.name) // checked by Put and replay
		out = append(out, listed{ns: ns, key: key, version: version, size: int64(len(p.data))})
	}
	return out, gen
}

// settle returns once name, if it is pending, is a file and a durable
// checkpoint covers it: only then may it be deleted, or replay after a
// crash would bring it back. urgent has the materialiser run now (a
// client's DELETE); otherwise (retention) it waits for the next pause in
// saves, so that pruning during a burst adds no file writes to it.
func (j *journal) settle(ctx context.Context, name string, urgent bool) error {
	j.mu.Lock()
	p := j.over.byName[name]
	j.mu.Unlock()
	if p == nil {
		return nil
	}
	if err := j.waitCheckpoint(ctx, p.seq, urgent); err != nil {
		return fmt.Errorf("materialise %s: %w", name, err)
	}
	return nil
}

// flush returns once every version journalled so far is a file.
func (j *journal) flush(ctx context.Context) error {
	j.mu.Lock()
	last := j.next - 1
	j.mu.Unlock()
	return j.waitCheckpoint(ctx, last, true)
}

// waitCheckpoint returns once the checkpoint reaches seq, or with the error
// that stopped the materialiser; urgent has it run now.
func (j *journal) waitCheckpoint(ctx context.Context, seq uint64, urgent bool) error {
	for {
		j.mu.Lock()
		if j.checkpoint >= seq {
			j.mu.Unlock()
			return nil
		}
		if j.closed {
			j.mu.Unlock()
			return errors.New("journal closed")
		}
		if urgent {
			j.want = max(j.want, seq)
		}
		ch := j.changed
		j.mu.Unlock()
		if urgent {
			j.kick()
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		j.mu.Lock()
		err, done := j.lastErr, j.checkpoint >= seq
		j.mu.Unlock()
		if !done && err != nil {
			return err
		}
	}
}

// close stops the materialiser, writes out what is pending (so that a
// clean shutdown leaves nothing to replay) and closes the files.
func (j *journal) close() error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return nil
	}
	j.closed = true // later saves go the direct way
	j.mu.Unlock()
	j.inflight.Wait() // no sync may run on a closed descriptor
	close(j.stop)
	<-j.done
	err := j.materialise()
	j.mu.Lock()
	close(j.changed) // wakes any delete still waiting
	j.changed = make(chan struct{})
	j.mu.Unlock()
	if cerr := j.closeFiles(); err == nil {
		err = cerr
	}
	return err
}

func (j *journal) closeFiles() error {
	err := j.seg.Close() // and the lock
	if j.cp != nil {
		if cerr := j.cp.close(); err == nil {
			err = cerr
		}
	}
	return err
}
