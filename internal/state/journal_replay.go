package state

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// replay reads the segment from its start and materialises the records
// the checkpoint cp does not cover, before any request is served. The
// records that count form a chain: valid, with consecutive sequence
// numbers from the first one. The chain ends at the first record that is
// torn, zeros (never written), or stale (left by an earlier lap of the
// segment, so numbered lower); no acknowledged record lies beyond it,
// because a record is acknowledged only once it and all before it are
// synced. Afterwards everything is in files, the checkpoint says so, and
// the next record goes to the segment's start.
func (j *journal) replay(cp uint64) error {
	info, err := j.seg.Stat()
	if err != nil {
		return err
	}
	j.allocated = info.Size()
	recs, last, err := readChain(io.NewSectionReader(j.seg, 0, info.Size()))
	if err != nil {
		return err
	}
	var todo []*pending
	for _, r := range recs {
		if r.seq > cp {
			todo = append(todo, &pending{name: r.name, seq: r.seq, data: r.data})
		}
	}
	if err := writeAll(j.files, missing(j.files, todo), func(*pending) {}); err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	if last > cp {
		if err := j.cp.write(last); err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		cp = last
	}
	j.checkpoint, j.next, j.off = cp, cp+1, 0
	return nil
}

// readChain returns the chain of records at the start of r and the
// sequence number of its last one (0 for none).
func readChain(r io.Reader) ([]record, uint64, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	var recs []record
	var last uint64
	head := make([]byte, recordHeaderLen)
	for {
		if _, err := io.ReadFull(br, head); err != nil {
			return recs, last, ignoreEOF(err)
		}
		bodyLen, err := parseRecordHeader(head)
		if err != nil {
			return recs, last, nil
		}
		b := make([]byte, recordHeaderLen+bodyLen)
		copy(b, head)
		if _, err := io.ReadFull(br, b[recordHeaderLen:]); err != nil {
			return recs, last, ignoreEOF(err)
		}
		rec, _, err := decodeRecord(b)
		if err != nil || (len(recs) > 0 && rec.seq != last+1) || rec.seq == 0 {
			return recs, last, nil
		}
		if _, _, _, ok := splitName(rec.name); !ok {
			// Checksummed yet not a version name: not ours to write.
			return recs, last, nil
		}
		recs = append(recs, rec)
		last = rec.seq
	}
}

// ignoreEOF: the segment ending mid-record ends the chain like any torn
// record; other read errors fail the open.
func ignoreEOF(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil
	}
	return fmt.Errorf("read segment: %w", err)
}

// missing leaves out the versions whose file already exists: a file under
// a version's name is always whole (it was renamed into place after its
// sync), and version names are never reused.
func missing(files *fileStore, ps []*pending) []*pending {
	var out []*pending
	for _, p := range ps {
		info, err := os.Lstat(filepath.Join(files.root, filepath.FromSlash(p.name)))
		if err == nil && info.Mode().IsRegular() && info.Size() == int64(len(p.data)) {
			continue
		}
		out = append(out, p)
	}
	return out
}
