package state

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/memblob" // mem:// for tests and throwaway servers
	_ "gocloud.dev/blob/s3blob"  // s3:// (AWS and S3-compatible servers)
	"gocloud.dev/gcerrors"
)

// DefaultURL is where the state service keeps objects unless told otherwise.
const DefaultURL = "file:///var/lib/lastcall/state"

// Store keeps versioned objects in a gocloud.dev blob bucket, one object per
// version named <namespace>/<key>/@v/<version>. "@" is outside the key
// charset, so "/@v/" ends every key unambiguously ("a" and "a/b" never mix).
type Store struct {
	bucket  *blob.Bucket
	files   *fileSync // set for file:// only
	buffers sync.Pool
	// beforeCommit, if set, runs after the payload is written and synced
	// and before it is committed: the crash tests kill the process there.
	beforeCommit func()
}

// OpenStore opens a bucket URL: file:///dir (created if missing; no query
// parameters), mem://, or s3://bucket?region=...&endpoint=... (any query
// gocloud.dev's s3blob accepts, plus prefix=).
func OpenStore(ctx context.Context, rawURL string) (*Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("open state store: %w", err)
	}
	s := &Store{}
	s.buffers.New = func() any { return &buffer{b: make([]byte, copyBufferSize)} }
	if u.Scheme != fileblob.Scheme {
		if s.bucket, err = blob.OpenBucket(ctx, rawURL); err != nil {
			return nil, fmt.Errorf("open state store %s: %w", u.Redacted(), err)
		}
		return s, nil
	}
	if (u.Host != "" && u.Host != "localhost") || u.RawQuery != "" || !filepath.IsAbs(u.Path) {
		return nil, fmt.Errorf("open state store %s: want file:///absolute/dir without parameters", rawURL)
	}
	dir := filepath.Clean(u.Path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("open state store: %w", err)
	}
	if s.files, err = newFileSync(dir); err != nil {
		return nil, fmt.Errorf("open state store: %w", err)
	}
	// Temp files next to their final name, so that the rename stays on one
	// file system; no .attrs sidecars, which fileblob writes without fsync
	// (all metadata lives in the object's footer).
	s.bucket, err = fileblob.OpenBucket(dir, &fileblob.Options{
		NoTempDir:   true,
		Metadata:    fileblob.MetadataDontWrite,
		DirFileMode: 0o750,
	})
	if err != nil {
		return nil, fmt.Errorf("open state store: %w", err)
	}
	return s, nil
}

// Close releases the bucket.
func (s *Store) Close() error { return s.bucket.Close() }

func objectName(ns, key, version string) string { return ns + "/" + key + "/@v/" + version }

func versionsPrefix(ns, key string) string { return ns + "/" + key + "/@v/" }

// splitName parses an object name into namespace, key and version; ok is
// false for anything else (fileblob temp files, foreign objects).
func splitName(name string) (ns, key, version string, ok bool) {
	ns, rest, found := strings.Cut(name, "/")
	if !found || ValidateNamespace(ns) != nil {
		return "", "", "", false
	}
	i := strings.LastIndex(rest, "/@v/")
	if i < 0 {
		return "", "", "", false
	}
	key, version = rest[:i], rest[i+len("/@v/"):]
	if _, err := ParseKey(key); err != nil {
		return "", "", "", false
	}
	if _, err := ParseVersion(version); err != nil {
		return "", "", "", false
	}
	return ns, key, version, true
}

// PutOptions describes a version to store.
type PutOptions struct {
	Namespace string
	Key       string
	// Pod that sent the state; optional, recorded.
	Pod string
	// ContentType of the payload; default application/octet-stream.
	ContentType string
	// SHA256 is the payload's expected digest in hex; optional. A mismatch
	// fails Put with ErrChecksumMismatch and stores nothing.
	SHA256 string
	// Created is the version's time (required); its ID sorts by it.
	Created time.Time
}

func (o *PutOptions) validate() error {
	if o.Created.IsZero() {
		return errors.New("put: no creation time")
	}
	if err := ValidateNamespace(o.Namespace); err != nil {
		return err
	}
	if _, err := ParseKey(o.Key); err != nil {
		return err
	}
	if err := validatePod(o.Pod); err != nil {
		return err
	}
	if o.ContentType == "" {
		o.ContentType = "application/octet-stream"
	}
	if err := validateContentType(o.ContentType); err != nil {
		return err
	}
	if o.SHA256 != "" {
		o.SHA256 = strings.ToLower(o.SHA256)
		if len(o.SHA256) != 2*sha256.Size || !isLowerHex(o.SHA256) {
			return fmt.Errorf("%w: want %d hex digits", ErrInvalidChecksum, 2*sha256.Size)
		}
	}
	return nil
}

