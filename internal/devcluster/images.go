package devcluster

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"time"

	"github.com/lastcall-dev/lastcall/internal/image"
)

// LocalImage builds the package pkg of the lastcall checkout (e.g.
// "./cmd/lastcall") into an image for this machine's platform, the way
// `make images` does, and writes it to dir as an archive named ref, ready
// for RealNodeOptions.Images. It returns the archive's path.
func LocalImage(ctx context.Context, opts BuildOptions, name, pkg, ref, dir string) (string, error) {
	src, err := findSourceDir(opts.SourceDir)
	if err != nil {
		return "", err
	}
	platform := "linux/" + runtime.GOARCH
	bin, err := image.GoBuild(ctx, src, pkg, platform, "")
	if err != nil {
		return "", err
	}
	created := time.Unix(0, 0).UTC()
	idx, err := image.Build(image.Spec{Name: name, Binaries: map[string][]byte{platform: bin},
		Version: "dev", Revision: "local", Created: created, Description: name + " (local test build)"})
	if err != nil {
		return "", fmt.Errorf("image %s: %w", name, err)
	}
	return image.WriteLayout(filepath.Join(dir, name), idx, ref, created)
}
