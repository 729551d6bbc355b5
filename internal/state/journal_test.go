package state

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// held keeps journalled versions pending (no pause is long enough) until
// something forces them out.
var held = journalConfig{quiet: time.Hour}

func TestJournalRecordRoundTripsAndRejectsDamage(t *testing.T) {
	name := objectName("team-a", "k", "20261125T060000.000000000Z-0000")
	enc := appendRecord(nil, 42, name, []byte("payload and footer"))
	rec, n, err := decodeRecord(append(enc, "trailing"...))
	if err != nil || n != len(enc) || rec.seq != 42 || rec.name != name || string(rec.data) != "payload and footer" {
		t.Fatalf("decode = %+v, %d, %v", rec, n, err)
	}
	flip := func(i int) []byte {
		b := bytes.Clone(enc)
		b[i] ^= 1
		return b
	}
	for what, b := range map[string][]byte{
		"zeros":        make([]byte, len(enc)),
		"torn":         enc[:len(enc)-1],
		"header only":  enc[:recordHeaderLen],
		"magic":        flip(0),
		"sequence":     flip(5),
		"length":       flip(15),
		"body":         flip(len(enc) - 1),
		"checksum":     flip(crcOffset),
		"empty":        nil,
		"huge lengths": append(append([]byte(recordMagic), make([]byte, 8)...), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0),
	} {
		if _, _, err := decodeRecord(b); !errors.Is(err, errBadRecord) {
			t.Errorf("%s: decode = %v, want errBadRecord", what, err)
		}
	}
}

func version(i int) string {
	return time.Date(2026, 11, 25, 6, 0, i, 0, time.UTC).Format(versionLayoutForTest) + "-0000"
}

const versionLayoutForTest = "20060102T150405.000000000Z"

func TestReplayChainEndsAtStaleTornOrMissingRecords(t *testing.T) {
	rec := func(seq uint64, key string) []byte {
		return appendRecord(nil, seq, objectName("team-a", key, version(int(seq))), []byte(key))
	}
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	for _, c := range []struct {
		name    string
		segment []byte
		want    []uint64
	}{
		{"consecutive then zeros", cat(rec(5, "a"), rec(6, "b"), make([]byte, 100)), []uint64{5, 6}},
		{"stale record from an earlier lap", cat(rec(9, "a"), rec(10, "b"), rec(3, "c"), rec(4, "d")), []uint64{9, 10}},
		{"a sequence number skipped", cat(rec(1, "a"), rec(3, "b")), []uint64{1}},
		{"torn last record", cat(rec(1, "a"), rec(2, "b"), rec(3, "c")[:30]), []uint64{1, 2}},
		{"torn first record", cat(rec(1, "a")[:30], rec(2, "b")), nil},
		{"new lap over the old one's middle", cat(rec(20, "new"), rec(5, "old")[7:], rec(6, "old")), []uint64{20}},
		{"not a version name", cat(rec(1, "a"), appendRecord(nil, 2, "../../etc/passwd", []byte("x"))), []uint64{1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			recs, last, err := readChain(bytes.NewReader(c.segment))
			if err != nil {
				t.Fatal(err)
			}
			var got []uint64
			for _, r := range recs {
				got = append(got, r.seq)
			}
			if !equalSeqs(got, c.want) || (len(c.want) > 0 && last != c.want[len(c.want)-1]) {
				t.Fatalf("chain %v (last %d), want %v", got, last, c.want)
			}
		})
	}
}

