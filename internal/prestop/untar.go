package prestop

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
)

// extractStats counts what extract wrote.
type extractStats struct {
	files, dirs, links int
	bytes              int64
}

// extract unpacks the tar in r under root, which should be empty. Every
// write goes through root, which refuses to leave it even through symlinks;
// on top of that, names that are absolute or contain "..", symlinks whose
// target points outside, and entry types other than files, directories and
// symlinks are refused with ErrUnsafeArchive, so a hostile archive fails
// loudly instead of half-restoring.
func extract(r io.Reader, root *os.Root) (extractStats, error) {
	var st extractStats
	var links []string
	type dirMode struct {
		name string
		mode fs.FileMode
	}
	var dirs []dirMode
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return st, fmt.Errorf("read tar: %w", err)
		}
		name, err := entryName(hdr.Name)
		if err != nil {
			return st, err
		}
		if isSparse(hdr) {
			// A sparse entry expands holes to zeros: a small archive could
			// fill the disk. The save step never writes one.
			return st, fmt.Errorf("%w: %q is a sparse file", ErrUnsafeArchive, hdr.Name)
		}
		if name == "." {
			continue // the archive's own top directory
		}
		perm := fs.FileMode(hdr.Mode).Perm()
		if dir := path.Dir(name); dir != "." {
			if err := root.MkdirAll(dir, 0o755); err != nil {
				return st, err
			}
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			// Owner-writable while extracting; the archive's mode is set
			// once everything inside is written.
			if err := root.MkdirAll(name, 0o700); err != nil {
				return st, err
			}
			dirs = append(dirs, dirMode{name, perm})
			st.dirs++
		case tar.TypeReg:
			n, err := writeEntry(root, name, perm, tr, hdr.Size)
			st.bytes += n
			if err != nil {
				return st, err
			}
			_ = root.Chtimes(name, hdr.ModTime, hdr.ModTime)
			st.files++
		case tar.TypeSymlink:
			if err := checkLinkTarget(name, hdr.Linkname); err != nil {
				return st, err
			}
			if err := root.Symlink(hdr.Linkname, name); err != nil {
				return st, err
			}
			links = append(links, name)
			st.links++
		default:
			return st, fmt.Errorf("%w: %q has type %q (only files, directories and symlinks are restored)", ErrUnsafeArchive, hdr.Name, hdr.Typeflag)
		}
	}
	// Each link was checked alone; a chain (b -> a/.. with a -> .) can
	// still point outside. Resolving through root catches that.
	for _, l := range links {
		if _, err := root.Stat(l); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return st, fmt.Errorf("%w: symlink %q resolves outside the directory: %v", ErrUnsafeArchive, l, err)
		}
	}
	for _, d := range slices.Backward(dirs) {
		if err := root.Chmod(d.name, d.mode); err != nil {
			return st, err
		}
	}
	return st, nil
}

func writeEntry(root *os.Root, name string, perm fs.FileMode, r io.Reader, size int64) (int64, error) {
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return 0, err // a duplicate name too: the archive is not ours
	}
	n, err := io.CopyN(f, r, size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// entryName returns the cleaned, slash-separated name of a tar entry, or
// ErrUnsafeArchive when it is absolute or climbs with "..".
func entryName(name string) (string, error) {
	if name == "" || strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("%w: empty or NUL in entry name %q", ErrUnsafeArchive, name)
	}
	if strings.HasPrefix(name, "/") || strings.Contains(name, "\\") {
		return "", fmt.Errorf("%w: absolute or backslashed entry name %q", ErrUnsafeArchive, name)
	}
	if slices.Contains(strings.Split(name, "/"), "..") {
		return "", fmt.Errorf("%w: entry name %q has a \"..\" segment", ErrUnsafeArchive, name)
	}
	return path.Clean(name), nil
}

// checkLinkTarget refuses absolute targets and relative ones that climb out
// of the directory from where the link sits.
func checkLinkTarget(name, target string) error {
	if target == "" || path.IsAbs(target) {
		return fmt.Errorf("%w: symlink %q -> %q: absolute or empty target", ErrUnsafeArchive, name, target)
	}
	resolved := path.Join(path.Dir(name), target)
	if resolved == ".." || strings.HasPrefix(resolved, "../") {
		return fmt.Errorf("%w: symlink %q -> %q points outside the directory", ErrUnsafeArchive, name, target)
	}
	return nil
}

// isSparse reports a GNU or PAX sparse entry, which tar.Reader expands.
func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}
