package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// The checkpoint is the highest sequence number up to which every journal
// record is a durable file: replay skips those. It lives in two slots, a
// page apart, written in turn: a write torn by a crash spoils only the slot
// being written, and the other still holds the previous checkpoint (which
// no delete has relied on, since deletes wait for the write to be synced).
// A slot is magic "LCJC", the sequence number and a CRC-32C of both.
const (
	checkpointMagic = "LCJC"
	checkpointSlot  = 4096
	checkpointLen   = 4 + 8 + 4
)

type checkpointFile struct {
	f    *os.File
	next int // the slot to write next: never the one holding the newest
}

// openCheckpoint opens (or creates, zeroed and synced) the checkpoint file
// and returns it with the checkpoint it holds, 0 if none.
func openCheckpoint(path string) (*checkpointFile, uint64, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		f, err = createZeroed(path, 2*checkpointSlot)
	}
	if err != nil {
		return nil, 0, err
	}
	c := &checkpointFile{f: f}
	var best uint64
	for slot := range 2 {
		b := make([]byte, checkpointLen)
		if _, err := f.ReadAt(b, int64(slot*checkpointSlot)); err != nil {
			continue // short file: the slot was never written
		}
		if seq, ok := decodeCheckpoint(b); ok && seq >= best {
			best, c.next = seq, 1-slot
		}
	}
	return c, best, nil
}

func decodeCheckpoint(b []byte) (uint64, bool) {
	if string(b[:4]) != checkpointMagic {
		return 0, false
	}
	if crc32.Checksum(b[:12], castagnoli) != binary.BigEndian.Uint32(b[12:16]) {
		return 0, false
	}
	return binary.BigEndian.Uint64(b[4:12]), true
}

// write makes seq the durable checkpoint.
func (c *checkpointFile) write(seq uint64) error {
	b := make([]byte, 0, checkpointLen)
	b = append(b, checkpointMagic...)
	b = binary.BigEndian.AppendUint64(b, seq)
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	if _, err := c.f.WriteAt(b, int64(c.next*checkpointSlot)); err != nil {
		return fmt.Errorf("write checkpoint %d: %w", seq, err)
	}
	if err := unix.Fdatasync(int(c.f.Fd())); err != nil {
		return fmt.Errorf("sync checkpoint %d: %w", seq, err)
	}
	c.next = 1 - c.next
	return nil
}

func (c *checkpointFile) close() error { return c.f.Close() }

// createZeroed creates path holding n zero bytes, synced, so that later
// overwrites in place need no metadata commit (fallocate would leave
// unwritten extents, which do).
func createZeroed(path string, n int64) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return nil, err
	}
	if err := writeZeros(f, 0, n); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// writeZeros writes zeros over [off, off+n) of f and syncs it.
func writeZeros(f *os.File, off, n int64) error {
	zeros := make([]byte, min(n, 1<<20))
	for n > 0 {
		m := min(n, int64(len(zeros)))
		if _, err := f.WriteAt(zeros[:m], off); err != nil {
			return err
		}
		off += m
		n -= m
	}
	return unix.Fdatasync(int(f.Fd()))
}
