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
)

// fileStore writes file:// versions itself rather than through fileblob,
// whose writer renames its temp file into place but never fsyncs: after a
// power loss the renamed file could be empty or short, and an acknowledged
// version could vanish with its directory entry. Each version is written to
// a temp file next to its final name, fsync'd, renamed, and the directory
// fsync'd before Put returns; directories that the write had to create are
// fsync'd in their parents too. Reads and deletes go through fileblob.
type fileStore struct {
	root string
	// syncDir fsyncs a directory; tests make it fail or wait.
	syncDir func(dir string) error
}

func openFileStore(root string) (*fileStore, error) {
	f := &fileStore{root: root, syncDir: syncDir}
	// The root may have just been created: make its entry durable too.
	if err := syncDir(filepath.Dir(root)); err != nil {
		return nil, err
	}
	return f, syncDir(root)
}

// tempSuffix ends the name of a version being written; such files are never
// listed as versions, and Run removes them once a crash has left them.
const tempSuffix = ".tmp"

// tempRandomBytes makes a temp name unique among concurrent writers.
const tempRandomBytes = 6

// fileVersion is a version being written to a temp file.
type fileVersion struct {
	*os.File
	store *fileStore
	final string
	// created are the directories made for it, parents first: each one's
	// entry must be made durable in its parent.
	created []string
}

// create opens a temp file for object name, next to its final place so
// that the rename stays within one directory.
func (f *fileStore) create(name string) (*fileVersion, error) {
	final := filepath.Join(f.root, filepath.FromSlash(name))
	var created []string
	for d := filepath.Dir(final); len(d) > len(f.root); d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil {
			break
		}
		created = append([]string{d}, created...)
	}
	if err := os.MkdirAll(filepath.Dir(final), 0o750); err != nil {
		return nil, err
	}
	var rnd [tempRandomBytes]byte
	_, _ = rand.Read(rnd[:]) // crypto/rand.Read never fails (Go 1.24+)
	tmp, err := os.OpenFile(final+"."+hex.EncodeToString(rnd[:])+tempSuffix, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return nil, err
	}
	return &fileVersion{File: tmp, store: f, final: final, created: created}, nil
}

func (v *fileVersion) sync() error { return v.Sync() }

// commit renames the synced temp file into place and makes the rename, and
// any directory made for it, durable.
func (v *fileVersion) commit() error {
	if err := v.Close(); err != nil {
		_ = os.Remove(v.Name())
		return err
	}
	if err := os.Rename(v.Name(), v.final); err != nil {
		_ = os.Remove(v.Name())
		return err
	}
	if err := v.store.syncDir(filepath.Dir(v.final)); err != nil {
		return err
	}
	for _, d := range v.created {
		if err := v.store.syncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}

func (v *fileVersion) abort() {
	_ = v.Close()
	_ = os.Remove(v.Name())
}

// scan lists the versions and strays under prefix (a namespace "ns/" or a
// key's "ns/shard/key@") with directory reads and a stat of each entry. A
// file or directory that vanishes meanwhile (a version pruned, a temp file
// renamed) is left out: the listing is of a moment, not an error.
func (f *fileStore) scan(prefix string) ([]listed, []stray, error) {
	dirName, base := path.Split(prefix)
	top := filepath.Join(f.root, filepath.FromSlash(dirName))
	var out []listed
	var strays []stray
	err := filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(f.root, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if d.IsDir() {
			// A key's versions are in one directory: no need to descend.
			if base != "" && p != top {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasPrefix(name, prefix) {
			return nil
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if ns, key, version, ok := splitName(name); ok && info.Mode().IsRegular() {
			out = append(out, listed{ns: ns, key: key, version: version, size: info.Size()})
		} else {
			strays = append(strays, stray{name: name, modTime: info.ModTime()})
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list %s: %w", prefix, err)
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
