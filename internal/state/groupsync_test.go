package state

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

// TestDirSyncsAreSharedButNeverStale: writers arriving while a sync runs
// are not covered by it (it may have missed their rename); they share the
// next one, so three writers cost two syncs, not three, and none returns
// before a sync that started after it arrived has ended.
func TestDirSyncsAreSharedButNeverStale(t *testing.T) {
	var calls atomic.Int32
	first := make(chan struct{})
	release := make(chan struct{})
	var d groupSyncer
	d.syncFn = func(string) error {
		if calls.Add(1) == 1 {
			close(first)
			<-release
		}
		return nil
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := d.sync("/state/ns"); err != nil {
			t.Error(err)
		}
	})
	<-first // sync #1 is running
	var returned atomic.Int32
	for range 2 {
		wg.Go(func() {
			if err := d.sync("/state/ns"); err != nil {
				t.Error(err)
			}
			if calls.Load() < 2 {
				t.Error("a writer that arrived during sync #1 returned without a later sync")
			}
			returned.Add(1)
		})
	}
	// The late writers are queued behind sync #1 (they hold no lock while
	// waiting), then released together.
	eventually(t, "two writers waiting", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.dirs["/state/ns"].users == 3
	})
	if returned.Load() != 0 {
		t.Fatal("a late writer returned while sync #1 still ran")
	}
	close(release)
	wg.Wait()
	if n := calls.Load(); n != 2 {
		t.Fatalf("%d syncs for three writers, want 2 (one shared)", n)
	}
	if len(d.dirs) != 0 {
		t.Fatalf("idle directories kept: %v", d.dirs)
	}
}

func TestDirSyncErrorsReachEveryWriterItCovered(t *testing.T) {
	boom := errors.New("EIO")
	var d groupSyncer
	d.syncFn = func(dir string) error {
		if dir == "/bad" {
			return boom
		}
		return nil
	}
	if err := d.sync("/bad"); !errors.Is(err, boom) {
		t.Fatalf("sync of a failing directory = %v", err)
	}
	if err := d.sync("/good"); err != nil {
		t.Fatalf("another directory is not affected: %v", err)
	}
}
