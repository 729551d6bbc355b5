package state

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
)

// fileStore writes file:// versions itself rather than through fileblob,
// whose writer renames its temp file into place but never fsyncs: after a
// power loss the renamed file could be empty or short, and an acknowledged
// version could vanish with its directory entry. Each version is written
// to a temp file next to its final name, fsync'd, renamed, and the
// directory fsync'd (shared by the writers of that directory, see
// groupSyncer) before Put returns; the first time a directory is used, every
// directory up to the root is fsync'd too, since MkdirAll may have just
// created them. The journal's materialiser skips these syncs and makes a
// whole batch durable at once (see writeBatch). Reads, listings and
// deletes go through fileblob.
type fileStore struct {
	root string
	dirs groupSyncer
	// syncFS flushes the whole file system (see writeBatch); nil means
	// syncFS. Tests count and fail the calls.
	syncFS func(root *os.File) error
	// noSyncFS is set once syncfs turned out unsupported at run time:
	// batches are written file by file from then on.
	noSyncFS atomic.Bool

	mu      sync.Mutex
	durable map[string]bool // directories whose own entry is known synced
}

func openFileStore(root string) (*fileStore, error) {
	f := &fileStore{root: root, durable: map[string]bool{}}
	// The root may have just been created: make its entry durable too.
	if err := syncDir(filepath.Dir(root)); err != nil {
		return nil, err
	}
	return f, syncDir(root)
}

// tempSuffix ends the name of a version being written; such files are never
// listed as versions, and Run removes them once a crash has left them.
const tempSuffix = ".tmp"

// writeBehind is how much of a version is written before its writeback is
// started (see startWriteback); small saves never reach it.
const writeBehind = 8 << 20

// fileVersion is a version being written to a temp file. (The file is not
// embedded: an io.Copy into it must not reach os.File's ReadFrom and skip
// Write's writeback.)
type fileVersion struct {
	f                *os.File
	store            *fileStore
	final            string
	written, flushed int64 // bytes written, and handed to writeback
}

func (v *fileVersion) Write(p []byte) (int, error) {
	n, err := v.f.Write(p)
	v.written += int64(n)
	if v.written-v.flushed >= writeBehind {
		startWriteback(v.f, v.flushed, v.written-v.flushed)
		v.flushed = v.written
	}
	return n, err
}

// create opens a temp file for object name, next to its final place so
// that the rename stays within one directory.
func (f *fileStore) create(name string) (*fileVersion, error) {
	final := filepath.Join(f.root, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(final), 0o750); err != nil {
		return nil, err
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:]) // crypto/rand.Read never fails (Go 1.24+)
	tmp, err := os.OpenFile(final+"."+hex.EncodeToString(rnd[:])+tempSuffix, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return nil, err
	}
	return &fileVersion{f: tmp, store: f, final: final}, nil
}

func (v *fileVersion) sync() error { return v.f.Sync() }

// commit renames the synced temp file into place and makes the rename
// durable.
func (v *fileVersion) commit() error {
	if err := v.rename(); err != nil {
		return err
	}
	return v.store.committed(filepath.Dir(v.final))
}

// rename closes the temp file and renames it into place, syncing neither.
func (v *fileVersion) rename() error {
	if err := v.f.Close(); err != nil {
		_ = os.Remove(v.f.Name())
		return err
	}
	if err := os.Rename(v.f.Name(), v.final); err != nil {
		_ = os.Remove(v.f.Name())
		return err
	}
	return nil
}

func (v *fileVersion) abort() {
	_ = v.f.Close()
	_ = os.Remove(v.f.Name())
}

// committed makes a rename into dir durable.
func (f *fileStore) committed(dir string) error {
	if err := f.dirs.sync(dir); err != nil {
		return err
	}
	for d := dir; d != f.root && len(d) > len(f.root); d = filepath.Dir(d) {
		f.mu.Lock()
		done := f.durable[d]
		f.mu.Unlock()
		if done {
			return nil
		}
		if err := f.dirs.sync(filepath.Dir(d)); err != nil {
			return err
		}
		f.mu.Lock()
		f.durable[d] = true
		f.mu.Unlock()
	}
	return nil
}

// errListingRaced means a listed file vanished before it could be stat'ed
// (a version pruned, a temp file renamed): the listing is redone.
var errListingRaced = errors.New("directory changed while listing")

// scanKey lists the versions of one key (prefix is versionsPrefix) with one
// read of its shard directory and a stat of each of its entries; fileblob
// would also stat, and look for a sidecar of, every other key's entry.
func (f *fileStore) scanKey(prefix string) ([]listed, []stray, error) {
	dirName, base := path.Split(prefix)
	dir := filepath.Join(f.root, filepath.FromSlash(dirName))
	names, err := readDirNames(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	var out []listed
	var strays []stray
	for _, n := range names {
		if !strings.HasPrefix(n, base) {
			continue
		}
		info, err := os.Lstat(filepath.Join(dir, n))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, errListingRaced
		}
		if err != nil {
			return nil, nil, fmt.Errorf("list %s: %w", prefix, err)
		}
		name := dirName + n
		if ns, key, version, ok := splitName(name); ok && info.Mode().IsRegular() {
			out = append(out, listed{ns: ns, key: key, version: version, size: info.Size()})
		} else {
			strays = append(strays, stray{name: name, modTime: info.ModTime()})
		}
	}
	return out, strays, nil
}

func syncDir(dir string) error {
	if err := syncPath(dir); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// syncPath fsyncs a file or directory by path.
func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeFile writes a whole object held in memory as a version file, with
// the same crash-atomic protocol as a streamed one.
func (f *fileStore) writeFile(name string, data []byte) error {
	v, err := f.writeTemp(name, data)
	if err != nil {
		return err
	}
	if err := v.sync(); err != nil {
		v.abort()
		return err
	}
	return v.commit()
}

// writeTemp writes a whole object to a new temp file for name.
func (f *fileStore) writeTemp(name string, data []byte) (*fileVersion, error) {
	v, err := f.create(name)
	if err != nil {
		return nil, err
	}
	if _, err := v.Write(data); err != nil {
		v.abort()
		return nil, err
	}
	return v, nil
}
