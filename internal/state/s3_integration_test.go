//go:build integration

package state

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lastcall-dev/lastcall/internal/devcluster/miniotest"
)

// startMinio runs a MinIO server for t, creates a bucket and returns the
// s3:// URL of the bucket.
func startMinio(t *testing.T) string { return miniotest.Start(t).URL }

func TestS3StoreRoundTripsAndAbortsCleanly(t *testing.T) {
	s, err := OpenStore(context.Background(), startMinio(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()

	// Large enough for a multipart upload (s3blob sends 5 MiB parts).
	payload := bytes.Repeat([]byte("0123456789abcdef"), 12<<20/16)
	prev, err := s.Put(ctx, PutOptions{Namespace: "ns", Key: "app/cache.tar", ContentType: "application/x-tar", Pod: "web-0", Created: time.Now(), SHA256: sum(payload)}, bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	obj, err := s.Open(ctx, "ns", "app/cache.tar", "")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(obj)
	obj.Close()
	if err != nil || !bytes.Equal(got, payload) || obj.Meta != prev {
		t.Fatalf("read back %d bytes, %v, meta %+v", len(got), err, obj.Meta)
	}

	// A wrong checksum and a body that fails halfway both leave nothing.
	if _, err := s.Put(ctx, PutOptions{Namespace: "ns", Key: "app/cache.tar", Created: time.Now(), SHA256: sum([]byte("x"))}, bytes.NewReader(payload)); !errors.Is(err, ErrChecksumMismatch) {
		t.Fatalf("checksum mismatch: %v", err)
	}
	broken := io.MultiReader(bytes.NewReader(payload), failingReader{})
	if _, err := s.Put(ctx, PutOptions{Namespace: "ns", Key: "app/cache.tar", Created: time.Now()}, broken); !errors.Is(err, ErrIncompleteBody) {
		t.Fatalf("broken body: %v", err)
	}
	items, err := s.List(ctx, "ns")
	if err != nil || len(items) != 1 || len(items[0].Versions) != 1 || items[0].Versions[0] != prev.Version {
		t.Fatalf("after the failed writes List = %+v, %v", items, err)
	}
	n := 0
	it := s.bucket.List(nil)
	for {
		if _, err := it.Next(ctx); err != nil {
			break
		}
		n++
	}
	if n != 1 {
		t.Fatalf("bucket holds %d objects, want 1", n)
	}

	if err := s.Delete(ctx, "ns", "app/cache.tar", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(ctx, "ns", "app/cache.tar", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after Delete: %v", err)
	}
}

func TestS3StoreServesTheHTTPAPI(t *testing.T) {
	s, err := OpenStore(context.Background(), startMinio(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	ts := newTestServer(t, s, Options{})
	url := ts.URL + "/v1/state/team-a/k"
	if r := do(t, http.MethodPut, url, adminToken, strings.NewReader("over s3"), nil); r.code != http.StatusCreated {
		t.Fatalf("PUT: %d %s", r.code, r.body)
	}
	if r := do(t, http.MethodGet, url, adminToken, nil, nil); r.code != http.StatusOK || string(r.body) != "over s3" {
		t.Fatalf("GET: %d %s", r.code, r.body)
	}
	if r := do(t, http.MethodPut, url, adminToken, "bad", map[string]string{HeaderSHA256: sum([]byte("good"))}); r.code != http.StatusBadRequest {
		t.Fatalf("PUT with a wrong checksum: %d %s", r.code, r.body)
	}
	if r := do(t, http.MethodGet, url, adminToken, nil, nil); string(r.body) != "over s3" {
		t.Fatalf("GET after the refused PUT: %s", r.body)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }
