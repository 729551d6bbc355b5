// The syncfs tests: Linux only, where the materialiser uses syncfs(2).

package state

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// countSyncs counts the store's syncfs calls (passed on to fn, nil: the
// real one) and its directory fsyncs from now on.
func countSyncs(s *Store, fn func(*os.File) error) (syncfs, dirs *atomic.Int64) {
	syncfs, dirs = new(atomic.Int64), new(atomic.Int64)
	if fn == nil {
		fn = syncFS
	}
	s.files.syncFS = func(root *os.File) error {
		syncfs.Add(1)
		return fn(root)
	}
	s.files.dirs.syncFn = func(dir string) error {
		dirs.Add(1)
		return syncDir(dir)
	}
	return syncfs, dirs
}

func TestMaterialiserSyncsTheFileSystemOncePerBatch(t *testing.T) {
	s, dir := newFileStoreWith(t, held)
	syncfs, dirs := countSyncs(s, nil)
	for i := range 20 {
		putString(t, s, fmt.Sprintf("k%d", i), "v", time.Now())
	}
	settle(t, s)
	if n := len(files(t, dir)); n != 20 {
		t.Fatalf("%d files, want 20", n)
	}
	if syncfs.Load() != 1 || dirs.Load() != 0 {
		t.Fatalf("%d syncfs and %d directory fsyncs for a batch, want 1 and 0", syncfs.Load(), dirs.Load())
	}
	// The namespace and shard directories it created count as durable, so
	// a direct save into one syncs that directory only.
	ns := filepath.Join(dir, "team-a")
	if !s.files.durable[ns] || !s.files.durable[filepath.Join(ns, shard("k0"))] {
		t.Fatalf("directories made by the batch not recorded durable: %v", s.files.durable)
	}
	if err := s.files.writeFile(objectName("team-a", "k0", version(1)), []byte("direct")); err != nil {
		t.Fatal(err)
	}
	if dirs.Load() != 1 {
		t.Fatalf("%d directory fsyncs for a direct save into a known directory, want 1", dirs.Load())
	}
}

func TestMaterialiserFallsBackToFileByFileWithoutSyncfs(t *testing.T) {
	s, dir := newFileStoreWith(t, held)
	syncfs, dirs := countSyncs(s, func(*os.File) error { return errors.ErrUnsupported })
	putString(t, s, "k", "one", time.Now())
	settle(t, s)
	putString(t, s, "k", "two", time.Now())
	settle(t, s)
	if n := len(files(t, dir)); n != 2 {
		t.Fatalf("%d files, want 2", n)
	}
	if syncfs.Load() > 1 || dirs.Load() < 2 {
		t.Fatalf("%d syncfs and %d directory fsyncs, want at most one try and a directory fsync per file", syncfs.Load(), dirs.Load())
	}
	if got := readAll(t, s, "team-a", "k", ""); got != "two" {
		t.Fatalf("the key reads %q", got)
	}
}

func TestFailedSyncfsKeepsTheBatchPendingAndRemovesItsFiles(t *testing.T) {
	s, dir := newFileStoreWith(t, held)
	var fail atomic.Bool
	fail.Store(true)
	countSyncs(s, func(root *os.File) error {
		if fail.Load() {
			return syscall.EIO
		}
		return syncFS(root)
	})
	m := putString(t, s, "k", "kept", time.Now())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.journal.flush(ctx); !errors.Is(err, syscall.EIO) {
		t.Fatalf("flush = %v, want EIO", err)
	}
	if f := files(t, dir); len(f) != 0 {
		t.Fatalf("files %v after a failed syncfs, want none (replay would take them for whole)", f)
	}
	if s.journal.checkpoint != 0 {
		t.Fatalf("checkpoint %d after a failed syncfs", s.journal.checkpoint)
	}
	if got := readAll(t, s, "team-a", "k", m.ID); got != "kept" {
		t.Fatalf("the pending version reads %q", got)
	}
	fail.Store(false)
	settle(t, s)
	if f := files(t, dir); len(f) != 1 || s.journal.checkpoint != 1 {
		t.Fatalf("after the retry files %v, checkpoint %d", f, s.journal.checkpoint)
	}
}
