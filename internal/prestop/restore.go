package prestop

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/utils/clock"
)

// DefaultRestoreTimeout bounds a restore's retries: an initContainer that
// never ends keeps the pod from starting.
const DefaultRestoreTimeout = time.Minute

// tempPrefix names the restore's scratch entries inside the target
// directory; a restore removes leftovers of one that crashed.
const tempPrefix = ".lastcall-restore-"

// RestoreConfig is one restore, for an initContainer. Zero fields mean the
// defaults documented on them.
type RestoreConfig struct {
	// StateURL is the state API's base URL. Required.
	StateURL string
	// CAFile is as for Config.
	CAFile string
	// Key names the saved state. Zero: the pod name.
	Key string
	// Version picks a saved version. Zero: the latest.
	Version string
	// Dir receives the state: a tar's contents, or File for other payloads.
	// Required; created if missing.
	Dir string
	// File is the name, inside Dir, of a payload that is not a tar. Zero:
	// "state".
	File string
	// Require makes "nothing saved" an error (ErrNoState).
	Require bool
	// Timeout bounds the whole restore, retries included. Zero:
	// DefaultRestoreTimeout.
	Timeout time.Duration
	// Pod, Namespace, TokenPath and ServiceAccountDir are as in Config.
	Pod, Namespace, TokenPath, ServiceAccountDir string
}

// AddFlags binds c's fields to flags whose defaults are c's current values.
func (c *RestoreConfig) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.StateURL, "state-url", c.StateURL, "base URL of the lastcall state API (required)")
	fs.StringVar(&c.CAFile, "ca-file", c.CAFile, "PEM CA bundle to trust for an https --state-url (the lastcall server's certificate issuer), besides the system roots")
	fs.StringVar(&c.Key, "key", c.Key, "name of the saved state (default: the pod name)")
	fs.StringVar(&c.Version, "version", c.Version, "version to restore (default: the latest)")
	fs.StringVar(&c.Dir, "dir", c.Dir, "directory to restore into (required; a tar's contents land here)")
	fs.StringVar(&c.File, "file", cmp.Or(c.File, "state"), "file name inside --dir for a saved payload that is not a tar")
	fs.BoolVar(&c.Require, "require", c.Require, "fail when nothing was saved (default: exit 0 and say so)")
	fs.DurationVar(&c.Timeout, "timeout", cmp.Or(c.Timeout, DefaultRestoreTimeout), "give up retrying after this long")
	fs.StringVar(&c.Pod, "pod", c.Pod, "this pod's name (default $POD_NAME, then $HOSTNAME)")
	fs.StringVar(&c.Namespace, "namespace", c.Namespace, "this pod's namespace (default $POD_NAMESPACE, then the ServiceAccount's namespace)")
	fs.StringVar(&c.TokenPath, "token-file", cmp.Or(c.TokenPath, DefaultTokenPath), "projected ServiceAccount token (audience lastcall), re-read at each attempt")
	fs.StringVar(&c.ServiceAccountDir, "service-account-dir", cmp.Or(c.ServiceAccountDir, DefaultServiceAccountDir), "directory with the ServiceAccount's namespace file")
}

func (c RestoreConfig) withDefaults() RestoreConfig {
	c.File = cmp.Or(c.File, "state")
	c.Timeout = cmp.Or(c.Timeout, DefaultRestoreTimeout)
	c.TokenPath = cmp.Or(c.TokenPath, DefaultTokenPath)
	c.ServiceAccountDir = cmp.Or(c.ServiceAccountDir, DefaultServiceAccountDir)
	c.Pod, c.Namespace = podIdentity(c.Pod, c.Namespace, c.ServiceAccountDir)
	c.Key = cmp.Or(c.Key, c.Pod)
	return c
}

// RestoreResult says what a restore did.
type RestoreResult struct {
	Found       bool // false: nothing was saved under the key
	Namespace   string
	Key         string
	Version     string
	ContentType string
	SHA256      string
	Bytes       int64 // payload size (the tar, or the file)
	Files       int   // regular files written
	Path        string
	Attempts    int
	Elapsed     time.Duration
}

