package state

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// syncFSAvailable says whether a materialised batch can be made durable
// with one syncfs rather than file by file.
const syncFSAvailable = true

// syncFS writes out the dirty data of the file system holding root and
// commits its metadata (syncfs(2)); since Linux 5.8 it reports writeback
// errors. errors.ErrUnsupported means the kernel has no syncfs.
func syncFS(root *os.File) error {
	err := unix.Syncfs(int(root.Fd()))
	if errors.Is(err, unix.ENOSYS) {
		return errors.ErrUnsupported
	}
	return err
}
