package prestop

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/utils/clock"
)

type entry struct {
	name, body, link string
	typ              byte
	mode             int64
}

func makeTar(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, Size: int64(len(e.body))}
		if hdr.Mode == 0 {
			hdr.Mode = 0o644
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func restore(t *testing.T, cfg RestoreConfig) (*RestoreResult, error) {
	t.Helper()
	return NewRestorer(cfg, clock.RealClock{}, testLogger(t)).Run(context.Background())
}

// A tar written by the save step comes back file for file: modes, mtimes,
// symlinks, empty directories.
func TestSaveAndRestoreRoundTrip(t *testing.T) {
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "a", "b", "c.txt"), "deep")
	writeFile(t, filepath.Join(src, "exec.sh"), "#!/bin/sh\n")
	if err := os.Chmod(filepath.Join(src, "exec.sh"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(src, "empty"), 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a/b/c.txt", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(src, "a", "b", "c.txt"), mtime, mtime); err != nil {
		t.Fatal(err)
	}
	single := filepath.Join(t.TempDir(), "single.db")
	writeFile(t, single, "db")

	var buf bytes.Buffer
	st, err := writeTar(&buf, []string{src, single})
	if err != nil {
		t.Fatal(err)
	}
	if st.files != 3 || st.links != 1 || st.dirs != 3 {
		t.Errorf("tar stats %+v", st)
	}
	dst := t.TempDir()
	root, err := os.OpenRoot(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if _, err := extract(&buf, root); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dst, "link")); got != "deep" {
		t.Errorf("link reads %q", got)
	}
	if got := readFile(t, filepath.Join(dst, "single.db")); got != "db" {
		t.Errorf("single.db = %q", got)
	}
	for name, want := range map[string]os.FileMode{"exec.sh": 0o750, "empty": 0o711 | os.ModeDir} {
		fi, err := os.Stat(filepath.Join(dst, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s mode %s, want %s", name, fi.Mode(), want)
		}
	}
	if fi, _ := os.Stat(filepath.Join(dst, "a", "b", "c.txt")); !fi.ModTime().Equal(mtime) {
		t.Errorf("mtime %s, want %s", fi.ModTime(), mtime)
	}
}

func TestSaveRefusesTwoPathsWithTheSameName(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(a, "x"), "1")
	writeFile(t, filepath.Join(b, "x"), "2")
	_, err := writeTar(&bytes.Buffer{}, []string{a, b})
	var perm *permanentError
	if !errors.As(err, &perm) || !strings.Contains(err.Error(), `"x" is in both`) {
		t.Errorf("err = %v", err)
	}
}

func TestRestoreRefusesUnsafeArchivesAndLeavesTheDirAlone(t *testing.T) {
	for name, tarball := range map[string][]byte{
		"absolute name":      makeTar(t, entry{name: "/etc/passwd", body: "x", typ: tar.TypeReg}),
		"dot-dot name":       makeTar(t, entry{name: "a/../../x", body: "x", typ: tar.TypeReg}),
		"absolute symlink":   makeTar(t, entry{name: "l", link: "/etc", typ: tar.TypeSymlink}),
		"escaping symlink":   makeTar(t, entry{name: "d/l", link: "../../x", typ: tar.TypeSymlink}),
		"chained symlinks":   makeTar(t, entry{name: "s", link: ".", typ: tar.TypeSymlink}, entry{name: "y", link: "s/..", typ: tar.TypeSymlink}),
		"write through link": makeTar(t, entry{name: "s", link: ".", typ: tar.TypeSymlink}, entry{name: "t", link: "s/..", typ: tar.TypeSymlink}, entry{name: "t/evil", body: "x", typ: tar.TypeReg}),
		"hard link":          makeTar(t, entry{name: "h", link: "x", typ: tar.TypeLink}),
		"device":             makeTar(t, entry{name: "null", typ: tar.TypeChar}),
		"duplicate entry":    makeTar(t, entry{name: "f", body: "1", typ: tar.TypeReg}, entry{name: "f", body: "2", typ: tar.TypeReg}),
	} {
		t.Run(name, func(t *testing.T) {
			env := newPodEnv(t)
			state, stateURL := newStateServer(t, nil)
			state.Store("shop", "web-0", contentTar, tarball)
			parent := t.TempDir()
			dir := filepath.Join(parent, "data")
			writeFile(t, filepath.Join(dir, "keep"), "old")
			_, err := restore(t, env.restoreConfig(stateURL, dir))
			if err == nil {
				t.Fatal("restore accepted it")
			}
			// os.Root's own refusals (a duplicate, a write through a link
			// that escapes) have no exported sentinel; they name the cause.
			switch name {
			case "duplicate entry":
				if !errors.Is(err, os.ErrExist) {
					t.Errorf("err = %v, want ErrExist", err)
				}
			case "write through link":
				if !strings.Contains(err.Error(), "escapes") {
					t.Errorf("err = %v, want an escape refused", err)
				}
			default:
				if !errors.Is(err, ErrUnsafeArchive) {
					t.Errorf("err = %v, want ErrUnsafeArchive", err)
				}
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 || entries[0].Name() != "keep" {
				t.Errorf("dir now has %v", entries)
			}
			if outside, _ := os.ReadDir(parent); len(outside) != 1 {
				t.Errorf("wrote next to the dir: %v", outside)
			}
		})
	}
}

func TestRestoreWithNothingSaved(t *testing.T) {
	env := newPodEnv(t)
	_, stateURL := newStateServer(t, nil)
	cfg := env.restoreConfig(stateURL, t.TempDir())
	res, err := restore(t, cfg)
	if err != nil || res.Found {
		t.Fatalf("restore = %+v, %v; want nothing found, no error", res, err)
	}
	if !strings.Contains(res.String(), "nothing saved") {
		t.Errorf("message %q", res)
	}
	cfg.Require = true
	if _, err := restore(t, cfg); !errors.Is(err, ErrNoState) {
		t.Errorf("with Require: err = %v, want ErrNoState", err)
	}
	cfg.Require, cfg.Version = false, "v9"
	if _, err := restore(t, cfg); err == nil || !strings.Contains(err.Error(), "NotFound") {
		t.Errorf("a missing --version: err = %v, want the NotFound", err)
	}
}

// A 404 that is not the state API's NotFound is a wrong URL, not "nothing
// saved": the init container must not start the app with empty state.
func TestRestoreTreatsABare404AsAnError(t *testing.T) {
	env := newPodEnv(t)
	_, stateURL := newStateServer(t, nil)
	_, err := restore(t, env.restoreConfig(stateURL+"/wrong-prefix", t.TempDir()))
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("err = %v", err)
	}
}