// String is the one line the initContainer prints.
func (r *RestoreResult) String() string {
	if !r.Found {
		return fmt.Sprintf("lastcall restore %s/%s: nothing saved, nothing restored (%s)", r.Namespace, r.Key, round(r.Elapsed))
	}
	return fmt.Sprintf("lastcall restore %s/%s: version %s, %s, %d files into %s, sha256 %.12s verified (%s, %d attempts)",
		r.Namespace, r.Key, r.Version, byteSize(r.Bytes), r.Files, r.Path, r.SHA256, round(r.Elapsed), r.Attempts)
}

// Restorer fetches saved state and unpacks it.
type Restorer struct {
	cfg   RestoreConfig
	clock clock.Clock
	log   *slog.Logger
	http  *http.Client
}

// NewRestorer returns a restorer for cfg (zero fields mean their defaults).
func NewRestorer(cfg RestoreConfig, clk clock.Clock, log *slog.Logger) *Restorer {
	return &Restorer{cfg: cfg.withDefaults(), clock: clk, log: log, http: &http.Client{}}
}

// errNothingSaved stops the retries on a 404 NotFound.
var errNothingSaved = errors.New("nothing saved")

// Run GETs the state, verifying its SHA-256 while streaming, unpacks it in a
// scratch directory inside Dir and only then moves it into place: a broken
// or corrupted transfer leaves Dir as it was. Nothing saved is not an error
// unless Require is set. Transport errors, 5xx answers and checksum
// mismatches are retried until Timeout.
func (r *Restorer) Run(ctx context.Context) (*RestoreResult, error) {
	if r.cfg.CAFile != "" {
		c, err := clientFor(r.cfg.CAFile)
		if err != nil {
			return nil, err
		}
		r.http = c
	}
	defer r.http.CloseIdleConnections()
	start := r.clock.Now()
	c := r.cfg
	res := &RestoreResult{Namespace: c.Namespace, Key: c.Key, Path: c.Dir}
	if c.StateURL == "" || c.Dir == "" || c.Namespace == "" || c.Key == "" {
		return res, errors.New("restore needs --state-url, --dir and the pod's namespace and name (or --key)")
	}
	if strings.ContainsAny(c.File, `/\`) || c.File == "." || c.File == ".." {
		return res, fmt.Errorf("--file %q: want a plain file name", c.File)
	}
	u, err := stateURL(c.StateURL, c.Namespace, c.Key)
	if err != nil {
		return res, err
	}
	if c.Version != "" {
		u += "?version=" + url.QueryEscape(c.Version)
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return res, fmt.Errorf("restore into %s: %w", c.Dir, err)
	}
	root, err := os.OpenRoot(c.Dir)
	if err != nil {
		return res, fmt.Errorf("restore into %s: %w", c.Dir, err)
	}
	defer root.Close()
	removeLeftovers(root)

	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	res.Attempts, err = retry(ctx, r.clock, func(ctx context.Context) error {
		return r.fetch(ctx, u, root, res)
	})
	res.Elapsed = r.clock.Since(start)
	if errors.Is(err, errNothingSaved) {
		if c.Require {
			return res, fmt.Errorf("%w under %s/%s", ErrNoState, c.Namespace, c.Key)
		}
		return res, nil
	}
	if err != nil {
		return res, fmt.Errorf("restore %s/%s: %w", c.Namespace, c.Key, err)
	}
	res.Found = true
	return res, nil
}

// fetch is one attempt: GET, unpack into scratch, verify, move into place.
func (r *Restorer) fetch(ctx context.Context, u string, root *os.Root, res *RestoreResult) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return permanent(err)
	}
	if err := authorize(req, r.cfg.TokenPath); err != nil {
		return err
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		apiErr := readAPIError(resp)
		// Only the state API's own NotFound means "nothing saved"; a bare
		// 404 is more likely a wrong URL.
		// With --version, a missing version is an error, not a first start.
		if apiErr.Status == http.StatusNotFound && apiErr.Reason == "NotFound" && r.cfg.Version == "" {
			return permanent(errNothingSaved)
		}
		return classify(apiErr)
	}
	want := strings.ToLower(resp.Header.Get(headerSHA256))
	if len(want) != sha256.Size*2 {
		return permanent(fmt.Errorf("GET %s: no %s header: cannot verify", redact(req.URL), headerSHA256))
	}
	res.Version, res.ContentType = resp.Header.Get(headerVersion), resp.Header.Get("Content-Type")
	body := &verifyingReader{r: resp.Body, hash: sha256.New()}
	mt, _, _ := mime.ParseMediaType(res.ContentType)
	if mt == contentTar {
		res.Path = r.cfg.Dir
		res.Files, err = r.restoreTar(root, body, want)
	} else {
		res.Path = filepath.Join(r.cfg.Dir, r.cfg.File)
		res.Files, err = r.restoreFile(root, body, want)
	}
	res.Bytes, res.SHA256 = body.n, want
	if err != nil && body.readErr == nil && !errors.Is(err, errChecksum) {
		return permanent(err) // the payload itself is bad: fetching it again gives the same
	}
	return err
}

// restoreTar unpacks into a scratch directory, verifies the checksum, then
// replaces Dir's entries of the same names.
func (r *Restorer) restoreTar(root *os.Root, body *verifyingReader, want string) (int, error) {
	tmp := tempPrefix + randomSuffix()
	if err := root.Mkdir(tmp, 0o700); err != nil {
		return 0, err
	}
	defer root.RemoveAll(tmp)
	sub, err := root.OpenRoot(tmp)
	if err != nil {
		return 0, err
	}
	defer sub.Close()
	st, err := extract(body, sub)
	if err != nil {
		return 0, err
	}
	if err := body.verify(want); err != nil {
		return 0, err
	}
	entries, err := fs.ReadDir(sub.FS(), ".")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		// An initContainer that restarts runs the restore again: replace
		// what the last run left rather than fail on it.
		if err := root.RemoveAll(e.Name()); err != nil {
			return 0, err
		}
		if err := root.Rename(tmp+"/"+e.Name(), e.Name()); err != nil {
			return 0, err
		}
	}
	return st.files, nil
}

// restoreFile writes a non-tar payload to a scratch file and renames it.
func (r *Restorer) restoreFile(root *os.Root, body *verifyingReader, want string) (int, error) {
	tmp := tempPrefix + randomSuffix()
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return 0, err
	}
	defer root.Remove(tmp) // no-op after the rename
	_, err = io.Copy(f, body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, err
	}
	if err := body.verify(want); err != nil {
		return 0, err
	}
	return 1, root.Rename(tmp, r.cfg.File)
}

var errChecksum = errors.New("checksum mismatch")

// verifyingReader hashes and counts what is read, and remembers read
// errors, which are the transport's (retryable) rather than the payload's.
type verifyingReader struct {
	r       io.Reader
	hash    hash.Hash
	n       int64
	readErr error
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.hash.Write(p[:n])
	v.n += int64(n)
	if err != nil && err != io.EOF {
		v.readErr = err
	}
	return n, err
}

// verify reads what the consumer left (a tar's end padding) and compares
// the hash of the whole body with want.
func (v *verifyingReader) verify(want string) error {
	if _, err := io.Copy(io.Discard, v); err != nil {
		return err
	}
	if got := hex.EncodeToString(v.hash.Sum(nil)); got != want {
		return fmt.Errorf("%w: got sha256 %.12s…, server said %.12s…", errChecksum, got, want)
	}
	return nil
}

func removeLeftovers(root *os.Root) {
	entries, err := fs.ReadDir(root.FS(), ".")
	if err != nil {
		return
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tempPrefix) {
			_ = root.RemoveAll(e.Name())
		}
	}
}

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
