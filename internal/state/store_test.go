package state

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestStoreRoundTripsOnMemAndFile(t *testing.T) {
	mem, err := OpenStore(context.Background(), "mem://")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mem.Close() })
	file, _ := newFileStore(t)
	for name, s := range map[string]*Store{"mem": mem, "file": file} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			payload := bytes.Repeat([]byte{0, 1, 2, 0xff}, testChunk) // several chunks, binary
			created := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
			m, err := s.Put(ctx, PutOptions{Namespace: "ns", Key: "a/b", Pod: "p-1", ContentType: "application/x-tar", Created: created, SHA256: strings.ToUpper(sum(payload))}, bytes.NewReader(payload))
			if err != nil {
				t.Fatal(err)
			}
			if m.Size != int64(len(payload)) || m.SHA256 != sum(payload) || !m.Created.Equal(created) {
				t.Fatalf("Put = %+v", m)
			}
			empty, err := s.Put(ctx, PutOptions{Namespace: "ns", Key: "empty", Created: created}, strings.NewReader(""))
			if err != nil || empty.Size != 0 {
				t.Fatalf("empty Put = %+v, %v", empty, err)
			}
			for _, c := range []struct {
				key  string
				want []byte
			}{{"a/b", payload}, {"empty", nil}} {
				obj, err := s.Open(ctx, "ns", c.key, "")
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(obj)
				obj.Close()
				if err != nil || !bytes.Equal(got, c.want) {
					t.Fatalf("Open %s: %d bytes, %v", c.key, len(got), err)
				}
			}
			if _, err := s.Open(ctx, "ns", "a", ""); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Open of a key's parent = %v, want ErrNotFound", err)
			}
			items, err := s.List(ctx, "ns")
			if err != nil || len(items) != 2 || items[0].Versions[0] != m.Version {
				t.Fatalf("List = %+v, %v", items, err)
			}
		})
	}
}

func TestPutValidatesBeforeWriting(t *testing.T) {
	s, dir := newFileStore(t)
	ok := PutOptions{Namespace: "ns", Key: "k", Created: time.Now()}
	for _, c := range []struct {
		mutate func(*PutOptions)
		err    error
	}{
		{func(o *PutOptions) { o.Namespace = "NS" }, ErrInvalidNamespace},
		{func(o *PutOptions) { o.Key = "../k" }, ErrInvalidKey},
		{func(o *PutOptions) { o.Pod = "a_b" }, ErrInvalidPod},
		{func(o *PutOptions) { o.ContentType = strings.Repeat("a", 300) + "/b" }, ErrInvalidContentType},
		{func(o *PutOptions) { o.SHA256 = strings.Repeat("g", 64) }, ErrInvalidChecksum},
	} {
		o := ok
		c.mutate(&o)
		if _, err := s.Put(context.Background(), o, strings.NewReader("x")); !errors.Is(err, c.err) {
			t.Errorf("Put(%+v) = %v, want %v", o, err, c.err)
		}
	}
	if f := files(t, dir); len(f) != 0 {
		t.Fatalf("refused Puts left files %v", f)
	}
}

