package devcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// BuildOptions configures EnsureBinaries and EnsurePeers. The zero value
// means the defaults.
type BuildOptions struct {
	// CacheDir is where binaries are kept; default os.UserCacheDir()/lastcall/devcluster.
	CacheDir string
	// PeersCacheDir is where peer binaries (Flagger, its loadtester) are
	// kept; default os.UserCacheDir()/lastcall/peers.
	PeersCacheDir string
	// SourceDir is the lastcall checkout holding hack/devcluster; default: found
	// from the working directory upwards, then from this source file's path.
	SourceDir string
	// RealNode adds the real node's binaries (kubelet, kube-proxy); a
	// package that does not run a real node does not wait for them.
	RealNode bool
	// Helm adds the helm binary (EnsureHelm).
	Helm bool
	// Progress receives one line per build step and a heartbeat while a build
	// runs; default os.Stderr.
	Progress io.Writer
}

// Binaries holds the paths of the built components.
type Binaries struct {
	Dir string
}

// Path returns the path of the named binary (one of the Bin* constants).
func (b Binaries) Path(name string) string { return filepath.Join(b.Dir, name) }

// DefaultCacheDir is the root of the devcluster cache.
func DefaultCacheDir() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("find user cache dir: %w", err)
	}
	return filepath.Join(dir, "lastcall", "devcluster"), nil
}

// EnsureBinaries builds every missing component once and returns where they
// are. Concurrent callers (parallel test packages, two terminals) serialise
// on a file lock; each binary is installed by an atomic rename, so a reader
// never sees a partial file.
func EnsureBinaries(ctx context.Context, opts BuildOptions) (Binaries, error) {
	if opts.Progress == nil {
		opts.Progress = os.Stderr
	}
	if opts.CacheDir == "" {
		dir, err := DefaultCacheDir()
		if err != nil {
			return Binaries{}, err
		}
		opts.CacheDir = dir
	}
	bins := Binaries{Dir: filepath.Join(opts.CacheDir, versionKey(), "bin")}
	if missing(bins, opts) == nil {
		return bins, nil
	}
	if err := os.MkdirAll(bins.Dir, 0o755); err != nil {
		return Binaries{}, fmt.Errorf("create cache dir: %w", err)
	}
	unlock, err := lockFile(ctx, filepath.Join(opts.CacheDir, versionKey(), "build.lock"), opts.Progress)
	if err != nil {
		return Binaries{}, err
	}
	defer unlock()

	todo := missing(bins, opts)
	if len(todo) == 0 { // another process built them while we waited
		return bins, nil
	}
	src, err := findSourceDir(opts.SourceDir)
	if err != nil {
		return Binaries{}, err
	}
	fmt.Fprintf(opts.Progress, "devcluster: building %d control-plane binaries into %s (first run only)\n", len(todo), bins.Dir)
	for _, b := range todo {
		if err := build(ctx, b, src, bins, opts.Progress); err != nil {
			return Binaries{}, err
		}
	}
	return bins, nil
}

func missing(bins Binaries, opts BuildOptions) []binary {
	var out []binary
	for _, b := range binaries() {
		if (b.realNode && !opts.RealNode) || (b.helm && !opts.Helm) {
			continue
		}
		if fi, err := os.Stat(bins.Path(b.name)); err != nil || !fi.Mode().IsRegular() {
			out = append(out, b)
		}
	}
	return out
}

