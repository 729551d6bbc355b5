package state

import (
	"errors"
	"fmt"
	"io/fs"
	"sync"

	"golang.org/x/sys/unix"
)

// direntBuffer is read in one getdents call: ext4 holds the directory's
// lock for the whole call, so a directory that fits (a few thousand
// entries) is read as one snapshot, and a concurrent rename-then-prune
// cannot hide both the old version and the new one. os.ReadDir reads 8 KiB
// at a time, which a version directory outgrows at a few dozen entries.
const direntBuffer = 256 << 10

var direntBuffers = sync.Pool{New: func() any { return new([direntBuffer]byte) }}

// readDirNames returns the names in dir, nil if it does not exist.
func readDirNames(dir string) ([]string, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	b := direntBuffers.Get().(*[direntBuffer]byte)
	defer direntBuffers.Put(b)
	buf := b[:]
	var names []string
	for {
		n, err := unix.Getdents(fd, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read directory %s: %w", dir, err)
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}
