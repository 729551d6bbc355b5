package state

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runJournalCrashChild is the child's life for the journal's crash points:
// its saves are acknowledged by the journal and never materialised (the
// pause it waits for is hours), then it says "ready <version>" and blocks
// until killed.
func runJournalCrashChild(dir, point string) {
	s, err := openStore(context.Background(), "file://"+dir, held)
	if err != nil || s.journal == nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	put := func(key, payload string) Meta {
		m, err := s.Put(context.Background(), PutOptions{Namespace: "team-a", Key: key, Created: time.Now()}, strings.NewReader(payload))
		if err != nil {
			fmt.Println("put:", err)
			os.Exit(2)
		}
		return m
	}
	m := put("k", "acknowledged")
	switch point {
	case "journal-acked":
	case "journal-torn":
		// The next record half written, as a power cut mid-write leaves it.
		j := s.journal
		j.mu.Lock()
		rec := appendRecord(nil, j.next, objectName("team-a", "k", newVersion(time.Now())), []byte("torn"))
		_, err = j.seg.WriteAt(rec[:len(rec)/2], j.off)
		j.mu.Unlock()
	case "journal-deleted":
		err = s.Delete(context.Background(), "team-a", "k", m.ID)
	case "journal-renamed":
		// The materialiser's batch renamed into place, its syncfs and
		// checkpoint not reached; and one more write left as a temp file.
		put("short", "will be cut short")
		put("empty", "will be emptied")
		j := s.journal
		j.mu.Lock()
		batch := j.over.unmaterialised()
		j.mu.Unlock()
		for _, p := range batch {
			if err == nil {
				err = s.files.writeUnsynced(p.name, p.data)
			}
		}
		var v *fileVersion
		if v, err = s.files.create(objectName("team-a", "k", newVersion(time.Now()))); err == nil {
			_, err = v.Write([]byte("half"))
		}
	}
	if err != nil {
		fmt.Println(point+":", err)
		os.Exit(2)
	}
	fmt.Println("ready", m.ID)
	select {}
}

// crashJournalChild runs the child at point against dir, kills it once it
// is ready, and returns the version it acknowledged.
func crashJournalChild(t *testing.T, dir, point string) string {
	t.Helper()
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
	_ = cmd.Process.Kill() // SIGKILL: no Close, no materialisation
	_ = cmd.Wait()
	id, ok := strings.CutPrefix(strings.TrimSpace(line), "ready ")
	if !ok {
		t.Fatalf("child said %q", line)
	}
	return id
}

func TestKilledAfterJournalWriteKeepsAcknowledgedVersion(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	id := crashJournalChild(t, dir, "journal-acked")
	if f := files(t, dir); len(f) != 0 {
		t.Fatalf("the child materialised %v; the test needs the version in the journal only", f)
	}
	s, err := openStore(context.Background(), "file://"+dir, held)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Replayed into a file before OpenStore returned.
	if f := files(t, dir); len(f) != 1 || !strings.HasSuffix(f[0], "@"+id) {
		t.Fatalf("files after reopening %v, want version %s", f, id)
	}
	if got := readAll(t, s, "team-a", "k", id); got != "acknowledged" {
		t.Fatalf("version %s reads %q", id, got)
	}
	obj, err := s.Open(context.Background(), "team-a", "k", "")
	if err != nil {
		t.Fatal(err)
	}
	obj.Close()
	if obj.ID != id || obj.SHA256 != sum([]byte("acknowledged")) {
		t.Fatalf("newest is %s (sha256 %s), want %s", obj.ID, obj.SHA256, id)
	}
}

func TestKilledMidRecordKeepsPreviousVersionsAndNothingHalfVisible(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	id := crashJournalChild(t, dir, "journal-torn")
	s, err := openStore(context.Background(), "file://"+dir, held)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := s.listVersions(context.Background(), "team-a", "k")
	if err != nil || len(vs) != 1 || vs[0].version != id {
		t.Fatalf("versions after the torn record %+v, %v; want only %s", vs, err, id)
	}
	if got := readAll(t, s, "team-a", "k", ""); got != "acknowledged" {
		t.Fatalf("the key reads %q", got)
	}
	// The journal goes on from a clean start: a new save survives a restart.
	m := putString(t, s, "k", "after", time.Now())
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = openStore(context.Background(), "file://"+dir, held)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := readAll(t, s, "team-a", "k", m.ID); got != "after" {
		t.Fatalf("the save after the crash reads %q", got)
	}
}

func TestDeletedThenKilledIsNotResurrected(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	id := crashJournalChild(t, dir, "journal-deleted")
	s, err := openStore(context.Background(), "file://"+dir, held)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Open(context.Background(), "team-a", "k", id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted version %s after the crash: %v", id, err)
	}
	if f := files(t, dir); len(f) != 0 {
		t.Fatalf("files after the crash %v, want none", f)
	}
}

// TestKilledBeforeSyncfsRewritesFilesTheCrashCut: the materialiser renamed
// its batch into place without syncing, and the crash left one file short
// one empty and one zeros of the right size (as a power cut before the
// syncfs can), plus a temp file.
// Replay rewrites both from the journal before OpenStore returns.
func TestKilledBeforeSyncfsRewritesFilesTheCrashCut(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	crashJournalChild(t, dir, "journal-renamed")
	want := map[string]string{"k": "acknowledged", "short": "will be cut short", "empty": "will be emptied"}
	var versions []string
	for _, f := range files(t, dir) {
		if strings.HasSuffix(f, tempSuffix) {
			continue
		}
		versions = append(versions, f)
		ns, key, _, _ := splitName(f)
		switch path := filepath.Join(dir, filepath.FromSlash(f)); ns + "/" + key {
		case "team-a/short":
			if err := os.Truncate(path, int64(len(want["short"]))/2); err != nil {
				t.Fatal(err)
			}
		case "team-a/empty":
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
		case "team-a/k": // the right size, blocks never written
			info, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, make([]byte, info.Size()), 0o640); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(versions) != 3 {
		t.Fatalf("files before reopening %v, want the three renamed versions", files(t, dir))
	}
	s, err := openStore(context.Background(), "file://"+dir, held)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.journal.checkpoint != 3 {
		t.Fatalf("checkpoint %d after replay, want 3", s.journal.checkpoint)
	}
	for key, payload := range want {
		// readAll checks the payload against the footer's sha256.
		if got := readAll(t, s, "team-a", key, ""); got != payload {
			t.Fatalf("%s reads %q, want %q", key, got, payload)
		}
	}
	for _, f := range versions { // whole on disk, not only in memory
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f)))
		if err != nil {
			t.Fatal(err)
		}
		m, err := decodeFooter(b, int64(len(b)))
		if err != nil || m.SHA256 != sum(b[:m.Size]) || string(b[:m.Size]) != want[m.Key] {
			t.Fatalf("%s after replay: %q, %+v, %v", f, b, m, err)
		}
	}
	items, err := s.List(context.Background(), "team-a")
	if err != nil || len(items) != 3 {
		t.Fatalf("List = %+v, %v; want three keys of one version each, the temp file unseen", items, err)
	}
}
