package state

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Policy says which versions of a key are kept.
type Policy struct {
	// Keep is how many of the newest versions survive; default 5.
	Keep int
	// MaxAge removes versions created longer ago, even the newest: state
	// that old is stale; default 7 days.
	MaxAge time.Duration
}

// Defaults for Policy.
const (
	DefaultKeepVersions = 5
	DefaultRetention    = 7 * 24 * time.Hour
)

func (p Policy) withDefaults() Policy {
	if p.Keep <= 0 {
		p.Keep = DefaultKeepVersions
	}
	if p.MaxAge <= 0 {
		p.MaxAge = DefaultRetention
	}
	return p
}

// staleTempAge is when a temp file is taken for the leftover of a write
// that died with its process: a live upload touches its file all the time.
const staleTempAge = time.Hour

// Prune deletes the versions of one key that p does not keep, as of now, and
// returns how many it deleted.
func (s *Store) Prune(ctx context.Context, ns, key string, p Policy, now time.Time) (int, error) {
	vs, strays, err := s.scan(ctx, versionsPrefix(ns, key))
	if err != nil {
		return 0, err
	}
	return s.prune(ctx, vs, strays, p.withDefaults(), now)
}

// PruneAll applies p to every key in the bucket and removes the temp files
// of writes that crashed.
func (s *Store) PruneAll(ctx context.Context, p Policy, now time.Time) (int, error) {
	vs, strays, err := s.scan(ctx, "")
	if err != nil {
		return 0, err
	}
	return s.prune(ctx, vs, strays, p.withDefaults(), now)
}

// prune works on scan's output: versions sorted by key, newest first.
func (s *Store) prune(ctx context.Context, vs []listed, strays []stray, p Policy, now time.Time) (int, error) {
	cutoff := now.Add(-p.MaxAge)
	deleted := 0
	rank := 0
	for i, v := range vs {
		if i == 0 || vs[i-1].ns != v.ns || vs[i-1].key != v.key {
			rank = 0
		}
		created, _ := ParseVersion(v.version) // scan kept only valid ones
		if rank >= p.Keep || created.Before(cutoff) {
			unlock := s.locks.lock(v.ns, v.key)
			err := s.remove(ctx, objectName(v.ns, v.key, v.version))
			unlock()
			if err != nil {
				return deleted, err
			}
			deleted++
		}
		rank++
	}
	for _, st := range strays {
		// Only the temp files of versions: never a foreign object that
		// happens to share the bucket. Their age is measured on the clock
		// that stamped them, the file system's, not the injected one.
		if !isTempOfVersion(st.name) || time.Since(st.modTime) < staleTempAge {
			continue
		}
		if err := s.remove(ctx, st.name); err != nil {
			return deleted, fmt.Errorf("remove stale temp file: %w", err)
		}
	}
	return deleted, nil
}

// isTempOfVersion reports whether name is a version's temp file:
// <namespace>/<shard>/<key>@<version>.<random>.tmp.
func isTempOfVersion(name string) bool {
	rest, ok := strings.CutSuffix(name, tempSuffix)
	if !ok {
		return false
	}
	i := strings.LastIndex(rest, ".")
	if i < 0 {
		return false
	}
	_, _, _, ok = splitName(rest[:i])
	return ok
}
