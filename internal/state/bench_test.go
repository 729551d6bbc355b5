package state

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"testing"
)

// The benchmarks compare the state service, end to end over loopback HTTP
// into a file:// store, with the raw operations it cannot avoid, on the same
// disk and in the same run: each b.N iteration is one round of every side,
// back to back, so that all see the same load of a shared machine, and the
// reported numbers are medians over the rounds. docs/benchmarks.md has the
// numbers.

// benchServer serves a file:// store with Run going, as on the leader of
// `lastcall server` (retention of written keys happens in the background).
func benchServer(b *testing.B) (*testServer, string) {
	b.Helper()
	store, dir := newFileStore(b)
	ts := newTestServer(b, store, Options{Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ts.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		<-done
	})
	return ts, dir
}

func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	return s[len(s)/2]
}

// patternReader yields size bytes of incompressible data from one 1 MiB
// block, so the client side allocates nothing per byte.
type patternReader struct {
	block []byte
	left  int64
	off   int
}

func newPatternReader(size int64) *patternReader {
	block := make([]byte, 1<<20)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range block {
		block[i] = byte(r.Uint32())
	}
	return &patternReader{block: block, left: size}
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.left == 0 {
		return 0, io.EOF
	}
	n := copy(b[:min(int64(len(b)), p.left)], p.block[p.off:])
	p.off = (p.off + n) % len(p.block)
	p.left -= int64(n)
	return n, nil
}

// WriteTo hands the HTTP client whole 1 MiB blocks, so the benchmark's
// client side costs as few syscalls as a real uploader's would.
func (p *patternReader) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for p.left > 0 {
		m, err := w.Write(p.block[:min(int64(len(p.block)), p.left)])
		n += int64(m)
		p.left -= int64(m)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
