package state

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"testing"
)

// BenchmarkSave64KiB measures saves end to end: loopback HTTP, the static
// token, a crash-atomic file:// write (temp file, fsync, rename, directory
// fsync) and retention in the background, as on the leader of `lastcall
// server`. Each save is a new key, as when a fleet of pods dies at once.
//
//	go test -run XXX -bench Save64KiB ./internal/state/
func BenchmarkSave64KiB(b *testing.B) {
	store, _ := newFileStore(b)
	ts := newTestServer(b, store, Options{Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ts.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		<-done
	})
	payload := bytes.Repeat([]byte("s"), 64<<10)
	var n atomic.Int64
	b.SetBytes(int64(len(payload)))
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			url := fmt.Sprintf("%s/v1/state/team-a/pod-%d", ts.URL, n.Add(1))
			req, err := http.NewRequest(http.MethodPut, url, bytes.NewReader(payload))
			if err != nil {
				b.Error(err)
				return
			}
			req.Header.Set("Authorization", "Bearer "+adminToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				b.Errorf("PUT %s: %s", url, resp.Status)
				return
			}
		}
	})
}