func build(ctx context.Context, b binary, src string, bins Binaries, progress io.Writer) error {
	start := time.Now()
	fmt.Fprintf(progress, "devcluster: building %s (about %s on 2 cores)\n", b.name, b.approx)
	tmp := filepath.Join(bins.Dir, fmt.Sprintf(".%s.tmp-%d", b.name, os.Getpid()))
	args := append([]string{"build", "-o", tmp}, toolBuildFlags(b.ldflags)...)
	args = append(args, b.pkg)
	cmd := exec.CommandContext(ctx, goTool(), args...)
	cmd.Dir = filepath.Join(src, "hack", "devcluster", b.module)
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly")
	out := &tailBuffer{max: 8 << 10}
	cmd.Stdout, cmd.Stderr = out, out

	done := make(chan struct{})
	go heartbeat(done, progress, b.name, start)
	err := cmd.Run()
	close(done)
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("build %s in %s: %w\n%s", b.name, cmd.Dir, err, out.String())
	}
	if err := os.Rename(tmp, bins.Path(b.name)); err != nil {
		return fmt.Errorf("install %s: %w", b.name, err)
	}
	fmt.Fprintf(progress, "devcluster: built %s in %s\n", b.name, time.Since(start).Round(time.Second))
	return nil
}

// EnsureHelm builds the helm binary (HelmVersion) once and returns its path.
func EnsureHelm(ctx context.Context, opts BuildOptions) (string, error) {
	opts.Helm = true
	bins, err := EnsureBinaries(ctx, opts)
	if err != nil {
		return "", err
	}
	return bins.Path(BinHelm), nil
}

// heartbeat prints a line every 30 s so a long first build never sits silent.
func heartbeat(done <-chan struct{}, w io.Writer, name string, start time.Time) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			fmt.Fprintf(w, "devcluster: still building %s (%s elapsed)\n", name, time.Since(start).Round(time.Second))
		}
	}
}

// toolBuildFlags are the flags of every binary built here. -trimpath keeps
// compiled packages shareable with `make test`'s builds (its GOFLAGS has
// it too), so a package that a tool and lastcall both use at one version is
// compiled once; -s -w leave out the symbol table and DWARF, which the
// tests never read and which cost a third of each link.
func toolBuildFlags(ldflags string) []string {
	return []string{"-trimpath", "-ldflags", strings.TrimSpace("-s -w " + ldflags)}
}

// GoBuild builds pkg, as `go build` names it from dir ("" for the working
// directory), into out with the flags of every binary built here. Tests use
// it for the binaries they run as processes, so that those share compiled
// packages with the rest of `make test`. env is added to the environment
// (CGO_ENABLED=0 for a static binary).
func GoBuild(ctx context.Context, dir, out, pkg string, env ...string) error {
	args := append(append([]string{"build", "-o", out}, toolBuildFlags("")...), pkg)
	cmd := exec.CommandContext(ctx, goTool(), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// goTool is the go command on PATH; exec reports a clear error if missing.
func goTool() string { return "go" }

// findSourceDir locates the checkout that holds the wrapper modules.
func findSourceDir(explicit string) (string, error) {
	has := func(dir string) bool {
		_, err := os.Stat(filepath.Join(dir, "hack", "devcluster", "kube", "go.mod"))
		return err == nil
	}
	if explicit != "" {
		if !has(explicit) {
			return "", fmt.Errorf("%s has no hack/devcluster/kube/go.mod", explicit)
		}
		return explicit, nil
	}
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; ; dir = filepath.Dir(dir) {
			if has(dir) {
				return dir, nil
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		if dir := filepath.Join(filepath.Dir(file), "..", ".."); has(dir) {
			return filepath.Clean(dir), nil
		}
	}
	return "", errors.New("cannot find the lastcall source tree (hack/devcluster): run from the checkout or pass its path")
}

// lockFile takes an exclusive flock, telling the user when it has to wait.
func lockFile(ctx context.Context, path string, progress io.Writer) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open build lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		fmt.Fprintf(progress, "devcluster: another process is building the binaries; waiting for %s\n", path)
		errc := make(chan error, 1)
		go func() { errc <- syscall.Flock(int(f.Fd()), syscall.LOCK_EX) }()
		select {
		case err := <-errc:
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("lock %s: %w", path, err)
			}
		case <-ctx.Done():
			f.Close() // closing the fd releases a lock the goroutine may still get
			return nil, ctx.Err()
		}
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

// tailBuffer keeps the last max bytes written: enough of a compiler's output
// to explain a failure without holding all of it.
type tailBuffer struct {
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.buf) }
