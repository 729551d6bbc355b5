package state

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sync"
)

// fileSync makes file:// writes durable. gocloud's fileblob writes a temp
// file and renames it into place but never fsyncs: after a power loss the
// renamed file can be empty or short, and an acknowledged version can vanish
// with its directory entry. So Put fsyncs the temp file before fileblob
// renames it, and fileSync fsyncs the directory after (and, once per
// process, every directory up to the root, since fileblob creates them).
type fileSync struct {
	root string

	mu      sync.Mutex
	durable map[string]bool // directories whose own entry is known synced
}

func newFileSync(root string) (*fileSync, error) {
	f := &fileSync{root: root, durable: map[string]bool{}}
	// The root may have just been created: make its entry durable too.
	if err := syncDir(filepath.Dir(root)); err != nil {
		return nil, err
	}
	return f, syncDir(root)
}

// committed makes the rename of object name durable.
func (f *fileSync) committed(name string) error {
	dir := filepath.Join(f.root, filepath.FromSlash(path.Dir(name)))
	if err := syncDir(dir); err != nil {
		return err
	}
	for d := dir; d != f.root && len(d) > len(f.root); d = filepath.Dir(d) {
		f.mu.Lock()
		done := f.durable[d]
		f.mu.Unlock()
		if done {
			return nil
		}
		if err := syncDir(filepath.Dir(d)); err != nil {
			return err
		}
		f.mu.Lock()
		f.durable[d] = true
		f.mu.Unlock()
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
