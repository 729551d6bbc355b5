package state

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	rtmetrics "runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The benchmarks compare the state service, end to end over loopback HTTP
// into a file:// store, with the raw file operations it cannot avoid, in the
// same directory tree (b.TempDir). docs/benchmarks.md has the numbers.

func benchServer(b *testing.B) (*testServer, string) {
	b.Helper()
	store, dir := newFileStore(b)
	return newTestServer(b, store, Options{Logger: slog.New(slog.DiscardHandler)}), dir
}

func put(b *testing.B, client *http.Client, url string, body io.Reader, size int64) {
	b.Helper()
	req, err := http.NewRequest(http.MethodPut, url, body)
	if err != nil {
		b.Fatal(err)
	}
	req.ContentLength = size
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		b.Fatalf("PUT: %s", resp.Status)
	}
}

// rawWrite is the durable write the store must at least do: create, write,
// fsync, close, rename; syncDir adds the directory fsync that makes the
// rename itself survive a crash.
func rawWrite(b *testing.B, dir string, i int, chunk []byte, n int, syncDirToo bool) {
	tmp := filepath.Join(dir, "tmp-"+strconv.Itoa(i))
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	for range n {
		if _, err := f.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "v-"+strconv.Itoa(i))); err != nil {
		b.Fatal(err)
	}
	if syncDirToo {
		if err := syncDir(dir); err != nil {
			b.Fatal(err)
		}
	}
}

// cpuTime is the CPU time (user and system) this process has used: the
// machine is shared, so wall-clock numbers vary with the neighbours' load
// while CPU per operation does not.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
}

func BenchmarkSave4KiB(b *testing.B) {
	payload := bytes.Repeat([]byte("s"), 4096)
	b.Run("handler", func(b *testing.B) {
		ts, _ := benchServer(b)
		client := &http.Client{}
		url := ts.URL + "/v1/state/team-a/bench"
		b.SetBytes(int64(len(payload)))
		cpu := cpuTime()
		for b.Loop() {
			put(b, client, url, bytes.NewReader(payload), int64(len(payload)))
		}
		reportCPU(b, cpu)
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "saves/s")
	})
	// Many pods dying at once: 8 concurrent clients, one key each. The file
	// system batches their fsyncs into shared journal commits.
	b.Run("handler-parallel", func(b *testing.B) {
		ts, _ := benchServer(b)
		var next atomic.Int32
		b.SetBytes(int64(len(payload)))
		b.SetParallelism(4)
		cpu := cpuTime()
		b.RunParallel(func(pb *testing.PB) {
			client := &http.Client{}
			url := ts.URL + "/v1/state/team-a/bench-" + strconv.Itoa(int(next.Add(1)))
			for pb.Next() {
				put(b, client, url, bytes.NewReader(payload), int64(len(payload)))
			}
		})
		reportCPU(b, cpu)
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "saves/s")
	})
	b.Run("raw-fsync-rename-dirsync-parallel", func(b *testing.B) {
		dir := b.TempDir()
		var next atomic.Int32
		b.SetBytes(int64(len(payload)))
		b.SetParallelism(4)
		cpu := cpuTime()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				rawWrite(b, dir, int(next.Add(1)), payload, 1, true)
			}
		})
		reportCPU(b, cpu)
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "saves/s")
	})
	b.Run("store", func(b *testing.B) {
		store, _ := newFileStore(b)
		b.SetBytes(int64(len(payload)))
		cpu := cpuTime()
		for b.Loop() {
			if _, err := store.Put(context.Background(), PutOptions{Namespace: "team-a", Key: "bench", Created: time.Now()}, bytes.NewReader(payload)); err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, cpu)
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "saves/s")
	})
	for _, c := range []struct {
		name    string
		syncDir bool
	}{{"raw-fsync-rename", false}, {"raw-fsync-rename-dirsync", true}} {
		b.Run(c.name, func(b *testing.B) {
			dir := b.TempDir()
			b.SetBytes(int64(len(payload)))
			i := 0
			cpu := cpuTime()
			for b.Loop() {
				rawWrite(b, dir, i, payload, 1, c.syncDir)
				i++
			}
			reportCPU(b, cpu)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "saves/s")
		})
	}
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

// peakMemory samples the Go heap and the process RSS until stop is called.
// The RSS includes the test binary's own baseline (client-go's fake
// clientset and its schemas): startRSS reports it.
func peakMemory() (startRSS float64, stop func() (heapMiB, rssMiB float64)) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	var heap, rss uint64
	startRSS = float64(vmRSS()) / (1 << 20)
	sample := []rtmetrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	wg.Go(func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			rtmetrics.Read(sample)
			heap = max(heap, sample[0].Value.Uint64())
			rss = max(rss, vmRSS())
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	return startRSS, func() (float64, float64) {
		close(done)
		wg.Wait()
		return float64(heap) / (1 << 20), float64(rss) / (1 << 20)
	}
}

func vmRSS() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			var kb uint64
			_, _ = fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &kb)
			return kb << 10
		}
	}
	return 0
}

func BenchmarkUpload1GiB(b *testing.B) {
	const size = 1 << 30
	b.Run("handler", func(b *testing.B) {
		ts, _ := benchServer(b)
		client := &http.Client{}
		url := ts.URL + "/v1/state/team-a/big"
		b.SetBytes(size)
		var heap, rss, base float64
		cpu := cpuTime()
		for b.Loop() {
			start, stop := peakMemory()
			put(b, client, url, newPatternReader(size), size)
			h, r := stop()
			heap, rss, base = max(heap, h), max(rss, r), max(base, start)
			// Only the newest version matters here; keep the disk free.
			if err := ts.store.Delete(context.Background(), "team-a", "big", ""); err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, cpu)
		b.ReportMetric(heap, "peak-heap-MiB")
		b.ReportMetric(rss, "peak-rss-MiB")
		b.ReportMetric(base, "rss-before-MiB")
	})
	// The same write without HTTP: what the store itself costs.
	b.Run("store", func(b *testing.B) {
		store, _ := newFileStore(b)
		b.SetBytes(size)
		cpu := cpuTime()
		for b.Loop() {
			if _, err := store.Put(context.Background(), PutOptions{Namespace: "team-a", Key: "big", Created: time.Now()}, newPatternReader(size)); err != nil {
				b.Fatal(err)
			}
			if err := store.Delete(context.Background(), "team-a", "big", ""); err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, cpu)
	})
	b.Run("raw-write-fsync", func(b *testing.B) {
		dir := b.TempDir()
		chunk := newPatternReader(1 << 20).block
		b.SetBytes(size)
		i := 0
		cpu := cpuTime()
		for b.Loop() {
			rawWrite(b, dir, i, chunk, size/len(chunk), false)
			if err := os.Remove(filepath.Join(dir, "v-"+strconv.Itoa(i))); err != nil {
				b.Fatal(err)
			}
			i++
		}
		reportCPU(b, cpu)
	})
}
