package state

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	testingclock "k8s.io/utils/clock/testing"
)

func versionsOf(t *testing.T, s *Store, ns, key string) []string {
	t.Helper()
	vs, err := s.listVersions(context.Background(), ns, key)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, v := range vs {
		out = append(out, v.version)
	}
	return out
}

func TestEachWriteKeepsOnlyTheNewestVersions(t *testing.T) {
	store, _ := newFileStore(t)
	clk := testingclock.NewFakeClock(time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC))
	ts := newTestServer(t, store, Options{Clock: clk, KeepVersions: 3})
	var written []string
	for i := range 6 {
		clk.Step(time.Minute)
		r := do(t, http.MethodPut, ts.URL+"/v1/state/team-a/k", adminToken, strconv.Itoa(i), nil)
		written = append(written, r.meta(t).ID)
		// Another key's versions are not counted with these.
		do(t, http.MethodPut, ts.URL+"/v1/state/team-a/k/sub", adminToken, "x", nil)
	}
	// The last write prunes after it has answered.
	want := strings.Join([]string{written[5], written[4], written[3]}, ",")
	eventually(t, "the newest three versions of k", func() bool {
		return strings.Join(versionsOf(t, store, "team-a", "k"), ",") == want
	})
	eventually(t, "three versions of k/sub", func() bool { return len(versionsOf(t, store, "team-a", "k/sub")) == 3 })
}

func TestRetentionPrunesOldVersionsOnRunsSchedule(t *testing.T) {
	store, dir := newFileStore(t)
	start := time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC)
	clk := testingclock.NewFakeClock(start)
	ts := newTestServer(t, store, Options{Clock: clk, Retention: 48 * time.Hour, PruneInterval: time.Hour})
	put := func(key string) {
		t.Helper()
		if r := do(t, http.MethodPut, ts.URL+"/v1/state/team-a/"+key, adminToken, key, nil); r.code != http.StatusCreated {
			t.Fatalf("PUT %s: %d %s", key, r.code, r.body)
		}
	}
	put("old")
	clk.Step(47 * time.Hour)
	put("young")
	// A temp file abandoned by a crashed write, and the live one of an
	// upload in progress.
	tmpDir := filepath.Join(dir, "team-a", shard("young"))
	abandoned := filepath.Join(tmpDir, "young@20261125T060000.000000000Z-0000.17f0a1b2c3d4.tmp")
	live := filepath.Join(tmpDir, "young@20261127T050000.000000000Z-0000.180a1b2c3d4e.tmp")
	// Not a version's temp file: foreign, never removed.
	foreign := filepath.Join(tmpDir, "notes.tmp")
	for _, f := range []string{abandoned, live, foreign} {
		if err := os.WriteFile(f, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * staleTempAge)
	for _, f := range []string{abandoned, foreign} {
		if err := os.Chtimes(f, old, old); err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ts.Run(ctx) }()

	// The first pass runs at once; it ends with the temp files. Nothing is
	// 48 h old yet.
	eventually(t, "the first pass to remove the abandoned temp file", func() bool {
		_, err := os.Stat(abandoned)
		return os.IsNotExist(err)
	})
	if n := len(versionsOf(t, store, "team-a", "old")); n != 1 {
		t.Fatalf("old pruned %d versions too early", 1-n)
	}

	clk.Step(2 * time.Hour) // old is now 49 h old, young 2 h
	eventually(t, "old to be pruned", func() bool { return len(versionsOf(t, store, "team-a", "old")) == 0 })
	if n := len(versionsOf(t, store, "team-a", "young")); n != 1 {
		t.Fatalf("young has %d versions, want 1", n)
	}
	for _, f := range []string{live, foreign} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("%s removed: %v", f, err)
		}
	}
	if r := do(t, http.MethodGet, ts.URL+"/v1/state/team-a/old", adminToken, nil, nil); r.code != http.StatusNotFound {
		t.Fatalf("GET old after retention: %d", r.code)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

// TestWritePrunesItsKey: each write applies retention to its key once its
// answer is out, whether or not Run runs.
func TestWritePrunesItsKey(t *testing.T) {
	store, _ := newFileStore(t)
	clk := testingclock.NewFakeClock(time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC))
	ts := newTestServer(t, store, Options{Clock: clk, KeepVersions: 2})
	for i := range 5 {
		clk.Step(time.Minute)
		if r := do(t, http.MethodPut, ts.URL+"/v1/state/team-a/k", adminToken, strconv.Itoa(i), nil); r.code != http.StatusCreated {
			t.Fatalf("PUT: %d %s", r.code, r.body)
		}
	}
	eventually(t, "the writes to prune k to 2 versions", func() bool { return len(versionsOf(t, store, "team-a", "k")) == 2 })
}
