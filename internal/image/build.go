package image

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// GoBuild compiles pkg (run in dir, the module root) as a static binary for
// p: CGO off, -trimpath, no build ID, stripped, so that the same commit
// gives the same bytes.
func GoBuild(ctx context.Context, dir, pkg, platform, ldflags string) ([]byte, error) {
	p, err := v1.ParsePlatform(platform)
	if err != nil {
		return nil, err
	}
	out := filepath.Join(os.TempDir(), fmt.Sprintf("lastcall-image-%d-%s-%s", os.Getpid(), p.OS, p.Architecture))
	defer os.Remove(out)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags", "-s -w -buildid= "+ldflags, "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture, "GOFLAGS=-trimpath")
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build %s for %s: %w\n%s", pkg, platform, err, b)
	}
	return os.ReadFile(out)
}

// WriteLayout writes idx as an OCI image layout in dir, its index.json
// naming it ref (for `ctr images import` and skopeo), and the same as one
// tar file, dir+".tar", whose entries are in a fixed order with fixed times.
func WriteLayout(dir string, idx v1.ImageIndex, ref string, created time.Time) (string, error) {
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return "", err
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": ref,
		"io.containerd.image.name":          ref,
	})); err != nil {
		return "", err
	}
	archive := dir + ".tar"
	return archive, tarDir(dir, archive, created)
}

// tarDir writes the files under dir into archive, sorted, with mtime
// created and no owner.
func tarDir(dir, archive string, created time.Time) error {
	var paths []string
	if err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		paths = append(paths, path)
		return nil
	}); err != nil {
		return err
	}
	slices.Sort(paths)
	f, err := os.Create(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, path := range paths {
		fi, err := os.Stat(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		h := &tar.Header{Name: filepath.ToSlash(rel), ModTime: created.UTC(), Format: tar.FormatPAX, Mode: 0o644, Typeflag: tar.TypeReg, Size: fi.Size()}
		if fi.IsDir() {
			h.Name, h.Mode, h.Typeflag, h.Size = h.Name+"/", 0o755, tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if fi.IsDir() {
			continue
		}
		src, err := os.Open(path)
		if err != nil {
			return err
		}
		_, err = io.Copy(tw, src)
		src.Close()
		if err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}
