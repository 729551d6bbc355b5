package main

import (
	"cmp"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"

	"github.com/lastcall-dev/lastcall/internal/image"
)

// images are what `lastcall-dev images` builds: the shipped binary, the
// small preStop helper for app images, and the test node's sandbox image.
var images = []struct{ name, pkg, description string }{
	{"lastcall", "./cmd/lastcall", "lastcall: server, node agent, prestop, restore, lint"},
	{"lastcall-prestop", "./cmd/lastcall-prestop", "the small static preStop helper and restore, to copy into app images"},
	{"lastcall-pause", "./cmd/lastcall-pause", "the sandbox (pause) image of the project's test node"},
}

type imagesOptions struct {
	out, version, revision, source, repo string
	platforms                            []string
}

func newImagesCommand() *cobra.Command {
	o := &imagesOptions{}
	cmd := &cobra.Command{
		Use:   "images",
		Short: "Build the OCI images (no Docker): one OCI layout and tar per image, linux/amd64 and linux/arm64 in one index",
		Long: `Builds each image from the checkout with go-containerregistry: a static
binary on an empty base, user 65532, labelled with the version and the
source revision. Every time in it is the commit's time, so the same commit
gives the same digests. Writes <out>/<name> (an OCI image layout) and
<out>/<name>.tar, which ctr images import and skopeo read.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	f := cmd.Flags()
	f.StringVar(&o.out, "out", "bin/images", "directory for the layouts and tars")
	f.StringVar(&o.version, "version", "", "version label (default: git describe)")
	f.StringVar(&o.revision, "revision", "", "source revision label (default: git rev-parse HEAD)")
	f.StringVar(&o.source, "source", "https://github.com/lastcall-dev/lastcall", "source repository label")
	f.StringVar(&o.repo, "repository", "ghcr.io/lastcall-dev", "repository the images are named in (the layouts' ref names)")
	f.StringSliceVar(&o.platforms, "platforms", image.Platforms, "platforms to build")
	return cmd
}

func git(args ...string) string {
	out, err := exec.Command("git", args...).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// created is SOURCE_DATE_EPOCH, else the commit's time.
func created() (time.Time, error) {
	epoch := cmp.Or(os.Getenv("SOURCE_DATE_EPOCH"), git("log", "-1", "--format=%ct"))
	sec, err := strconv.ParseInt(epoch, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("no build time: set SOURCE_DATE_EPOCH or run in a git checkout (%q)", epoch)
	}
	return time.Unix(sec, 0).UTC(), nil
}

func (o *imagesOptions) run(cmd *cobra.Command) error {
	when, err := created()
	if err != nil {
		return err
	}
	version := cmp.Or(o.version, git("describe", "--tags", "--always", "--dirty"), "devel")
	revision := cmp.Or(o.revision, git("rev-parse", "HEAD"), "unknown")
	ldflags := "-X github.com/lastcall-dev/lastcall/internal/version.Version=" + version
	for _, im := range images {
		bins := map[string][]byte{}
		for _, p := range o.platforms {
			b, err := image.GoBuild(cmd.Context(), ".", im.pkg, p, ldflags)
			if err != nil {
				return err
			}
			bins[p] = b
		}
		idx, err := image.Build(image.Spec{Name: im.name, Binaries: bins, Version: version, Revision: revision,
			Source: o.source, Created: when, Description: im.description})
		if err != nil {
			return err
		}
		ref := o.repo + "/" + im.name + ":" + strings.ReplaceAll(version, "+", "-")
		archive, err := image.WriteLayout(filepath.Join(o.out, im.name), idx, ref, when)
		if err != nil {
			return err
		}
		d, _ := idx.Digest()
		sizes, err := compressedSizes(idx)
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s@%s  %s (%s)\n", ref, d, archive, sizes)
	}
	return nil
}

// compressedSizes says what a pull of each platform's image transfers: its
// compressed layers, config and manifest.
func compressedSizes(idx v1.ImageIndex) (string, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return "", err
	}
	var out []string
	for _, desc := range im.Manifests {
		img, err := idx.Image(desc.Digest)
		if err != nil {
			return "", err
		}
		total := desc.Size
		layers, err := img.Layers()
		if err != nil {
			return "", err
		}
		for _, l := range layers {
			n, err := l.Size()
			if err != nil {
				return "", err
			}
			total += n
		}
		if cfg, err := img.RawConfigFile(); err == nil {
			total += int64(len(cfg))
		}
		out = append(out, fmt.Sprintf("%s %.1f MB compressed", desc.Platform, float64(total)/1e6))
	}
	return strings.Join(out, ", "), nil
}

func newPushCommand() *cobra.Command {
	var dir, registry string
	cmd := &cobra.Command{
		Use:   "push --registry REGISTRY",
		Short: "Push the images `images` built to a registry, by digest, with their version tag",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if registry == "" {
				return fmt.Errorf("--registry is required (e.g. ghcr.io/lastcall-dev)")
			}
			for _, im := range images {
				p, err := layout.FromPath(filepath.Join(dir, im.name))
				if err != nil {
					return fmt.Errorf("%s: %w (run lastcall-dev images first)", im.name, err)
				}
				top, err := p.ImageIndex()
				if err != nil {
					return err
				}
				tm, err := top.IndexManifest()
				if err != nil || len(tm.Manifests) != 1 {
					return fmt.Errorf("%s: the layout should hold one image index", im.name)
				}
				idx, err := top.ImageIndex(tm.Manifests[0].Digest)
				if err != nil {
					return err
				}
				refName := tm.Manifests[0].Annotations["org.opencontainers.image.ref.name"]
				tag := refName[strings.LastIndex(refName, ":")+1:]
				ref, err := name.NewTag(registry + "/" + im.name + ":" + tag)
				if err != nil {
					return err
				}
				if err := remote.WriteIndex(ref, idx, remote.WithAuthFromKeychain(authn.DefaultKeychain), remote.WithContext(cmd.Context())); err != nil {
					return fmt.Errorf("push %s: %w", ref, err)
				}
				d, _ := idx.Digest()
				fmt.Fprintf(cmd.OutOrStdout(), "pushed %s@%s\n", ref, d)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "bin/images", "directory `images` wrote")
	cmd.Flags().StringVar(&registry, "registry", "", "registry and repository prefix to push to")
	return cmd
}