// Put streams body into a new version. Nothing becomes visible unless the
// whole body was read, its checksum matched and the object was committed:
// on any failure the write is aborted (ctx cancelled before Close, so
// fileblob removes its temp file and S3 aborts the upload), and the versions
// already stored are untouched.
func (s *Store) Put(ctx context.Context, opts PutOptions, body io.Reader) (Meta, error) {
	if err := opts.validate(); err != nil {
		return Meta{}, err
	}
	m := Meta{Namespace: opts.Namespace, Key: opts.Key, Version: Version{
		ID: newVersion(opts.Created), Pod: opts.Pod, ContentType: opts.ContentType, Created: opts.Created.UTC(),
	}}
	name := objectName(m.Namespace, m.Key, m.ID)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var tmp *os.File
	wopts := &blob.WriterOptions{ContentType: "application/octet-stream"}
	if s.files != nil {
		wopts.BeforeWrite = func(as func(any) bool) error {
			if !as(&tmp) {
				return errors.New("fileblob did not expose its temp file")
			}
			return nil
		}
	}
	w, err := s.bucket.NewWriter(wctx, name, wopts)
	if err != nil {
		return Meta{}, fmt.Errorf("write %s: %w", name, err)
	}
	abort := func(err error) (Meta, error) {
		cancel()
		_ = w.Close() // reports the cancellation; the write is gone
		return Meta{}, err
	}
	h := sha256.New()
	if m.Size, err = s.copyHashed(w, body, h); err != nil {
		if errors.Is(err, ErrIncompleteBody) {
			return abort(err)
		}
		return abort(fmt.Errorf("write %s: %w", name, err))
	}
	m.SHA256 = hex.EncodeToString(h.Sum(nil))
	if opts.SHA256 != "" && opts.SHA256 != m.SHA256 {
		return abort(fmt.Errorf("%w: got %s, expected %s", ErrChecksumMismatch, m.SHA256, opts.SHA256))
	}
	footer, err := encodeFooter(m)
	if err != nil {
		return abort(fmt.Errorf("write %s: %w", name, err))
	}
	if _, err := w.Write(footer); err != nil {
		return abort(fmt.Errorf("write %s: %w", name, err))
	}
	if tmp != nil {
		if err := tmp.Sync(); err != nil {
			return abort(fmt.Errorf("sync %s: %w", name, err))
		}
	}
	if s.beforeCommit != nil {
		s.beforeCommit()
	}
	if err := w.Close(); err != nil {
		return Meta{}, fmt.Errorf("commit %s: %w", name, err)
	}
	if s.files != nil {
		if err := s.files.committed(name); err != nil {
			return Meta{}, fmt.Errorf("commit %s: %w", name, err)
		}
	}
	return m, nil
}

// Object is an open version: its metadata and its payload.
type Object struct {
	Meta
	io.ReadCloser
}

// Open opens a version of a key, the newest when version is "". It returns
// ErrNotFound when there is none.
func (s *Store) Open(ctx context.Context, ns, key, version string) (*Object, error) {
	if version != "" {
		if _, err := ParseVersion(version); err != nil {
			return nil, err
		}
		a, err := s.bucket.Attributes(ctx, objectName(ns, key, version))
		if err != nil {
			return nil, s.readErr(ns, key, version, err)
		}
		return s.open(ctx, ns, key, version, a.Size)
	}
	// The newest version listed can be deleted before it is opened (by
	// retention, once newer ones arrived): look again.
	for attempt := 1; ; attempt++ {
		vs, err := s.listVersions(ctx, ns, key)
		if err != nil {
			return nil, err
		}
		if len(vs) == 0 {
			return nil, fmt.Errorf("%s/%s: %w", ns, key, ErrNotFound)
		}
		obj, err := s.open(ctx, ns, key, vs[0].version, vs[0].size)
		if errors.Is(err, ErrNotFound) && attempt < scanAttempts {
			continue
		}
		return obj, err
	}
}

func (s *Store) open(ctx context.Context, ns, key, version string, size int64) (*Object, error) {
	name := objectName(ns, key, version)
	m, err := s.readFooter(ctx, name, size)
	if err != nil {
		return nil, s.readErr(ns, key, version, err)
	}
	r, err := s.bucket.NewRangeReader(ctx, name, 0, m.Size, nil)
	if err != nil {
		return nil, s.readErr(ns, key, version, err)
	}
	return &Object{Meta: m, ReadCloser: r}, nil
}

func (s *Store) readErr(ns, key, version string, err error) error {
	if gcerrors.Code(err) == gcerrors.NotFound {
		return fmt.Errorf("%s/%s version %s: %w", ns, key, version, ErrNotFound)
	}
	return fmt.Errorf("read %s/%s version %s: %w", ns, key, version, err)
}

// readFooter reads the footer of an object of size bytes in one ranged read.
func (s *Store) readFooter(ctx context.Context, name string, size int64) (Meta, error) {
	n := min(size, maxFooterJSON+trailerLen)
	if n < trailerLen {
		return Meta{}, fmt.Errorf("%w: %s has %d bytes", ErrCorrupt, name, size)
	}
	r, err := s.bucket.NewRangeReader(ctx, name, size-n, n, nil)
	if err != nil {
		return Meta{}, err
	}
	defer r.Close()
	tail, err := io.ReadAll(r)
	if err != nil {
		return Meta{}, err
	}
	m, err := decodeFooter(tail, size)
	if err != nil {
		return Meta{}, fmt.Errorf("%s: %w", name, err)
	}
	return m, nil
}
