package state

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
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

// scanAttempts bounds how often scan restarts a listing that raced with a
// delete or a rename.
const scanAttempts = 5

// scan lists every object under prefix, sorting versions from strays.
// fileblob fails a whole listing with NotFound when a file vanishes between
// reading its directory and stat'ing it (a version pruned, a temp file
// renamed into place): that is a listing to redo, not an error to return.
func (s *Store) scan(ctx context.Context, prefix string) ([]listed, []stray, error) {
	for attempt := 1; ; attempt++ {
		vs, strays, err := s.scanOnce(ctx, prefix, attempt == scanAttempts)
		if (gcerrors.Code(err) == gcerrors.NotFound || errors.Is(err, errListingRaced)) && attempt < scanAttempts {
			continue
		}
		return vs, strays, err
	}
}

// scanOnce lists the files and the journal's pending versions. Pending
// versions are read first: one materialised and dropped from the overlay
// meanwhile is a file before it is dropped, so the file listing that follows
// sees it. A version journalled after that read is seen by neither, and
// retention may have deleted its predecessor's file by the time the files
// are read: a key with versions all along would list empty. So when the
// overlay changed during the file listing, the listing is redone; the last
// attempt instead adds the pending versions as they are after it, which
// leaves out only a version saved, written out and checkpointed within one
// directory read.
func (s *Store) scanOnce(ctx context.Context, prefix string, last bool) ([]listed, []stray, error) {
	var journalled []listed
	var gen uint64
	if s.journal != nil {
		journalled, gen = s.journal.listed(prefix)
	}
	out, strays, err := s.scanFiles(ctx, prefix)
	if err != nil {
		return nil, nil, err
	}
	if s.journal != nil {
		if after, now := s.journal.listed(prefix); now != gen {
			if !last {
				return nil, nil, errListingRaced
			}
			journalled = append(journalled, after...)
		}
	}
	out = mergePending(out, journalled)
	sortVersions(out)
	return out, strays, nil
}

// scanFiles lists the objects in the bucket, unsorted.
func (s *Store) scanFiles(ctx context.Context, prefix string) ([]listed, []stray, error) {
	if s.files != nil && strings.HasSuffix(prefix, "@") {
		// One key on file://: a single directory read.
		return s.files.scanKey(prefix)
	}
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

// mergePending adds the pending versions a file listing lacks.
func mergePending(files, pending []listed) []listed {
	if len(pending) == 0 {
		return files
	}
	seen := make(map[string]bool, len(files))
	for _, v := range files {
		seen[v.ns+"/"+v.key+"@"+v.version] = true
	}
	for _, p := range pending {
		if name := p.ns + "/" + p.key + "@" + p.version; !seen[name] {
			seen[name] = true // pending may list a version twice
			files = append(files, p)
		}
	}
	return files
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
			m, err := s.readFooter(gctx, objectName(ns, v.key, v.version), v.size)
			if gcerrors.Code(err) == gcerrors.NotFound {
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
		return s.remove(ctx, objectName(ns, key, version), true)
	}
	vs, err := s.listVersions(ctx, ns, key)
	if err != nil {
		return err
	}
	for _, v := range vs {
		if err := s.remove(ctx, objectName(ns, v.key, v.version), true); err != nil {
			return err
		}
	}
	return nil
}

// remove deletes an object; urgent is false for retention, which may wait
// for a journalled version's file until saves pause (see journal.settle).
func (s *Store) remove(ctx context.Context, name string, urgent bool) error {
	if s.journal != nil {
		// Replay must never bring a deleted version back.
		if err := s.journal.settle(ctx, name, urgent); err != nil {
			return fmt.Errorf("delete %s: %w", name, err)
		}
	}
	err := s.bucket.Delete(ctx, name)
	if err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}
