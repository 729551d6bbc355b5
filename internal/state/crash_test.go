package state

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The crash tests re-run the test binary as a child that writes to a
// file:// store and is SIGKILLed mid-write. These variables tell the child
// what to do; TestMain calls runCrashChild first.
const (
	crashDirEnv   = "LASTCALL_STATE_CRASH_DIR"
	crashPointEnv = "LASTCALL_STATE_CRASH_POINT"
)

// runCrashChild is the child's whole life when crashDirEnv is set: start a
// write, say "ready" on stdout at the crash point, and block until killed.
func runCrashChild() {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		return
	}
	ready := func() {
		fmt.Println("ready")
		select {}
	}
	s, err := OpenStore(context.Background(), "file://"+dir)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	const size = 3 << 20
	body := io.Reader(bytes.NewReader(bytes.Repeat([]byte("n"), size)))
	switch os.Getenv(crashPointEnv) {
	case "mid-body":
		// Half the payload, then a body that never ends.
		body = io.MultiReader(io.LimitReader(body, size/2), blockingReader{ready})
	case "before-commit":
		s.beforeCommit = ready
	}
	_, err = s.Put(context.Background(), PutOptions{Namespace: "team-a", Key: "k", Created: time.Now()}, body)
	fmt.Println("put returned:", err)
	os.Exit(2)
}

type blockingReader struct{ ready func() }

func (b blockingReader) Read([]byte) (int, error) { b.ready(); return 0, nil }

func TestKilledWriterLeavesPreviousVersionAndNoPartialOne(t *testing.T) {
	for _, point := range []string{"mid-body", "before-commit"} {
		t.Run(point, func(t *testing.T) {
			store, dir := newFileStore(t)
			ctx := context.Background()
			prev, err := store.Put(ctx, PutOptions{Namespace: "team-a", Key: "k", Created: time.Now().Add(-time.Minute)}, strings.NewReader("previous"))
			if err != nil {
				t.Fatal(err)
			}
			before := files(t, dir)

			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashPointEnv+"="+point)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			line, _ := bufio.NewReader(out).ReadString('\n')
			if line != "ready\n" {
				_ = cmd.Process.Kill()
				t.Fatalf("child said %q", line)
			}
			_ = cmd.Process.Kill() // SIGKILL: no deferred cleanup runs
			_ = cmd.Wait()

			after := files(t, dir)
			if len(after) != len(before)+1 {
				t.Fatalf("files after the crash %v, want %v plus the dead write's temp file", after, before)
			}
			obj, err := store.Open(ctx, "team-a", "k", "")
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(obj)
			obj.Close()
			if string(got) != "previous" || obj.ID != prev.ID {
				t.Fatalf("after the crash the key reads %q (version %s), want the previous version", got, obj.ID)
			}
			items, err := store.List(ctx, "team-a")
			if err != nil || len(items) != 1 || len(items[0].Versions) != 1 {
				t.Fatalf("after the crash List = %+v, %v; want the one previous version", items, err)
			}

			// The temp file is cleaned up once it is clearly abandoned.
			if _, err := store.PruneAll(ctx, Policy{}, time.Now()); err != nil {
				t.Fatal(err)
			}
			if len(files(t, dir)) != len(after) {
				t.Fatal("a fresh temp file (maybe a live upload) was removed")
			}
			// Age the temp file as an hour without a write would.
			old := time.Now().Add(-staleTempAge - time.Minute)
			for _, f := range after {
				if strings.HasSuffix(f, ".tmp") {
					if err := os.Chtimes(filepath.Join(dir, f), old, old); err != nil {
						t.Fatal(err)
					}
				}
			}
			if _, err := store.PruneAll(ctx, Policy{}, time.Now()); err != nil {
				t.Fatal(err)
			}
			if got := files(t, dir); strings.Join(got, ",") != strings.Join(before, ",") {
				t.Fatalf("after pruning, files %v, want %v", got, before)
			}
		})
	}
}

// putPrevious stores a version through the API and returns the state
// directory's files with it in place.
func putPrevious(t *testing.T, ts *testServer, dir string) []string {
	t.Helper()
	if r := do(t, http.MethodPut, ts.URL+"/v1/state/team-a/k", adminToken, "previous", nil); r.code != http.StatusCreated {
		t.Fatalf("PUT previous: %d %s", r.code, r.body)
	}
	return files(t, dir)
}

func assertPreviousIntact(t *testing.T, ts *testServer, dir string, want []string) {
	t.Helper()
	r := do(t, http.MethodGet, ts.URL+"/v1/state/team-a/k", adminToken, nil, nil)
	if r.code != http.StatusOK || string(r.body) != "previous" {
		t.Fatalf("GET after the failed write: %d %q", r.code, r.body)
	}
	items, err := ts.store.List(context.Background(), "team-a")
	if err != nil || len(items) != 1 || len(items[0].Versions) != 1 {
		t.Fatalf("List after the failed write = %+v, %v", items, err)
	}
	if got := files(t, dir); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("files after the failed write %v, want %v", got, want)
	}
}

func TestChecksumMismatchKeepsPreviousVersion(t *testing.T) {
	store, dir := newFileStore(t)
	ts := newTestServer(t, store, Options{})
	want := putPrevious(t, ts, dir)
	body := bytes.Repeat([]byte("z"), 3*testChunk+7) // several chunks reach the temp file
	r := do(t, http.MethodPut, ts.URL+"/v1/state/team-a/k", adminToken, body, map[string]string{HeaderSHA256: sum([]byte("else"))})
	if r.code != http.StatusBadRequest || r.errorBody(t).Reason != ReasonChecksumMismatch {
		t.Fatalf("PUT with a wrong checksum: %d %s", r.code, r.body)
	}
	assertPreviousIntact(t, ts, dir, want)
}

