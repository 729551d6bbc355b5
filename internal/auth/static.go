package auth

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// staticRecheck bounds how often the token file is stat'ed: often enough to
// pick up a rotated Secret within seconds, rarely enough to cost nothing.
const staticRecheck = time.Second

// staticToken is the admin token read from a file. It keeps only the token's
// SHA-256, compares in constant time, and re-reads the file when its size or
// modification time changes (a rotated Secret volume swaps the file).
type staticToken struct {
	path  string
	clock clock.PassiveClock
	log   *slog.Logger

	mu      sync.Mutex
	sum     [sha256.Size]byte
	modTime time.Time
	size    int64
	checked time.Time
}

func newStaticToken(path string, clk clock.PassiveClock, log *slog.Logger) (*staticToken, error) {
	s := &staticToken{path: path, clock: clk, log: log}
	if err := s.load(); err != nil {
		return nil, err
	}
	s.checked = clk.Now()
	return s, nil
}

// load reads the file; the caller holds mu or owns s exclusively.
func (s *staticToken) load() error {
	fi, err := os.Stat(s.path)
	if err != nil {
		return fmt.Errorf("read token file: %w", err)
	}
	b, err := os.ReadFile(s.path)
	if err != nil {
		return fmt.Errorf("read token file: %w", err)
	}
	tok := bytes.TrimSpace(b)
	if len(tok) == 0 {
		// An empty token would match an empty bearer value: refuse it.
		return errors.New("read token file: " + s.path + " is empty")
	}
	s.sum = sha256.Sum256(tok)
	s.modTime, s.size = fi.ModTime(), fi.Size()
	return nil
}

func (s *staticToken) match(token string) bool {
	got := sha256.Sum256([]byte(token))
	s.mu.Lock()
	s.maybeReload()
	want := s.sum
	s.mu.Unlock()
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// maybeReload re-reads a changed file. A file that is briefly missing or
// empty mid-rotation keeps the previous token rather than locking the admin
// out; the failure is logged.
func (s *staticToken) maybeReload() {
	now := s.clock.Now()
	if now.Sub(s.checked) < staticRecheck {
		return
	}
	s.checked = now
	fi, err := os.Stat(s.path)
	if err == nil && fi.ModTime().Equal(s.modTime) && fi.Size() == s.size {
		return
	}
	old := s.sum
	if err := s.load(); err != nil {
		s.sum = old
		s.log.Warn("keeping the previous static token", "path", s.path, "err", err)
		return
	}
	s.log.Info("reloaded static token", "path", s.path)
}
