package state

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
	"golang.org/x/sync/errgroup"
)

// footerReaders bounds concurrent footer reads when listing: one ranged GET
// each on S3, so a namespace with many versions lists in a few round trips.
const footerReaders = 8

// Item is a key with its versions, newest first.
type Item struct {
	Key      string    `json:"key"`
	Versions []Version `json:"versions"`
}

// listed is a version as the bucket listing shows it, before its footer
// is read.
type listed struct {
	ns, key, version string
	size             int64
}

// stray is an object under a version directory that is not a version: a
// temp file left by a crashed write.
type stray struct {
	name    string
	modTime time.Time
}

// scan lists every object under prefix, sorting versions from strays.
func (s *Store) scan(ctx context.Context, prefix string) ([]listed, []stray, error) {
	var (
		out    []listed
		strays []stray
		err    error
	)
	if s.files != nil {
		out, strays, err = s.files.scan(prefix)
	} else {
		out, strays, err = s.scanBucket(ctx, prefix)
	}
	sortVersions(out)
	return out, strays, err
}

// scanBucket lists the objects of a bucket (S3, mem), unsorted.
func (s *Store) scanBucket(ctx context.Context, prefix string) ([]listed, []stray, error) {
	var out []listed
	var strays []stray
	it := s.bucket.List(&blob.ListOptions{Prefix: prefix})
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("list %s: %w", prefix, err)
		}
		if ns, key, version, ok := splitName(obj.Key); ok {
			out = append(out, listed{ns: ns, key: key, version: version, size: obj.Size})
		} else if !obj.IsDir {
			strays = append(strays, stray{name: obj.Key, modTime: obj.ModTime})
		}
	}
	return out, strays, nil
}

// sortVersions orders by key, newest first: version IDs sort by time.
func sortVersions(vs []listed) {
	slices.SortFunc(vs, func(a, b listed) int {
		return cmp.Or(cmp.Compare(a.ns, b.ns), cmp.Compare(a.key, b.key), cmp.Compare(b.version, a.version))
	})
}

// listVersions returns the versions of one key, newest first.
func (s *Store) listVersions(ctx context.Context, ns, key string) ([]listed, error) {
	vs, _, err := s.scan(ctx, versionsPrefix(ns, key))
	return vs, err
}

// List returns every key of a namespace with its versions, newest first,
// reading each version's footer (never its payload). Versions deleted while
// listing are left out.
func (s *Store) List(ctx context.Context, ns string) ([]Item, error) {
	if err := ValidateNamespace(ns); err != nil {
		return nil, err
	}
	vs, _, err := s.scan(ctx, ns+"/")
	if err != nil {
		return nil, err
	}
	metas := make([]*Meta, len(vs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(footerReaders)
	for i, v := range vs {
		g.Go(func() error {
			name := objectName(ns, v.key, v.version)
			m, err := s.readFooter(gctx, name, v.size)
			if gcerrors.Code(err) == gcerrors.NotFound {
				return nil
			}
			// One damaged object must not hide the namespace's others.
			if errors.Is(err, ErrCorrupt) {
				s.unreadable(name, err)
				return nil
			}
			if err != nil {
				return err
			}
			metas[i] = &m
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("list %s: %w", ns, err)
	}
	items := []Item{}
	for _, m := range metas {
		if m == nil {
			continue
		}
		if len(items) == 0 || items[len(items)-1].Key != m.Key {
			items = append(items, Item{Key: m.Key})
		}
		last := &items[len(items)-1]
		last.Versions = append(last.Versions, m.Version)
	}
	return items, nil
}

// Delete removes one version of a key, or all of them when version is "".
// Deleting what does not exist is not an error: clients retry.
func (s *Store) Delete(ctx context.Context, ns, key, version string) error {
	if version != "" {
		if _, err := ParseVersion(version); err != nil {
			return err
		}
	}
	unlock := s.locks.lock(ns, key)
	defer unlock()
	if version != "" {
		return s.remove(ctx, objectName(ns, key, version))
	}
	vs, err := s.listVersions(ctx, ns, key)
	if err != nil {
		return err
	}
	for _, v := range vs {
		if err := s.remove(ctx, objectName(ns, v.key, v.version)); err != nil {
			return err
		}
	}
	return nil
}

// remove deletes an object; one already gone is not an error.
func (s *Store) remove(ctx context.Context, name string) error {
	err := s.bucket.Delete(ctx, name)
	if err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}