func TestForeignObjectsAreNotVersions(t *testing.T) {
	s, err := OpenStore(context.Background(), "mem://")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	v := newVersion(time.Now())
	// Named like a version but not written by Put: no footer.
	if err := s.bucket.WriteAll(ctx, objectName("ns", "k", v), []byte("not ours"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(ctx, "ns", "k", ""); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open of a foreign object = %v, want ErrCorrupt", err)
	}
	var skipped []string
	s.OnUnreadable = func(name string, _ error) { skipped = append(skipped, name) }
	if _, err := s.Put(ctx, PutOptions{Namespace: "ns", Key: "other", Created: time.Now()}, strings.NewReader("ok")); err != nil {
		t.Fatal(err)
	}
	items, err := s.List(ctx, "ns")
	if err != nil || len(items) != 1 || items[0].Key != "other" {
		t.Fatalf("List with a foreign object = %+v, %v; want the intact key only", items, err)
	}
	if len(skipped) != 1 || skipped[0] != objectName("ns", "k", v) {
		t.Fatalf("skipped %v, want the foreign object reported once", skipped)
	}
}

// TestDamagedNewestVersionServesTheNewestIntactOne: one damaged version
// hides neither the key's older state nor the namespace's other keys.
func TestDamagedNewestVersionServesTheNewestIntactOne(t *testing.T) {
	store, dir := newFileStore(t)
	ts := newTestServer(t, store, Options{})
	base := ts.URL + "/v1/state/team-a/"
	var versions []string
	for _, body := range []string{"old", "new"} {
		r := do(t, "PUT", base+"k", adminToken, body, nil)
		if r.code != 201 {
			t.Fatalf("PUT: %d", r.code)
		}
		versions = append(versions, r.meta(t).ID)
	}
	// The newest version's footer is overwritten: a torn disk block.
	newest := filepath.Join(dir, filepath.FromSlash(objectName("team-a", "k", versions[1])))
	if err := os.WriteFile(newest, []byte("garbage"), 0o640); err != nil {
		t.Fatal(err)
	}
	r := do(t, "GET", base+"k", adminToken, nil, nil)
	if r.code != 200 || string(r.body) != "old" || r.header.Get(HeaderNewerCorrupt) != versions[1] || r.header.Get(HeaderVersion) != versions[0] {
		t.Fatalf("GET: %d %q, versions %s newer-corrupt %q; want the old version and the damaged one named",
			r.code, r.body, r.header.Get(HeaderVersion), r.header.Get(HeaderNewerCorrupt))
	}
	if r := do(t, "GET", base, adminToken, nil, nil); r.code != 200 {
		t.Fatalf("LIST with a damaged object: %d %s", r.code, r.body)
	}
	// Every version damaged: 409 Corrupt, not a 500.
	oldest := filepath.Join(dir, filepath.FromSlash(objectName("team-a", "k", versions[0])))
	if err := os.WriteFile(oldest, []byte("garbage"), 0o640); err != nil {
		t.Fatal(err)
	}
	r = do(t, "GET", base+"k", adminToken, nil, nil)
	if r.code != 409 || r.errorBody(t).Reason != ReasonCorrupt {
		t.Fatalf("GET with every version damaged: %d %s, want 409 Corrupt", r.code, r.body)
	}
}

func TestOpenStoreRejectsAmbiguousFileURLs(t *testing.T) {
	for _, u := range []string{"file://relative/dir", "file:///tmp/x?create_dir=1", "file://host/tmp/x"} {
		if _, err := OpenStore(context.Background(), u); err == nil {
			t.Errorf("OpenStore(%q) accepted", u)
		}
	}
}

func TestFooterRejectsDamage(t *testing.T) {
	good, err := encodeFooter(Meta{Namespace: "ns", Key: "k", Version: Version{ID: "v", Size: 3}})
	if err != nil {
		t.Fatal(err)
	}
	obj := append([]byte("abc"), good...)
	if m, err := decodeFooter(obj, int64(len(obj))); err != nil || m.Size != 3 {
		t.Fatalf("decodeFooter = %+v, %v", m, err)
	}
	for name, tail := range map[string][]byte{
		"truncated":  obj[:len(obj)-1],
		"no magic":   append(bytes.Clone(obj[:len(obj)-4]), "XXXX"...),
		"size lies":  append([]byte("abcd"), good...),
		"too short":  []byte("LCS1"),
		"bad length": append([]byte{0xff, 0xff, 0xff, 0xff}, footerMagic...),
	} {
		if _, err := decodeFooter(tail, int64(len(tail))); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
}

// TestReadsSurviveConcurrentWritesAndPrunes: fileblob's listing fails when
// a file vanishes between its directory read and its stat (a version
// pruned, a temp file renamed), which a reader must not see as an error.
func TestReadsSurviveConcurrentWritesAndPrunes(t *testing.T) {
	s, _ := newFileStore(t)
	ctx := context.Background()
	put := func(i int) {
		if _, err := s.Put(ctx, PutOptions{Namespace: "ns", Key: "k", Created: time.Now()}, strings.NewReader(strconv.Itoa(i))); err != nil {
			t.Error(err)
		}
		if _, err := s.Prune(ctx, "ns", "k", Policy{Keep: 1}, time.Now()); err != nil {
			t.Error(err)
		}
	}
	put(0)
	done, stop := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; i <= 150; i++ {
			select {
			case <-stop:
				return
			default:
			}
			put(i)
		}
	}()
	defer func() { close(stop); <-done }()
	reads := 0
	for {
		select {
		case <-done:
			if reads == 0 {
				t.Fatal("no read overlapped the writes")
			}
			return
		default:
		}
		obj, err := s.Open(ctx, "ns", "k", "")
		if err != nil {
			t.Fatalf("read %d during writes: %v", reads, err)
		}
		obj.Close()
		if _, err := s.List(ctx, "ns"); err != nil {
			t.Fatalf("list %d during writes: %v", reads, err)
		}
		reads++
	}
}
