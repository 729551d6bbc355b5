package state

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// atomicFsync4KiB is the least a crash-atomic save of a new version must
// do on a POSIX file system, with nothing else around it (no HTTP, no
// footer, no retention): write a temp file, fsync it, rename it into place
// and fsync the directory. A crash leaves the old state or the new one,
// never a short file under the final name; the price is a second flush.
func atomicFsync4KiB(root, name string, payload []byte) error {
	final := filepath.Join(root, shard(name), name)
	tmp := final + tempSuffix
	if err := writeSynced(tmp, payload); err != nil {
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	return syncDir(filepath.Dir(final))
}

// BenchmarkAtomicWrite4KiB measures what the crash-atomic protocol costs by
// itself against the raw fsync'd write BenchmarkSave4KiB compares the API
// with, round by round on the same disk: it bounds what any API built on
// that protocol can reach.
//
//	go test -run XXX -bench AtomicWrite4KiB -benchtime 10x ./internal/state/
func BenchmarkAtomicWrite4KiB(b *testing.B) {
	payload := bytes.Repeat([]byte("s"), 4096)
	for _, conc := range []int{1, 8} {
		b.Run(fmt.Sprintf("writers=%d", conc), func(b *testing.B) {
			rawRoot, atomicRoot := rawShards(b), rawShards(b)
			var raws, atomics, ratios []float64
			round := 0
			for b.Loop() {
				round++
				name := func(w, i int) string { return fmt.Sprintf("pod-%d-%d-%d", round, w, i) }
				raw, _ := rate(b, conc, saveRound, func(w, i int) error { return rawFsync4KiB(rawRoot, name(w, i), payload) })
				at, _ := rate(b, conc, saveRound, func(w, i int) error { return atomicFsync4KiB(atomicRoot, name(w, i), payload) })
				raws, atomics, ratios = append(raws, raw), append(atomics, at), append(ratios, 100*at/raw)
			}
			b.ReportMetric(median(raws), "raw-writes/s")
			b.ReportMetric(median(atomics), "atomic-writes/s")
			b.ReportMetric(median(ratios), "atomic/raw-%")
		})
	}
}
