package prestop

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// Saved is what the state API answered to an upload (201).
type Saved struct {
	Namespace   string `json:"namespace"`
	Key         string `json:"key"`
	Version     string `json:"version"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"`
	Pod         string `json:"pod"`
	ContentType string `json:"contentType"`
}

// errRequestEnded tells the tar writer that nobody reads the body anymore.
var errRequestEnded = errors.New("request ended")

// uploadResult is one successful upload.
type uploadResult struct {
	saved    Saved
	stats    tarStats
	attempts int
}

// upload PUTs the tar of c.Save to the state API, retrying transport errors
// and 5xx answers until ctx ends.
//
// The tar is streamed, never held whole in memory or on disk, so its SHA-256
// is known only after the last byte: it goes in an HTTP trailer (a header
// would need the hash first). Taring to a temp file first would double the
// disk I/O inside the grace period and need free space the container may not
// have; two passes (hash, then send) could see files change in between,
// which the server rejects with a 400 that is not retried. The server's 201
// reports the sha256 it stored; a mismatch with ours fails the attempt,
// which is then retried, so the check holds even when a proxy drops
// trailers.
func (h *Hook) upload(ctx context.Context) (uploadResult, error) {
	u, err := stateURL(h.cfg.StateURL, h.cfg.Namespace, h.cfg.Key)
	if err != nil {
		return uploadResult{}, err
	}
	var res uploadResult
	res.attempts, err = retry(ctx, h.clock, func(ctx context.Context) error {
		saved, stats, err := h.putTar(ctx, u)
		if err != nil {
			return err
		}
		res.saved, res.stats = saved, stats
		return nil
	})
	return res, err
}

func (h *Hook) putTar(ctx context.Context, u string) (Saved, tarStats, error) {
	pr, pw := io.Pipe()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, pr)
	if err != nil {
		return Saved{}, tarStats{}, permanent(err)
	}
	if err := authorize(req, h.cfg.TokenPath); err != nil {
		return Saved{}, tarStats{}, err
	}
	req.ContentLength = -1 // chunked: needed for the trailer
	req.Header.Set("Content-Type", contentTar)
	req.Header.Set(headerPod, h.cfg.Pod)
	req.Trailer = http.Header{headerSHA256: nil}

	type tarDone struct {
		stats tarStats
		sum   string
		err   error
	}
	done := make(chan tarDone, 1)
	go func() {
		hash := sha256.New()
		stats, err := writeTar(io.MultiWriter(pw, hash), h.cfg.Save)
		sum := hex.EncodeToString(hash.Sum(nil))
		if err == nil {
			// Set before closing the pipe: the transport reads the trailer
			// once it sees the body's EOF.
			req.Trailer.Set(headerSHA256, sum)
		}
		pw.CloseWithError(err) // nil: EOF
		done <- tarDone{stats, sum, err}
	}()
	resp, err := h.http.Do(req)
	pr.CloseWithError(errRequestEnded) // unblocks the writer if the request ended early
	tar := <-done
	var perm *permanentError
	switch {
	case errors.As(tar.err, &perm):
		if err == nil {
			resp.Body.Close()
		}
		return Saved{}, tar.stats, tar.err // a missing path, two paths with one name
	case err != nil && tar.err == nil && ctx.Err() != nil:
		// The server may have stored the whole tar and be committing it:
		// say so rather than claim nothing was saved.
		return Saved{}, tar.stats, fmt.Errorf("outcome unknown: the deadline came after the whole tar (%s of files) was sent; the server may have stored it: %w", byteSize(tar.stats.bytes), err)
	case err != nil:
		return Saved{}, tar.stats, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return Saved{}, tar.stats, classify(readAPIError(resp))
	}
	if tar.err != nil {
		return Saved{}, tar.stats, fmt.Errorf("write tar: %w", tar.err) // answered 2xx to a cut body: do not trust it
	}
	var saved Saved
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&saved); err != nil {
		return Saved{}, tar.stats, fmt.Errorf("decode PUT %s answer: %w", redact(req.URL), err)
	}
	if saved.SHA256 != tar.sum {
		return Saved{}, tar.stats, fmt.Errorf("server stored sha256 %.12s…, sent %.12s…: corrupted in transit", saved.SHA256, tar.sum)
	}
	return saved, tar.stats, nil
}
