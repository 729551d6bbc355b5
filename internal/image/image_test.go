package image

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func spec() Spec {
	return Spec{Name: "lastcall", Version: "v1.2.3", Revision: "0123abcd", Source: "https://example.invalid/lastcall",
		Created:  time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC),
		Binaries: map[string][]byte{"linux/arm64": []byte("arm binary"), "linux/amd64": []byte("amd binary")}}
}

// TestBuildIsReproducibleAndNonRoot: the same inputs give the same index
// digest; each platform's image runs the binary as 65532 from an empty base
// with the labels; a change of input changes the digest.
func TestBuildIsReproducibleAndNonRoot(t *testing.T) {
	a, err := Build(spec())
	if err != nil {
		t.Fatal(err)
	}
	b, err := Build(spec())
	if err != nil {
		t.Fatal(err)
	}
	da, _ := a.Digest()
	db, _ := b.Digest()
	if da != db {
		t.Fatalf("two builds of the same inputs: %s and %s", da, db)
	}
	other := spec()
	other.Revision = "fedcba98"
	c, err := Build(other)
	if err != nil {
		t.Fatal(err)
	}
	if dc, _ := c.Digest(); dc == da {
		t.Fatal("another revision gave the same digest")
	}
	if mt, _ := a.MediaType(); mt != types.OCIImageIndex {
		t.Errorf("index media type %s", mt)
	}
	im, err := a.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 2 || im.Manifests[0].Platform.Architecture != "amd64" || im.Manifests[1].Platform.Architecture != "arm64" {
		t.Fatalf("manifests %+v, want amd64 then arm64", im.Manifests)
	}
	for _, d := range im.Manifests {
		img, err := a.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.Config.User != "65532:65532" || cf.Config.Entrypoint[0] != "/usr/local/bin/lastcall" || cf.Architecture != d.Platform.Architecture ||
			cf.Config.Labels["org.opencontainers.image.revision"] != "0123abcd" || !cf.Created.Time.Equal(spec().Created) {
			t.Errorf("%s config: %+v", d.Platform, cf)
		}
		layers, err := img.Layers()
		if err != nil || len(layers) != 1 {
			t.Fatalf("%s: %d layers, %v; want one", d.Platform, len(layers), err)
		}
		rc, err := layers[0].Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		files := map[string]*tar.Header{}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			files[h.Name] = h
			if !h.ModTime.Equal(spec().Created) || h.Uid != 0 {
				t.Errorf("%s: %s has mtime %s uid %d", d.Platform, h.Name, h.ModTime, h.Uid)
			}
		}
		rc.Close()
		if h := files["usr/local/bin/lastcall"]; h == nil || h.Mode != 0o755 {
			t.Errorf("%s: binary %+v", d.Platform, h)
		}
		if files["etc/passwd"] == nil || files["tmp/"] == nil || files["tmp/"].Mode != 0o1777 {
			t.Errorf("%s: rootfs %v", d.Platform, files)
		}
	}
}

// TestWriteLayoutTwiceGivesTheSameArchive: the layout tar is byte-for-byte
// the same when written again, and names the image for importers.
func TestWriteLayoutTwiceGivesTheSameArchive(t *testing.T) {
	idx, err := Build(spec())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var archives [2][]byte
	for i := range archives {
		tarPath, err := WriteLayout(filepath.Join(dir, "lastcall"), idx, "example.invalid/lastcall:v1.2.3", spec().Created)
		if err != nil {
			t.Fatal(err)
		}
		if archives[i], err = os.ReadFile(tarPath); err != nil {
			t.Fatal(err)
		}
	}
	if string(archives[0]) != string(archives[1]) {
		t.Fatal("two writes of the same index differ")
	}
	p, err := layout.FromPath(filepath.Join(dir, "lastcall"))
	if err != nil {
		t.Fatal(err)
	}
	top, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, _ := top.IndexManifest()
	if len(im.Manifests) != 1 || im.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "example.invalid/lastcall:v1.2.3" {
		t.Fatalf("layout index %+v", im.Manifests)
	}
	want, _ := idx.Digest()
	if im.Manifests[0].Digest != want {
		t.Fatalf("layout names %s, want the index %s", im.Manifests[0].Digest, want)
	}
}