func equalSeqs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestReplayWritesOnlyWhatTheCheckpointDoesNotCover builds a journal by
// hand: records 1 and 2, checkpoint 1. Opening the store materialises 2
// and not 1 (covered: its file was written, then maybe deleted).
func TestReplayWritesOnlyWhatTheCheckpointDoesNotCover(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	jdir := filepath.Join(dir, journalDir)
	if err := os.MkdirAll(jdir, 0o750); err != nil {
		t.Fatal(err)
	}
	obj := func(key string) (string, []byte) {
		m := Meta{Namespace: "team-a", Key: key, Version: Version{ID: version(1), Size: int64(len(key)), SHA256: sum([]byte(key)), ContentType: "text/plain"}}
		footer, err := encodeFooter(m)
		if err != nil {
			t.Fatal(err)
		}
		return objectName("team-a", key, m.ID), append([]byte(key), footer...)
	}
	deleted, deletedObj := obj("deleted")
	kept, keptObj := obj("kept")
	seg := append(appendRecord(nil, 1, deleted, deletedObj), appendRecord(nil, 2, kept, keptObj)...)
	if err := os.WriteFile(filepath.Join(jdir, "segment"), seg, 0o640); err != nil {
		t.Fatal(err)
	}
	cp, _, err := openCheckpoint(filepath.Join(jdir, "checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	if err := cp.write(1); err != nil {
		t.Fatal(err)
	}
	cp.close()

	s, err := openStore(context.Background(), "file://"+dir, held)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := files(t, dir); strings.Join(got, ",") != kept {
		t.Fatalf("files after replay %v, want only %s", got, kept)
	}
	if _, err := s.Open(context.Background(), "team-a", "deleted", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a record the checkpoint covers came back: %v", err)
	}
	if got := readAll(t, s, "team-a", "kept", ""); got != "kept" {
		t.Fatalf("kept reads %q", got)
	}
	if s.journal.checkpoint != 2 || s.journal.next != 3 || s.journal.off != 0 {
		t.Fatalf("after replay checkpoint %d, next %d, offset %d; want 2, 3, 0", s.journal.checkpoint, s.journal.next, s.journal.off)
	}
}

func readAll(t *testing.T, s *Store, ns, key, version string) string {
	t.Helper()
	obj, err := s.Open(context.Background(), ns, key, version)
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if err != nil {
		t.Fatal(err)
	}
	if obj.SHA256 != sum(b) {
		t.Fatalf("%s/%s reads %q, whose sha256 is not %s", ns, key, b, obj.SHA256)
	}
	return string(b)
}

func putString(t *testing.T, s *Store, key, payload string, created time.Time) Meta {
	t.Helper()
	m, err := s.Put(context.Background(), PutOptions{Namespace: "team-a", Key: key, Created: created}, strings.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestPendingVersionsLookLikeFiles: with nothing materialised yet, reads,
// listings, retention and deletes see journalled versions as files; the
// versions deleted stay deleted after a restart.
func TestPendingVersionsLookLikeFiles(t *testing.T) {
	s, dir := newFileStoreWith(t, held)
	ctx := context.Background()
	now := time.Now()
	v1 := putString(t, s, "k", "one", now.Add(-2*time.Second))
	v2 := putString(t, s, "k", "two", now.Add(-time.Second))
	v3 := putString(t, s, "k", "three", now)
	putString(t, s, "other", "x", now)
	if f := files(t, dir); len(f) != 0 {
		t.Fatalf("files before materialisation: %v", f)
	}
	if got := readAll(t, s, "team-a", "k", ""); got != "three" {
		t.Fatalf("newest reads %q", got)
	}
	if got := readAll(t, s, "team-a", "k", v1.ID); got != "one" {
		t.Fatalf("?version=%s reads %q", v1.ID, got)
	}
	items, err := s.List(ctx, "team-a")
	if err != nil || len(items) != 2 || items[0].Key != "k" || len(items[0].Versions) != 3 || items[0].Versions[0].ID != v3.ID || items[0].Versions[0].Size != 5 {
		t.Fatalf("List = %+v, %v", items, err)
	}
	// Retention deletes v1 and keeps v2, v3, once they are files: it waits
	// for the pause after the saves (here, none comes: settle forces it).
	pruned := make(chan error, 1)
	go func() {
		n, err := s.Prune(ctx, "team-a", "k", Policy{Keep: 2}, now)
		if err == nil && n != 1 {
			err = fmt.Errorf("pruned %d versions, want 1", n)
		}
		pruned <- err
	}()
	settle(t, s)
	if err := <-pruned; err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(ctx, "team-a", "k", v1.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("pruned version still opens: %v", err)
	}
	v4 := putString(t, s, "k", "four", now.Add(time.Second))
	if err := s.Delete(ctx, "team-a", "k", v4.ID); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, s, "team-a", "k", ""); got != "three" {
		t.Fatalf("after deleting the pending newest, the key reads %q", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := openStore(ctx, "file://"+dir, held)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	vs, err := s2.listVersions(ctx, "team-a", "k")
	if err != nil || len(vs) != 2 || vs[0].version != v3.ID || vs[1].version != v2.ID {
		t.Fatalf("after a restart versions %+v, %v; want %s, %s", vs, err, v3.ID, v2.ID)
	}
}

func TestFullOverlaySendsSavesToFiles(t *testing.T) {
	s, dir := newFileStoreWith(t, journalConfig{quiet: time.Hour, overlayBytes: 1024})
	putString(t, s, "small", "fits", time.Now())
	if f := files(t, dir); len(f) != 0 {
		t.Fatalf("a save under the bound was written as a file: %v", f)
	}
	putString(t, s, "big", strings.Repeat("b", 2048), time.Now())
	if f := files(t, dir); len(f) != 1 || !strings.Contains(f[0], "big@") {
		t.Fatalf("a save over the bound is not a file at once: %v", f)
	}
	if got := readAll(t, s, "team-a", "big", ""); len(got) != 2048 {
		t.Fatalf("big reads %d bytes", len(got))
	}
}

func TestSegmentStartsOverOnceEverythingIsCheckpointed(t *testing.T) {
	s, dir := newFileStoreWith(t, journalConfig{quiet: time.Hour, segmentBytes: 8 << 10})
	var last Meta
	for i := range 20 { // several laps of a segment holding about three records
		last = putString(t, s, "k", strings.Repeat("w", 2000+i), time.Now())
	}
	settle(t, s)
	if s.journal.off != 0 || s.journal.checkpoint != s.journal.next-1 {
		t.Fatalf("after settling offset %d, checkpoint %d, next %d", s.journal.off, s.journal.checkpoint, s.journal.next)
	}
	if n := len(files(t, dir)); n != 20 {
		t.Fatalf("%d files, want 20", n)
	}
	if got := readAll(t, s, "team-a", "k", ""); len(got) != 2019 {
		t.Fatalf("newest (%s) reads %d bytes", last.ID, len(got))
	}
}

func TestCloseStopsTheMaterialiserAndWritesPendingVersions(t *testing.T) {
	s, dir := newFileStoreWith(t, held)
	putString(t, s, "k", "pending", time.Now())
	j := s.journal
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-j.done:
	default:
		t.Fatal("the materialiser runs on after Close")
	}
	if f := files(t, dir); len(f) != 1 {
		t.Fatalf("files after Close %v, want the pending version", f)
	}
	if j.checkpoint != j.next-1 {
		t.Fatalf("checkpoint %d after Close, want %d", j.checkpoint, j.next-1)
	}
}

func TestQuietMaterialiserWritesFilesAfterAPause(t *testing.T) {
	s, dir := newFileStoreWith(t, journalConfig{quiet: time.Millisecond})
	putString(t, s, "k", "soon a file", time.Now())
	eventually(t, "the version's file", func() bool { return len(files(t, dir)) == 1 })
	eventually(t, "the overlay to empty", func() bool {
		s.journal.mu.Lock()
		defer s.journal.mu.Unlock()
		return len(s.journal.over.byName) == 0
	})
}

// TestJournalPutWaitsForItsSyncAndFallsBackWhenItFails: Put answers only
// after the segment's fdatasync; when it fails, the journal is off for
// good and the save is written as a file instead.
func TestJournalPutWaitsForItsSyncAndFallsBackWhenItFails(t *testing.T) {
	s, dir := newFileStoreWith(t, held)
	entered, release := make(chan struct{}), make(chan error)
	s.journal.sync.syncFn = func(string) error {
		entered <- struct{}{}
		err := <-release
		if err != nil {
			s.journal.failed.Store(true)
		}
		return err
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.Put(context.Background(), PutOptions{Namespace: "team-a", Key: "k", Created: time.Now()}, strings.NewReader("state"))
		done <- err
	}()
	<-entered
	select {
	case err := <-done:
		t.Fatalf("Put returned (%v) before its record was synced", err)
	default:
	}
	release <- errors.New("EIO")
	if err := <-done; err != nil {
		t.Fatalf("Put after a failed journal sync: %v, want the direct write", err)
	}
	if f := files(t, dir); len(f) != 1 {
		t.Fatalf("files %v, want the version written directly", f)
	}
	putString(t, s, "k2", "after", time.Now()) // no sync: the journal is off
	if f := files(t, dir); len(f) != 2 {
		t.Fatalf("files %v: the failed journal took another save", f)
	}
}

func TestSecondProcessWritesDirectly(t *testing.T) {
	s, dir := newFileStoreWith(t, held)
	other, err := openStore(context.Background(), "file://"+dir, held)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if s.journal == nil || other.journal != nil {
		t.Fatal("both openers of a directory got its journal")
	}
}
