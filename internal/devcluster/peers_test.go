package devcluster

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeGo puts a `go` script first on PATH. It appends its arguments to
// calls.log and runs body (sh), so tests see what EnsurePeers and
// FlaggerCRDPath ask of the go command without building or downloading.
func fakeGo(t *testing.T, body string) (calls string) {
	t.Helper()
	dir := t.TempDir()
	calls = filepath.Join(dir, "calls.log")
	script := "#!/bin/sh\necho \"$@\" >> " + calls + "\n" + body + "\n"
	if err := os.WriteFile(filepath.Join(dir, "go"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return calls
}

func readCalls(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func TestEnsurePeersInstallsMissingBinariesWithOneGoInstall(t *testing.T) {
	calls := fakeGo(t, `for b in flagger loadtester; do echo "#!/bin/sh" > "$GOBIN/$b"; done`)
	var progress bytes.Buffer
	root := t.TempDir()
	p, err := EnsurePeers(context.Background(), BuildOptions{PeersCacheDir: root, Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, "flagger-"+FlaggerVersion, "bin"); p.Dir != want {
		t.Errorf("dir %s, want %s", p.Dir, want)
	}
	for _, path := range []string{p.Flagger(), p.Loadtester()} {
		if _, err := os.Stat(path); err != nil {
			t.Errorf("not installed: %v", err)
		}
	}
	got := readCalls(t, calls)
	want := "install -trimpath -ldflags -s -w github.com/fluxcd/flagger/cmd/flagger@" + FlaggerVersion + " github.com/fluxcd/flagger/cmd/loadtester@" + FlaggerVersion
	if len(got) != 1 || got[0] != want {
		t.Errorf("go calls %q, want one %q", got, want)
	}
	if !strings.Contains(progress.String(), "installed") {
		t.Errorf("no progress reported: %q", progress.String())
	}
	// Temporary GOBINs must not be left in the cache.
	entries, _ := filepath.Glob(filepath.Join(root, "flagger-"+FlaggerVersion, ".gobin-*"))
	if len(entries) != 0 {
		t.Errorf("leftover build dirs: %v", entries)
	}
}

func TestEnsurePeersUsesTheCacheWithoutCallingGo(t *testing.T) {
	root := t.TempDir()
	bin := filepath.Join(root, "flagger-"+FlaggerVersion, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{BinFlagger, BinLoadtester} {
		if err := os.WriteFile(filepath.Join(bin, n), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	calls := fakeGo(t, "exit 1")
	path, err := EnsureLoadtester(context.Background(), BuildOptions{PeersCacheDir: root})
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(bin, BinLoadtester) {
		t.Errorf("path %s", path)
	}
	if got := readCalls(t, calls); len(got) != 0 {
		t.Errorf("go was called on a cache hit: %q", got)
	}
}

func TestEnsurePeersRebuildsOnlyWhatIsMissing(t *testing.T) {
	root := t.TempDir()
	bin := filepath.Join(root, "flagger-"+FlaggerVersion, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, BinFlagger), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	calls := fakeGo(t, `echo "#!/bin/sh" > "$GOBIN/loadtester"`)
	if _, err := EnsureFlagger(context.Background(), BuildOptions{PeersCacheDir: root, Progress: &bytes.Buffer{}}); err != nil {
		t.Fatal(err)
	}
	got := readCalls(t, calls)
	if len(got) != 1 || got[0] != "install -trimpath -ldflags -s -w github.com/fluxcd/flagger/cmd/loadtester@"+FlaggerVersion {
		t.Errorf("go calls %q", got)
	}
}

func TestEnsurePeersReportsBuildFailureAndInstallsNothing(t *testing.T) {
	fakeGo(t, `echo "module lookup disabled by GOPROXY=off" >&2; echo partial > "$GOBIN/flagger"; exit 1`)
	root := t.TempDir()
	_, err := EnsurePeers(context.Background(), BuildOptions{PeersCacheDir: root, Progress: &bytes.Buffer{}})
	if err == nil || !strings.Contains(err.Error(), "GOPROXY=off") {
		t.Fatalf("error %v, want the go command's output", err)
	}
	if _, err := os.Stat(filepath.Join(root, "flagger-"+FlaggerVersion, "bin", BinFlagger)); !os.IsNotExist(err) {
		t.Errorf("a failed build left a binary in the cache: %v", err)
	}
}

func TestFlaggerCRDPath(t *testing.T) {
	modDir := t.TempDir()
	crd := filepath.Join(modDir, "artifacts", "flagger", "crd.yaml")
	if err := os.MkdirAll(filepath.Dir(crd), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(crd, []byte("kind: CustomResourceDefinition\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, body, want, wantErr string
	}{
		{name: "found", body: `echo '{"Path": "github.com/fluxcd/flagger", "Dir": "` + modDir + `"}'`, want: crd},
		{name: "module error", body: `echo '{"Path": "github.com/fluxcd/flagger", "Error": "unknown revision"}'; exit 1`, wantErr: "unknown revision"},
		{name: "no crd in module", body: `echo '{"Dir": "` + t.TempDir() + `"}'`, wantErr: "crd.yaml"},
		{name: "go fails without json", body: `echo "go: no network" >&2; exit 1`, wantErr: "no network"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := fakeGo(t, tc.body)
			got, err := FlaggerCRDPath(context.Background())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
			} else if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
			if c := readCalls(t, calls); len(c) != 1 || c[0] != "mod download -json github.com/fluxcd/flagger@"+FlaggerVersion {
				t.Errorf("go calls %q", c)
			}
		})
	}
}