func TestRestorePicksTheLatestOrTheAskedVersionAndReplacesOldFiles(t *testing.T) {
	env := newPodEnv(t)
	state, stateURL := newStateServer(t, nil)
	v1 := state.Store("shop", "web-0", contentTar, makeTar(t, entry{name: "f", body: "one", typ: tar.TypeReg}))
	state.Store("shop", "web-0", contentTar, makeTar(t, entry{name: "f", body: "two", typ: tar.TypeReg}))
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "f"), "stale")
	writeFile(t, filepath.Join(dir, tempPrefix+"crashed", "junk"), "x")
	cfg := env.restoreConfig(stateURL, dir)
	res, err := restore(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dir, "f")); got != "two" || res.Version != "v2" {
		t.Errorf("latest: f = %q, version %s", got, res.Version)
	}
	if _, err := os.Stat(filepath.Join(dir, tempPrefix+"crashed")); !os.IsNotExist(err) {
		t.Error("leftover of a crashed restore still there")
	}
	cfg.Version = v1.ID
	if _, err := restore(t, cfg); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dir, "f")); got != "one" {
		t.Errorf("version %s: f = %q", v1.ID, got)
	}
}

func TestRestoreWritesANonTarPayloadToAFile(t *testing.T) {
	env := newPodEnv(t)
	state, stateURL := newStateServer(t, nil)
	state.Store("shop", "web-0", "application/json", []byte(`{"cursor":42}`))
	dir := t.TempDir()
	cfg := env.restoreConfig(stateURL, dir)
	cfg.File = "cursor.json"
	res, err := restore(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dir, "cursor.json")); got != `{"cursor":42}` || res.Files != 1 {
		t.Errorf("file = %q (%s)", got, res)
	}
}

// A body that does not match its checksum never lands in the directory, and
// is fetched again: the next attempt may be clean.
func TestRestoreRetriesACorruptedTransferAndNeverInstallsIt(t *testing.T) {
	env := newPodEnv(t)
	var gets atomic.Int32
	state, stateURL := newStateServer(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if gets.Add(1) == 1 {
				// The sha256 of a different payload: a corrupted transfer.
				w.Header().Set(headerSHA256, strings.Repeat("ab", 32))
				w.Header().Set("Content-Type", contentTar)
				_, _ = w.Write(makeTar(t, entry{name: "f", body: "corrupt", typ: tar.TypeReg}))
				return
			}
			if gets.Load() == 2 {
				w.WriteHeader(http.StatusBadGateway)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	state.Store("shop", "web-0", contentTar, makeTar(t, entry{name: "f", body: "good", typ: tar.TypeReg}))
	dir := t.TempDir()
	res, err := restore(t, env.restoreConfig(stateURL, dir))
	if err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dir, "f")); got != "good" || res.Attempts != 3 {
		t.Errorf("f = %q after %d attempts, want good after 3", got, res.Attempts)
	}
}

func TestRestoreGivesUpAtItsTimeout(t *testing.T) {
	env := newPodEnv(t)
	_, stateURL := newStateServer(t, func(http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	})
	cfg := env.restoreConfig(stateURL, t.TempDir())
	cfg.Timeout = 300 * time.Millisecond
	start := time.Now()
	res, err := restore(t, cfg)
	if err == nil || !strings.Contains(err.Error(), "503") || res.Attempts < 2 {
		t.Errorf("err = %v after %d attempts", err, res.Attempts)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %s with a 300ms timeout", d)
	}
}

// Whatever the archive, extract writes nothing outside its root.
func FuzzExtract(f *testing.F) {
	f.Add(makeTar(f, entry{name: "a/b", body: "x", typ: tar.TypeReg}))
	f.Add(makeTar(f, entry{name: "s", link: ".", typ: tar.TypeSymlink}, entry{name: "s/x", body: "x", typ: tar.TypeReg}))
	f.Add(makeTar(f, entry{name: "d", typ: tar.TypeDir, mode: 0o755}, entry{name: "d/l", link: "..", typ: tar.TypeSymlink}))
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		dir := filepath.Join(parent, "root")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		root, err := os.OpenRoot(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer root.Close()
		_, _ = extract(bytes.NewReader(data), root)
		if entries, _ := os.ReadDir(parent); len(entries) != 1 {
			t.Fatalf("extract wrote outside its root: %v", entries)
		}
	})
}
