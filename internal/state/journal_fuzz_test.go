package state

import (
	"bytes"
	"testing"
)

// FuzzJournalRecord: the decoder never panics or over-reads, and what it
// accepts re-encodes to the same bytes (so a garbled segment cannot pass
// for a different record).
func FuzzJournalRecord(f *testing.F) {
	f.Add(appendRecord(nil, 1, "team-a/13/k@20261125T060000.000000000Z-0000", []byte("data")))
	f.Add(appendRecord(nil, 1<<40, "n", nil))
	f.Add([]byte(recordMagic))
	f.Add(make([]byte, recordHeaderLen))
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, n, err := decodeRecord(b)
		if err != nil {
			return
		}
		if n > len(b) {
			t.Fatalf("decoded %d bytes of %d", n, len(b))
		}
		if again := appendRecord(nil, rec.seq, rec.name, rec.data); !bytes.Equal(again, b[:n]) {
			t.Fatalf("re-encoded %x, decoded from %x", again, b[:n])
		}
	})
}
