package state

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// saveRound is how long each side of a comparison runs per round.
const saveRound = 500 * time.Millisecond

// cpuTime is the CPU time (user and system) this process has used: on a
// shared machine the wall-clock rate of either side follows the
// neighbours' load, the CPU each operation costs much less so.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rate runs op on conc workers until d has passed and returns the completed
// operations per second and the CPU time per operation in microseconds.
func rate(b *testing.B, conc int, d time.Duration, op func(worker, i int) error) (perSecond, cpuMicros float64) {
	b.Helper()
	cpu := cpuTime()
	var done atomic.Int64
	var failed atomic.Value
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range conc {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				if err := op(w, i); err != nil {
					failed.Store(err)
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	n := float64(done.Load())
	return n / time.Since(start).Seconds(), float64((cpuTime() - cpu).Microseconds()) / n
}

// quiesce returns once this process has gone quiet: under 2 ms of CPU in
// a 50 ms window, i.e. no background work of the side just measured is
// left to run inside the next one.
func quiesce(b *testing.B) {
	b.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		before := cpuTime()
		time.Sleep(50 * time.Millisecond)
		if cpuTime()-before < 2*time.Millisecond {
			return
		}
	}
	b.Fatal("the process did not go quiet within 30 s")
}

// rawFsync4KiB is the durable write a save cannot do with less: a new file
// of 4 KiB, written and fsync'd once. (It is not crash-atomic: a crash can
// leave it empty or short under its final name.) It goes into the same
// shard directory of root as the store would put the name, so that both
// sides spread over the same number of directories.
func rawFsync4KiB(root, name string, payload []byte) error {
	return writeSynced(filepath.Join(root, shard(name), name), payload)
}

// writeSynced creates path (it must not exist), writes payload and fsyncs.
func writeSynced(path string, payload []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Write(payload); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// rawShards creates the shard directories under a new root, durably, before
// any timing starts (the store's were made by its first saves).
func rawShards(b *testing.B) string {
	b.Helper()
	root := b.TempDir()
	for i := range 256 {
		dir := filepath.Join(root, fmt.Sprintf("%02x", i))
		if err := os.Mkdir(dir, 0o750); err != nil {
			b.Fatal(err)
		}
		if err := syncDir(dir); err != nil {
			b.Fatal(err)
		}
	}
	if err := syncDir(root); err != nil {
		b.Fatal(err)
	}
	return root
}

// BenchmarkSave4KiB compares 4 KiB saves through the API (loopback HTTP,
// authentication, a file:// store journalling them, retention) with raw
// fsync'd 4 KiB writes in Go, at the same concurrency. The journalled
// versions are written as files between rounds (api-with-files-saves/s
// counts that time as part of the API side's).
//
//   - fleet: pods dying once each, as in a rollout or a node drain: every
//     save is a new key of one namespace; the raw side writes as many new
//     files, spread over as many directories as the store's shards.
//   - restarts: each client saves under its own key again and again, as a
//     StatefulSet's pods do over restarts, so that retention deletes a
//     version per save; the raw side deletes its files likewise.
//
// Each b.N iteration is one round of both sides, back to back, so that both
// see the same machine load; the numbers are the medians over the rounds.
//
//	go test -run XXX -bench Save4KiB -benchtime 10x ./internal/state/
func BenchmarkSave4KiB(b *testing.B) {
	payload := bytes.Repeat([]byte("s"), 4096)
	for _, c := range []struct {
		scenario string
		conc     int
	}{{"fleet", 1}, {"fleet", 8}, {"fleet", 32}, {"restarts", 8}} {
		b.Run(fmt.Sprintf("%s/clients=%d", c.scenario, c.conc), func(b *testing.B) {
			ts, _ := benchServer(b)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: c.conc}}
			rawRoot := rawShards(b)
			var raws, apis, ratios, rawCPUs, apiCPUs, withFiless []float64
			round := 0
			for b.Loop() {
				round++
				name := func(w, i int) string { return fmt.Sprintf("pod-%d-%d-%d", round, w, i) }
				raw, rawCPU := rate(b, c.conc, saveRound, func(w, i int) error {
					if err := rawFsync4KiB(rawRoot, name(w, i), payload); err != nil {
						return err
					}
					if c.scenario == "restarts" && i >= DefaultKeepVersions {
						old := name(w, i-DefaultKeepVersions)
						return os.Remove(filepath.Join(rawRoot, shard(old), old))
					}
					return nil
				})
				api, apiCPU := rate(b, c.conc, saveRound, func(w, i int) error {
					key := name(w, i)
					if c.scenario == "restarts" {
						key = "pod-" + strconv.Itoa(w)
					}
					return putOnce(client, ts.URL+"/v1/state/team-a/"+key, payload)
				})
				// The journal's files are written once saves pause: here,
				// untimed, before the next raw side, which would otherwise
				// share the disk with them. with-files counts that time in.
				flushed := time.Now()
				if err := ts.store.journal.flush(context.Background()); err != nil {
					b.Fatal(err)
				}
				withFiles := api * saveRound.Seconds() / (saveRound + time.Since(flushed)).Seconds()
				withFiless = append(withFiless, withFiles)
				// Retention (Run prunes each key written) and the runtime's
				// own cleanup would otherwise run inside the next raw round,
				// slowing it and flattering the ratio.
				quiesce(b)
				// The raw files stay until the end: deleting thousands of
				// inodes between rounds would slow the next round's creates
				// (ext4 without a journal skips recently freed inodes).
				raws, apis, ratios = append(raws, raw), append(apis, api), append(ratios, 100*api/raw)
				rawCPUs, apiCPUs = append(rawCPUs, rawCPU), append(apiCPUs, apiCPU)
			}
			b.ReportMetric(median(raws), "raw-writes/s")
			b.ReportMetric(median(apis), "api-saves/s")
			b.ReportMetric(median(ratios), "api/raw-%")
			b.ReportMetric(median(withFiless), "api-with-files-saves/s")
			b.ReportMetric(median(rawCPUs), "raw-cpu-us/op")
			// The API side's CPU includes its in-process HTTP client.
			b.ReportMetric(median(apiCPUs), "api-cpu-us/op")
		})
	}
}

// putOnce stores payload with the admin token and checks the 201.
func putOnce(client *http.Client, url string, payload []byte) error {
	req, err := http.NewRequest(http.MethodPut, url, bytes.NewReader(payload))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("PUT %s: %s", url, resp.Status)
	}
	return nil
}
