package devcluster

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// MinioVersion is the MinIO server module the state service's S3 tests run
// against: a real S3-compatible server, installed from the Go module proxy
// (its go.mod has no replace directives) and run on 127.0.0.1. MinIO is
// AGPL-3.0; it is only ever run as a separate test process, never linked.
const MinioVersion = "v0.0.0-20260212201848-7aac2a2c5b7c"

const minioModule = "github.com/minio/minio"

// MinioOptions configures EnsureMinio. The zero value means the defaults.
type MinioOptions struct {
	// CacheDir is the root of the MinIO cache; default
	// os.UserCacheDir()/lastcall/minio. The binary goes to
	// <CacheDir>/<MinioVersion>/minio.
	CacheDir string
	// Progress receives what is built and a heartbeat; default os.Stderr.
	Progress io.Writer
}

// EnsureMinio installs the MinIO server (MinioVersion) with `go install`
// unless it is cached, and returns its path. The first build takes about
// 10 minutes on 2 cores: it says so and prints a heartbeat to
// opts.Progress, and `make minio` runs it before the tests so that the S3
// tests never sit silent inside go test. Like EnsureBinaries it serialises
// builders on a file lock and installs by atomic rename, so parallel test
// packages neither build twice nor see a partial binary.
func EnsureMinio(ctx context.Context, opts MinioOptions) (string, error) {
	if opts.Progress == nil {
		opts.Progress = os.Stderr
	}
	if opts.CacheDir == "" {
		d, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("find user cache dir: %w", err)
		}
		opts.CacheDir = filepath.Join(d, "lastcall", "minio")
	}
	dir := filepath.Join(opts.CacheDir, MinioVersion)
	bin := filepath.Join(dir, "minio")
	if fi, err := os.Stat(bin); err == nil && fi.Mode().IsRegular() {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create MinIO cache dir: %w", err)
	}
	unlock, err := lockFile(ctx, filepath.Join(dir, "build.lock"), opts.Progress)
	if err != nil {
		return "", err
	}
	defer unlock()
	if fi, err := os.Stat(bin); err == nil && fi.Mode().IsRegular() {
		return bin, nil // another process built it while we waited
	}

	start := time.Now()
	fmt.Fprintf(opts.Progress, "devcluster: installing MinIO %s into %s (about 3 min on 2 cores after `make lint`, up to 10 min alone; first run only)\n", MinioVersion, dir)
	gobin, err := os.MkdirTemp(dir, ".gobin-")
	if err != nil {
		return "", fmt.Errorf("create build dir: %w", err)
	}
	defer os.RemoveAll(gobin)
	args := append(append([]string{"install"}, toolBuildFlags("")...), minioModule+"@"+MinioVersion)
	cmd := exec.CommandContext(ctx, goTool(), args...)
	cmd.Dir = dir // outside any module: `pkg@version` must not see lastcall's go.mod
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod", "GOBIN="+gobin)
	out := &tailBuffer{max: 8 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	done := make(chan struct{})
	go heartbeat(done, opts.Progress, "minio", start)
	err = cmd.Run()
	close(done)
	if err != nil {
		return "", fmt.Errorf("go install %s@%s: %w\n%s", minioModule, MinioVersion, err, out.String())
	}
	if err := os.Rename(filepath.Join(gobin, "minio"), bin); err != nil {
		return "", fmt.Errorf("install minio: %w", err)
	}
	fmt.Fprintf(opts.Progress, "devcluster: installed MinIO in %s\n", time.Since(start).Round(time.Second))
	return bin, nil
}
