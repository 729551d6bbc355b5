package state

import (
	"fmt"
	"hash"
	"io"
	"sync"
	"sync/atomic"
)

// Uploads stream through a few fixed buffers: memory stays at
// copyBuffers*copyBufferSize per upload whatever the object's size.
const (
	copyBufferSize = 256 << 10
	copyBuffers    = 4
)

// buffer is shared by the hasher and the writer; the last one done with it
// hands it back for the next read.
type buffer struct {
	b    []byte
	refs atomic.Int32
}

func (b *buffer) release(free chan<- *buffer) {
	if b.refs.Add(-1) == 0 {
		free <- b // never blocks: free holds every buffer there is
	}
}

type chunk struct {
	buf *buffer
	n   int
	err error
}

// copyHashed copies src to dst and feeds every byte to h. Three stages run
// at once on each chunk in turn: a goroutine reads the next chunk while a
// second hashes and the caller writes the previous ones, so a large upload
// takes about as long as its slowest stage (usually the disk) rather than
// the sum. Read errors are wrapped in ErrIncompleteBody; write errors are
// returned as they are. h is complete when copyHashed returns.
//
// The caller has filled the first buffer from src already (n0 bytes, then
// err: Put looks at it to tell small saves from streams); copyHashed takes
// it over.
func (s *Store) copyHashed(dst io.Writer, src io.Reader, h hash.Hash, first *buffer, n0 int, err error) (n int64, _ error) {
	// Most saves fit in one buffer: they are copied right here, with no
	// goroutine to start and wake up.
	if err != nil {
		defer s.buffers.Put(first)
		if err != io.EOF {
			return 0, fmt.Errorf("%w after %d bytes: %w", ErrIncompleteBody, n0, err)
		}
		h.Write(first.b[:n0])
		if _, err := dst.Write(first.b[:n0]); err != nil {
			return 0, err
		}
		return int64(n0), nil
	}

	free := make(chan *buffer, copyBuffers)
	toHash := make(chan chunk, copyBuffers)
	toWrite := make(chan chunk, copyBuffers)
	done := make(chan struct{})
	first.refs.Store(2)
	toHash <- chunk{first, n0, nil}
	toWrite <- chunk{first, n0, nil}
	for range copyBuffers - 1 {
		free <- s.buffers.Get().(*buffer)
	}
	var wg sync.WaitGroup
	wg.Go(func() { readChunks(src, free, toHash, toWrite, done) })
	wg.Go(func() {
		// Hashes every chunk read, in order, until the reader stops.
		for c := range toHash {
			h.Write(c.buf.b[:c.n])
			c.buf.release(free)
		}
	})
	defer func() {
		close(done)
		wg.Wait() // the reader may finish a blocked Read first
		for c := range toWrite {
			c.buf.release(free)
		}
		close(free)
		for b := range free {
			s.buffers.Put(b)
		}
	}()
	for c := range toWrite {
		if c.n > 0 {
			if _, err := dst.Write(c.buf.b[:c.n]); err != nil {
				c.buf.release(free)
				return n, err
			}
			n += int64(c.n)
		}
		c.buf.release(free)
		if c.err == io.EOF {
			return n, nil
		}
		if c.err != nil {
			return n, fmt.Errorf("%w after %d bytes: %w", ErrIncompleteBody, n, c.err)
		}
	}
	return n, nil
}

// readChunks fills free buffers from src and passes each to both the hasher
// and the writer, until src ends or fails or done is closed. Sends never
// block: each channel can hold every buffer there is.
func readChunks(src io.Reader, free <-chan *buffer, toHash, toWrite chan<- chunk, done <-chan struct{}) {
	defer close(toWrite)
	defer close(toHash)
	for {
		var b *buffer
		select {
		case b = <-free:
		case <-done:
			return
		}
		n, err := fill(src, b.b)
		b.refs.Store(2)
		toHash <- chunk{b, n, err}
		toWrite <- chunk{b, n, err}
		if err != nil {
			return
		}
	}
}

// fill reads until b is full or src fails. Unlike io.ReadFull it passes the
// reader's own error through: an HTTP body reports a truncated upload as
// io.ErrUnexpectedEOF, which must not be mistaken for a normal end.
func fill(src io.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := src.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
