package state

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
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
// synced. Afterwards everything is a durable file, the checkpoint says so, and
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
	bad, whole, err := missing(j.files, todo)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	// Rewritten the direct way, each durable before the checkpoint moves.
	if err := writeAll(bad, j.files.writeFile, func(*pending) {}); err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	if err := j.files.syncExisting(whole); err != nil {
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

// missing sorts the versions into those to write and the names of those
// whose file is already whole: byte for byte the record's object, payload
// and footer. A crash before the materialiser's syncfs can leave a file
// under its final name that is empty, short, or holds blocks that were
// never written; version names are never reused, so a matching file can
// only be this version's.
func missing(files *fileStore, ps []*pending) (bad []*pending, whole []string, err error) {
	for _, p := range ps {
		ok, err := sameFile(filepath.Join(files.root, filepath.FromSlash(p.name)), p.data)
		if err != nil {
			return nil, nil, err
		}
		if ok {
			whole = append(whole, p.name)
		} else {
			bad = append(bad, p)
		}
	}
	return bad, whole, nil
}

// sameFile reports whether path is a regular file holding exactly data.
func sameFile(path string, data []byte) (bool, error) {
	info, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !info.Mode().IsRegular() || info.Size() != int64(len(data)) {
		return false, nil
	}
	got, err := os.ReadFile(path)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", path, err)
	}
	return bytes.Equal(got, data), nil
}
