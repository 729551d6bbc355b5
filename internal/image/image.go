// Package image builds lastcall's container images without Docker, with
// go-containerregistry: one static Go binary on an empty base, a non-root
// user, for several platforms in one OCI image index. The same inputs (the
// same binaries, version, revision and time) give the same digest, so an
// image can be rebuilt from its commit and checked.
package image

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"slices"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// UID and GID the images run as: distroless's nonroot.
const UID = 65532

// Spec is one image.
type Spec struct {
	// Name is the binary's name, installed as /usr/local/bin/<Name> and
	// run as the entrypoint.
	Name string
	// Binaries are the binary's bytes per platform ("linux/amd64").
	Binaries map[string][]byte
	// Version and Revision label the image (org.opencontainers.image.*).
	Version, Revision, Source string
	// Created stamps every file, the config and the history: the source's
	// commit time, so that a rebuild gives the same digest.
	Created time.Time
	// Description is the image's org.opencontainers.image.description.
	Description string
}

// Build assembles the image index: one image per platform, in a fixed
// platform order.
func Build(s Spec) (v1.ImageIndex, error) {
	if s.Name == "" || len(s.Binaries) == 0 {
		return nil, fmt.Errorf("image: a name and at least one binary are required")
	}
	labels := map[string]string{
		"org.opencontainers.image.title":       s.Name,
		"org.opencontainers.image.version":     s.Version,
		"org.opencontainers.image.revision":    s.Revision,
		"org.opencontainers.image.source":      s.Source,
		"org.opencontainers.image.created":     s.Created.UTC().Format(time.RFC3339),
		"org.opencontainers.image.description": s.Description,
		"org.opencontainers.image.licenses":    "Apache-2.0",
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, name := range sortedPlatforms(s.Binaries) {
		p, err := v1.ParsePlatform(name)
		if err != nil {
			return nil, err
		}
		img, err := s.image(*p, s.Binaries[name], labels)
		if err != nil {
			return nil, fmt.Errorf("image %s for %s: %w", s.Name, name, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: p}})
	}
	return mutate.Annotations(idx, map[string]string{
		"org.opencontainers.image.version":  s.Version,
		"org.opencontainers.image.revision": s.Revision,
		"org.opencontainers.image.created":  labels["org.opencontainers.image.created"],
	}).(v1.ImageIndex), nil
}

func (s Spec) image(p v1.Platform, binary []byte, labels map[string]string) (v1.Image, error) {
	layerTar, err := s.rootfs(binary)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	created := v1.Time{Time: s.Created.UTC()}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, MediaType: types.OCILayer,
		History: v1.History{Created: created, CreatedBy: "lastcall-dev images: /usr/local/bin/" + s.Name}})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS, cf.Variant = p.Architecture, p.OS, p.Variant
	cf.Created = created
	cf.Config.User = fmt.Sprintf("%d:%d", UID, UID)
	cf.Config.Entrypoint = []string{"/usr/local/bin/" + s.Name}
	cf.Config.Env = []string{"PATH=/usr/local/bin"}
	cf.Config.WorkingDir = "/"
	cf.Config.Labels = labels
	return mutate.ConfigFile(img, cf)
}

// rootfs is the one layer: the binary, and /etc/passwd and /etc/group that
// name the non-root user (tools that resolve the user need them). Every
// entry has the same owner, the creation time and a fixed order.
func (s Spec) rootfs(binary []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mod := s.Created.UTC()
	dir := func(name string) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: mod, Format: tar.FormatPAX})
	}
	file := func(name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: mod, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", UID, UID)
	group := fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", UID)
	steps := []func() error{
		func() error { return dir("etc/") },
		func() error { return file("etc/group", 0o644, []byte(group)) },
		func() error { return file("etc/passwd", 0o644, []byte(passwd)) },
		func() error {
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777, ModTime: mod, Format: tar.FormatPAX})
		},
		func() error { return dir("usr/") },
		func() error { return dir("usr/local/") },
		func() error { return dir("usr/local/bin/") },
		func() error { return file("usr/local/bin/"+s.Name, 0o755, binary) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Platforms the release images are built for.
var Platforms = []string{"linux/amd64", "linux/arm64"}

// sortedPlatforms orders the platforms: Platforms first, then the others
// by name, so that the index does not depend on map order.
func sortedPlatforms(m map[string][]byte) []string {
	var out, other []string
	for _, p := range Platforms {
		if _, ok := m[p]; ok {
			out = append(out, p)
		}
	}
	for p := range m {
		if !slices.Contains(Platforms, p) {
			other = append(other, p)
		}
	}
	slices.Sort(other)
	return append(out, other...)
}
