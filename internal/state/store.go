package state

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
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
// version named <namespace>/<shard>/<key>@<version>, where shard is two hex
// digits hashed from the key. "@" is outside the key charset, so the last
// "@" ends every key unambiguously ("a" and "a/b" never mix). On file:// the
// shard is a directory, so finding a key's versions reads a 256th of its
// namespace, not all of it.
//
// A file:// store belongs to one process: its per-key locks (put, prune and
// delete of a key are serialised) are in memory. Several replicas share an
// s3:// store.
type Store struct {
	bucket *blob.Bucket
	files  *fileStore // set for file:// only
	locks  keyLocks
	// OnUnreadable, if set, hears of each object a read or listing skipped
	// because it is damaged (the server logs and counts them).
	OnUnreadable func(name string, err error)
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
	if s.files, err = openFileStore(dir); err != nil {
		return nil, fmt.Errorf("open state store: %w", err)
	}
	// Reads and deletes go through fileblob; writes and listings do not (see
	// fileStore). No .attrs sidecars: all metadata lives in the footer.
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

func objectName(ns, key, version string) string { return versionsPrefix(ns, key) + version }

func versionsPrefix(ns, key string) string { return ns + "/" + shard(key) + "/" + key + "@" }

// shard spreads a namespace's keys over 256 prefixes (FNV-1a, low byte).
func shard(key string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	const digits = "0123456789abcdef"
	b := byte(h.Sum32())
	return string([]byte{digits[b>>4], digits[b&0xf]})
}

// splitName parses an object name into namespace, key and version; ok is
// false for anything else (temp files, foreign objects).
func splitName(name string) (ns, key, version string, ok bool) {
	ns, rest, found := strings.Cut(name, "/")
	if !found || ValidateNamespace(ns) != nil {
		return "", "", "", false
	}
	sh, rest, found := strings.Cut(rest, "/")
	if !found {
		return "", "", "", false
	}
	i := strings.LastIndex(rest, "@")
	if i < 0 {
		return "", "", "", false
	}
	key, version = rest[:i], rest[i+1:]
	if _, err := ParseKey(key); err != nil || sh != shard(key) {
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
	// TrailerSHA256, if set, is called once the whole body has been read
	// and may return the expected digest then (an HTTP trailer, sent by
	// clients that stream and hash as they go); checked like SHA256.
	TrailerSHA256 func() string
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

// checkSum compares the payload's digest with the expected ones, if any.
func (o *PutOptions) checkSum(got string) error {
	for _, want := range []string{o.SHA256, o.trailer()} {
		if want == "" {
			continue
		}
		want = strings.ToLower(want)
		if len(want) != 2*sha256.Size || !isLowerHex(want) {
			return fmt.Errorf("%w: want %d hex digits", ErrInvalidChecksum, 2*sha256.Size)
		}
		if want != got {
			return fmt.Errorf("%w: got %s, expected %s", ErrChecksumMismatch, got, want)
		}
	}
	return nil
}

func (o *PutOptions) trailer() string {
	if o.TrailerSHA256 == nil {
		return ""
	}
	return o.TrailerSHA256()
}

// Put streams body into a new version. Nothing becomes visible unless the
// whole body was read, its checksum matched and the object was committed:
// on any failure the write is aborted (the temp file removed, the S3 upload
// aborted), and the versions already stored are untouched.
func (s *Store) Put(ctx context.Context, opts PutOptions, body io.Reader) (Meta, error) {
	if err := opts.validate(); err != nil {
		return Meta{}, err
	}
	m := Meta{Namespace: opts.Namespace, Key: opts.Key, Version: Version{
		ID: newVersion(opts.Created), Pod: opts.Pod, ContentType: opts.ContentType, Created: opts.Created.UTC(),
	}}
	name := objectName(m.Namespace, m.Key, m.ID)
	var (
		w   versionWriter
		err error
	)
	if s.files != nil {
		w, err = s.files.create(name)
	} else {
		w, err = newBlobVersion(ctx, s.bucket, name)
	}
	if err != nil {
		return Meta{}, fmt.Errorf("write %s: %w", name, err)
	}
	abort := func(err error) (Meta, error) {
		w.abort()
		return Meta{}, err
	}
	h := sha256.New()
	src := &bodyReader{r: body}
	if m.Size, err = io.Copy(io.MultiWriter(w, h), src); err != nil {
		if src.err != nil {
			return abort(fmt.Errorf("%w after %d bytes: %w", ErrIncompleteBody, m.Size, src.err))
		}
		return abort(fmt.Errorf("write %s: %w", name, err))
	}
	m.SHA256 = hex.EncodeToString(h.Sum(nil))
	if err := opts.checkSum(m.SHA256); err != nil {
		return abort(err)
	}
	footer, err := encodeFooter(m)
	if err != nil {
		return abort(fmt.Errorf("write %s: %w", name, err))
	}
	if _, err := w.Write(footer); err != nil {
		return abort(fmt.Errorf("write %s: %w", name, err))
	}
	if err := w.sync(); err != nil {
		return abort(fmt.Errorf("sync %s: %w", name, err))
	}
	if s.beforeCommit != nil {
		s.beforeCommit()
	}
	unlock := s.locks.lock(m.Namespace, m.Key)
	defer unlock()
	if err := w.commit(); err != nil {
		return Meta{}, fmt.Errorf("commit %s: %w", name, err)
	}
	return m, nil
}

// bodyReader remembers a read error, so that Put can tell a client that sent
// less than it announced (ErrIncompleteBody) from a store that failed.
type bodyReader struct {
	r   io.Reader
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

// versionWriter receives one version's bytes. sync makes them durable,
// commit makes the version visible (and durable), abort discards it.
type versionWriter interface {
	io.Writer
	sync() error
	commit() error
	abort()
}

// blobVersion writes through gocloud.dev/blob: S3 (one upload, aborted
// unless Close succeeds) and mem.
type blobVersion struct {
	*blob.Writer
	cancel context.CancelFunc
}

func newBlobVersion(ctx context.Context, b *blob.Bucket, name string) (*blobVersion, error) {
	wctx, cancel := context.WithCancel(ctx)
	w, err := b.NewWriter(wctx, name, &blob.WriterOptions{ContentType: "application/octet-stream"})
	if err != nil {
		cancel()
		return nil, err
	}
	return &blobVersion{Writer: w, cancel: cancel}, nil
}

func (v *blobVersion) sync() error { return nil } // the upload completes in Close

func (v *blobVersion) commit() error {
	defer v.cancel()
	return v.Close()
}

func (v *blobVersion) abort() {
	v.cancel()    // cancelled before Close: the upload is aborted
	_ = v.Close() // reports the cancellation; the write is gone
}

// Object is an open version: its metadata and its payload.
type Object struct {
	Meta
	io.ReadCloser
	// NewerCorrupt is the newest version, when it is damaged and this
	// older intact one is served in its place.
	NewerCorrupt string
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
	// Under the key's lock no commit, prune or delete can replace the
	// newest version between the listing and the open (an open file stays
	// readable after it is deleted).
	unlock := s.locks.lock(ns, key)
	defer unlock()
	vs, err := s.listVersions(ctx, ns, key)
	if err != nil {
		return nil, err
	}
	if len(vs) == 0 {
		return nil, fmt.Errorf("%s/%s: %w", ns, key, ErrNotFound)
	}
	// A damaged newest version must not hide the state before it: the
	// newest intact one is served, and says which newer one was skipped.
	var skipped string
	for _, v := range vs {
		obj, err := s.open(ctx, ns, key, v.version, v.size)
		if !errors.Is(err, ErrCorrupt) {
			if obj != nil && skipped != "" {
				obj.NewerCorrupt = skipped
			}
			return obj, err
		}
		s.unreadable(objectName(ns, key, v.version), err)
		if skipped == "" {
			skipped = v.version
		}
	}
	return nil, fmt.Errorf("%s/%s: every version is damaged: %w", ns, key, ErrCorrupt)
}

// unreadable reports an object that cannot be read and is skipped.
func (s *Store) unreadable(name string, err error) {
	if s.OnUnreadable != nil {
		s.OnUnreadable(name, err)
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
