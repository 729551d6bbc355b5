package state

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing [off, off+n) of f to disk
// now, without waiting: a large upload then streams to the disk while it
// arrives, and the fsync at its end has only the tail left to write, rather
// than the whole object (the kernel would otherwise hold it all as dirty
// pages until the fsync, up to its dirty ratio). Durability still comes
// from that fsync; an error here only means no head start.
func startWriteback(f *os.File, off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