// rawPut opens a connection and sends a PUT's headers and the first part of
// its body.
func rawPut(t *testing.T, ts *testServer, headers string, part []byte) *net.TCPConn {
	t.Helper()
	u, _ := url.Parse(ts.URL)
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	req := "PUT /v1/state/team-a/k HTTP/1.1\r\nHost: " + u.Host + "\r\nAuthorization: Bearer " + adminToken + "\r\n" + headers + "\r\n"
	if _, err := c.Write(append([]byte(req), part...)); err != nil {
		t.Fatal(err)
	}
	return c.(*net.TCPConn)
}

func TestTruncatedUploadKeepsPreviousVersion(t *testing.T) {
	// Within the first buffer (copied inline) and beyond it (pipelined).
	for _, size := range []int{100, testChunk + 100} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			store, dir := newFileStore(t)
			ts := newTestServer(t, store, Options{})
			want := putPrevious(t, ts, dir)
			part := bytes.Repeat([]byte("t"), size)
			c := rawPut(t, ts, fmt.Sprintf("Content-Length: %d\r\n", 3*len(part)), part)
			_ = c.CloseWrite() // the body ends early; the response can still come back
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), ReasonIncompleteBody) {
				t.Fatalf("truncated PUT: %d %s", resp.StatusCode, b)
			}
			assertPreviousIntact(t, ts, dir, want)
		})
	}
}

func TestClientGoneMidBodyKeepsPreviousVersion(t *testing.T) {
	store, dir := newFileStore(t)
	ts := newTestServer(t, store, Options{})
	want := putPrevious(t, ts, dir)
	chunk := bytes.Repeat([]byte("d"), testChunk)
	part := fmt.Appendf(nil, "%x\r\n%s\r\n", len(chunk), chunk)
	c := rawPut(t, ts, "Transfer-Encoding: chunked\r\n", bytes.Repeat(part, 2))
	// Wait until the server has a temp file open for this upload, then go.
	eventually(t, "the upload's temp file", func() bool { return len(files(t, dir)) > len(want) })
	c.Close()
	eventually(t, "the aborted PUT to finish", func() bool {
		return testutil.ToFloat64(ts.metrics.requests.WithLabelValues(opPut, "400")) == 1
	})
	assertPreviousIntact(t, ts, dir, want)
}

// TestPutAnswersOnlyOnceTheRenameIsDurable: the version's file is renamed
// into place, but Put (and so the 201) waits for its directory's fsync, and
// fails when that fsync fails: an acknowledged version survives a power
// loss. (A killed process cannot show this, since the page cache outlives
// it; the order of the syncs is what the kernel makes durable.)
func TestPutAnswersOnlyOnceTheRenameIsDurable(t *testing.T) {
	store, dir := newFileStore(t)
	entered, release := make(chan string, 1), make(chan error)
	store.files.syncDir = func(d string) error {
		entered <- d
		return <-release
	}
	type result struct {
		m   Meta
		err error
	}
	done := make(chan result, 1)
	put := func() {
		m, err := store.Put(context.Background(), PutOptions{Namespace: "team-a", Key: "k", Created: time.Now()}, strings.NewReader("state"))
		done <- result{m, err}
	}
	go put()
	synced := <-entered
	if want := filepath.Join(dir, "team-a", shard("k")); synced != want {
		t.Fatalf("synced %s, want the version's directory %s", synced, want)
	}
	select {
	case r := <-done:
		t.Fatalf("Put returned %+v before its directory was synced", r)
	default:
	}
	release <- errors.New("EIO")
	if r := <-done; r.err == nil {
		t.Fatalf("Put acknowledged a version whose directory sync failed: %+v", r.m)
	}

	// With the sync working, the same Put succeeds (the first use of the
	// namespace's directories also syncs their parents).
	go func() {
		for range entered {
			release <- nil
		}
	}()
	go put()
	if r := <-done; r.err != nil {
		t.Fatal(r.err)
	}
	close(entered)
}

// TestTrailerChecksumIsCheckedBeforeCommit: a streamed upload can send its
// SHA-256 after the body, as an HTTP trailer (lastcall prestop does); a
// mismatch stores nothing, a match stores the version.
func TestTrailerChecksumIsCheckedBeforeCommit(t *testing.T) {
	store, dir := newFileStore(t)
	ts := newTestServer(t, store, Options{})
	want := putPrevious(t, ts, dir)
	body := bytes.Repeat([]byte("t"), 2*testChunk+3)
	putTrailer := func(digest string) reply {
		t.Helper()
		pr, pw := io.Pipe()
		req, err := http.NewRequest(http.MethodPut, ts.URL+"/v1/state/team-a/k", pr)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+adminToken)
		req.Trailer = http.Header{HeaderSHA256: nil}
		go func() {
			_, _ = pw.Write(body)
			req.Trailer.Set(HeaderSHA256, digest) // set before the body's EOF
			pw.Close()
		}()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return reply{code: resp.StatusCode, body: b}
	}
	if r := putTrailer(sum([]byte("not the body"))); r.code != http.StatusBadRequest || r.errorBody(t).Reason != ReasonChecksumMismatch {
		t.Fatalf("PUT with a wrong trailer: %d %s", r.code, r.body)
	}
	assertPreviousIntact(t, ts, dir, want)
	if r := putTrailer(strings.ToUpper(sum(body))); r.code != http.StatusCreated || r.meta(t).SHA256 != sum(body) {
		t.Fatalf("PUT with the right trailer: %d %s", r.code, r.body)
	}
}
