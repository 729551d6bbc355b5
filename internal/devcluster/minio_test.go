package devcluster

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// fakeGoForMinio puts a `go` first in PATH that logs its arguments to the returned
// file and then runs script (sh).
func fakeGoForMinio(t *testing.T, script string) (calls string) {
	t.Helper()
	dir := t.TempDir()
	calls = filepath.Join(dir, "calls")
	body := "#!/bin/sh\necho \"$@\" >> " + calls + "\n" + script + "\n"
	if err := os.WriteFile(filepath.Join(dir, "go"), []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return calls
}

func TestEnsureMinioBuildsOnceForConcurrentCallers(t *testing.T) {
	calls := fakeGoForMinio(t, `sleep 0.3; printf 'minio binary' > "$GOBIN/minio"`)
	cache := t.TempDir()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var progress bytes.Buffer
	paths := make([]string, 3)
	errs := make([]error, 3)
	for i := range paths {
		wg.Go(func() {
			var out bytes.Buffer
			paths[i], errs[i] = EnsureMinio(context.Background(), MinioOptions{CacheDir: cache, Progress: &out})
			mu.Lock()
			progress.Write(out.Bytes())
			mu.Unlock()
		})
	}
	wg.Wait()
	want := filepath.Join(cache, MinioVersion, "minio")
	for i := range paths {
		if errs[i] != nil || paths[i] != want {
			t.Fatalf("caller %d: %q, %v; want %s", i, paths[i], errs[i], want)
		}
	}
	log, err := os.ReadFile(calls)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(log), "\n"); n != 1 || !strings.Contains(string(log), "install -trimpath -ldflags -s -w github.com/minio/minio@"+MinioVersion) {
		t.Fatalf("go was called %d times: %q; want one go install", n, log)
	}
	if b, err := os.ReadFile(want); err != nil || string(b) != "minio binary" {
		t.Fatalf("installed binary %q, %v", b, err)
	}
	if !strings.Contains(progress.String(), "installing MinIO") || !strings.Contains(progress.String(), "installed MinIO") {
		t.Fatalf("progress %q does not say what is built", progress.String())
	}
	// Cached: no second build.
	if _, err := EnsureMinio(context.Background(), MinioOptions{CacheDir: cache, Progress: &progress}); err != nil {
		t.Fatal(err)
	}
	if log2, _ := os.ReadFile(calls); len(log2) != len(log) {
		t.Fatalf("a cached binary was rebuilt: %q", log2)
	}
}

func TestEnsureMinioFailureInstallsNothing(t *testing.T) {
	fakeGoForMinio(t, `printf 'partial' > "$GOBIN/minio"; echo "go: module lookup disabled" >&2; exit 1`)
	cache := t.TempDir()
	_, err := EnsureMinio(context.Background(), MinioOptions{CacheDir: cache, Progress: &bytes.Buffer{}})
	if err == nil || !strings.Contains(err.Error(), "module lookup disabled") {
		t.Fatalf("failed build: %v, want the go command's output", err)
	}
	if _, err := os.Stat(filepath.Join(cache, MinioVersion, "minio")); !os.IsNotExist(err) {
		t.Fatalf("a failed build left a binary behind: %v", err)
	}
}
