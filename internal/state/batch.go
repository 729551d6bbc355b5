package state

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// The materialiser's files need no durability of their own: the journal
// can replay them until the checkpoint moves past them. So a batch is
// written without any file or directory sync (temp file, rename), and made
// durable as a whole by one syncfs of the store's file system, which writes
// out its dirty data and commits its metadata; only then may the
// checkpoint cover it. A crash before that can leave a renamed file empty
// or short, or a temp file: replay rewrites the first (see missing), and
// prune removes the second. Where syncfs is missing, each file is written
// the direct way (fsync, rename, directory fsync).

// writeBatch writes the versions as files, calling done for each one once
// it is durable, and returns the first error.
func (f *fileStore) writeBatch(ps []*pending, done func(*pending)) error {
	if !syncFSAvailable || f.noSyncFS.Load() {
		return writeAll(ps, f.writeFile, done)
	}
	// Opened before the first write: syncfs reports the writeback errors
	// of the file system since then (and older ones nobody has seen).
	root, err := os.Open(f.root)
	if err != nil {
		return fmt.Errorf("materialise: %w", err)
	}
	defer root.Close()
	var mu sync.Mutex
	var written []string
	byName := map[string]*pending{}
	err = writeAll(ps, f.writeUnsynced, func(p *pending) {
		mu.Lock()
		written = append(written, p.name)
		byName[p.name] = p
		mu.Unlock()
	})
	if len(written) == 0 {
		return err
	}
	serr := f.flushFS(root)
	if errors.Is(serr, errors.ErrUnsupported) {
		f.noSyncFS.Store(true)
		return writeAll(ps, f.writeFile, done) // over the unsynced files
	}
	if serr != nil {
		// Some data may never reach the disk although the page cache
		// serves it: removed, so that replay after a crash rewrites it
		// rather than take it for whole. The overlay still serves them.
		for _, name := range written {
			_ = os.Remove(filepath.Join(f.root, filepath.FromSlash(name)))
		}
		return fmt.Errorf("materialise: sync file system: %w", serr)
	}
	f.markDurable(written)
	for _, name := range written {
		done(byName[name])
	}
	return err
}

// writeUnsynced writes a whole object as a version file with a temp file
// and a rename, and syncs nothing: for versions the journal still holds.
func (f *fileStore) writeUnsynced(name string, data []byte) error {
	v, err := f.writeTemp(name, data)
	if err != nil {
		return err
	}
	return v.rename()
}

// syncExisting makes version files that are already in place durable:
// replay finds them whole, but after a crash of the process alone they may
// be in the page cache only.
func (f *fileStore) syncExisting(names []string) error {
	if len(names) == 0 {
		return nil
	}
	if syncFSAvailable && !f.noSyncFS.Load() {
		root, err := os.Open(f.root)
		if err != nil {
			return err
		}
		err = f.flushFS(root)
		root.Close()
		if err == nil {
			f.markDurable(names)
			return nil
		}
		if !errors.Is(err, errors.ErrUnsupported) {
			return fmt.Errorf("sync file system: %w", err)
		}
		f.noSyncFS.Store(true)
	}
	for _, name := range names {
		path := filepath.Join(f.root, filepath.FromSlash(name))
		if err := syncFile(path); err != nil {
			return err
		}
		if err := f.committed(filepath.Dir(path)); err != nil {
			return err
		}
	}
	return nil
}

func (f *fileStore) flushFS(root *os.File) error {
	if f.syncFS != nil {
		return f.syncFS(root)
	}
	return syncFS(root)
}

// markDurable records that the directories of the named files, and theirs
// up to the root, are durable: a syncfs that started after the files were
// renamed into them has succeeded, and it commits every directory entry,
// the ones MkdirAll just made included.
func (f *fileStore) markDurable(names []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, name := range names {
		for d := filepath.Dir(filepath.Join(f.root, filepath.FromSlash(name))); d != f.root && len(d) > len(f.root); d = filepath.Dir(d) {
			f.durable[d] = true
		}
	}
}

func syncFile(path string) error {
	if err := syncPath(path); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}
