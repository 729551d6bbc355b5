package prestop

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// tarStats counts what writeTar put in the archive.
type tarStats struct {
	files, dirs, links, skipped int
	bytes                       int64 // file contents, before tar framing
}

// writeTar streams paths as one tar to w: a directory's contents at the top
// of the archive, a file under its base name, symlinks as symlinks (never
// followed below a top-level path). Sockets, pipes and devices are skipped.
// Files that vanish while walking are skipped: the app may still remove temp
// files. Two paths yielding the same name are an error, not a silent merge.
func writeTar(w io.Writer, paths []string) (tarStats, error) {
	var st tarStats
	tw := tar.NewWriter(w)
	seen := make(map[string]string)
	for _, p := range paths {
		root, err := filepath.EvalSymlinks(p)
		if err != nil {
			return st, permanent(fmt.Errorf("save %s: %w", p, err))
		}
		info, err := os.Stat(root)
		if err != nil {
			return st, permanent(fmt.Errorf("save %s: %w", p, err))
		}
		if !info.IsDir() {
			if err := addEntry(tw, &st, seen, p, root, filepath.Base(root), info); err != nil {
				return st, err
			}
			continue
		}
		err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			if path == root {
				return nil
			}
			info, err := d.Info()
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(root, path)
			if err != nil {
				return err
			}
			return addEntry(tw, &st, seen, p, path, filepath.ToSlash(rel), info)
		})
		if err != nil {
			return st, fmt.Errorf("save %s: %w", p, err)
		}
	}
	return st, tw.Close()
}

func addEntry(tw *tar.Writer, st *tarStats, seen map[string]string, from, path, name string, info fs.FileInfo) error {
	if prev, dup := seen[name]; dup {
		return permanent(fmt.Errorf("%q is in both --save %s and --save %s", name, prev, from))
	}
	seen[name] = from
	hdr := &tar.Header{Name: name, Mode: int64(info.Mode().Perm()), ModTime: info.ModTime(), Format: tar.FormatPAX}
	switch {
	case info.Mode().IsRegular():
		hdr.Typeflag, hdr.Size = tar.TypeReg, info.Size()
	case info.IsDir():
		hdr.Typeflag, hdr.Name = tar.TypeDir, name+"/"
	case info.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
	default:
		st.skipped++
		return nil
	}
	if hdr.Typeflag != tar.TypeReg {
		if hdr.Typeflag == tar.TypeDir {
			st.dirs++
		} else {
			st.links++
		}
		return tw.WriteHeader(hdr)
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	// The header promised info.Size() bytes: a file that grows is cut there,
	// one that shrinks fails this attempt (the retry reads it anew).
	n, err := io.CopyN(tw, f, hdr.Size)
	st.bytes += n
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%s shrank while being read", path)
	}
	if err != nil {
		return err
	}
	st.files++
	return nil
}
