package state

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/lru"
)

// Default namespace limits: room for a few thousand pods' state, each key
// with its kept versions, and a bound on what one namespace's
// ServiceAccounts can make the server store.
const (
	DefaultNamespaceMaxBytes = 10 << 30
	DefaultNamespaceMaxKeys  = 10000
)

// ErrQuotaExceeded: the namespace has no room left under its quota (507).
var ErrQuotaExceeded = errors.New("namespace quota exceeded")

// usageTTL is how long a namespace's measured usage is trusted before it is
// measured again (retention and deletes shrink it meanwhile; writes through
// this replica are added as they happen).
const usageTTL = 30 * time.Second

// maxTrackedNamespaces bounds the usage cache: the least recently written
// namespace is measured again when it comes back.
const maxTrackedNamespaces = 4096

// quota enforces a byte and a key limit per namespace. Usage is measured by
// listing the namespace (sizes from the listing, no object reads), kept for
// usageTTL and updated by each write; with several replicas each counts its
// own writes until it measures again, so the limit may be passed by what
// the other replicas wrote within usageTTL.
type quota struct {
	maxBytes int64
	maxKeys  int
	store    *Store
	now      func() time.Time

	mu    sync.Mutex
	usage *lru.Cache // namespace -> *nsUsage

	bytes, keys *prometheus.GaugeVec
}

type nsUsage struct {
	bytes    int64
	keys     map[string]bool
	measured time.Time
}

func newQuota(store *Store, maxBytes int64, maxKeys int, now func() time.Time, reg prometheus.Registerer) *quota {
	q := &quota{maxBytes: maxBytes, maxKeys: maxKeys, store: store, now: now, usage: lru.New(maxTrackedNamespaces),
		bytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "lastcall_state_namespace_bytes",
			Help: "Bytes stored per namespace (every version), as last measured or written by this replica."}, []string{"namespace"}),
		keys: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "lastcall_state_namespace_keys",
			Help: "Keys stored per namespace, as last measured or written by this replica."}, []string{"namespace"}),
	}
	if reg != nil {
		reg.MustRegister(q.bytes, q.keys)
	}
	return q
}

// current returns the namespace's usage, measuring it when unknown or old.
// Called with mu held.
func (q *quota) current(ctx context.Context, ns string) (*nsUsage, error) {
	if v, ok := q.usage.Get(ns); ok {
		if u := v.(*nsUsage); q.now().Sub(u.measured) < usageTTL {
			return u, nil
		}
	}
	vs, _, err := q.store.scan(ctx, ns+"/")
	if err != nil {
		return nil, fmt.Errorf("measure namespace %s: %w", ns, err)
	}
	u := &nsUsage{keys: map[string]bool{}, measured: q.now()}
	for _, v := range vs {
		u.bytes += v.size
		u.keys[v.key] = true
	}
	q.usage.Add(ns, u)
	q.publish(ns, u)
	return u, nil
}

func (q *quota) publish(ns string, u *nsUsage) {
	q.bytes.WithLabelValues(ns).Set(float64(u.bytes))
	q.keys.WithLabelValues(ns).Set(float64(len(u.keys)))
}

// admit refuses a write of size bytes (-1: unknown yet) to ns/key that the
// namespace has no room for.
func (q *quota) admit(ctx context.Context, ns, key string, size int64) error {
	if q.maxBytes <= 0 && q.maxKeys <= 0 {
		return nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	u, err := q.current(ctx, ns)
	if err != nil {
		return err
	}
	if q.maxKeys > 0 && !u.keys[key] && len(u.keys) >= q.maxKeys {
		return fmt.Errorf("%w: namespace %s holds %d keys, its limit (lastcall server --state-namespace-max-keys); delete keys or ask the operator", ErrQuotaExceeded, ns, len(u.keys))
	}
	if q.maxBytes > 0 && u.bytes+max(size, 0) > q.maxBytes {
		return fmt.Errorf("%w: namespace %s holds %d bytes of its %d (lastcall server --state-namespace-max-bytes); this object needs %d more", ErrQuotaExceeded, ns, u.bytes, q.maxBytes, max(size, 0))
	}
	return nil
}

// wrote adds a stored object to the namespace's usage.
func (q *quota) wrote(ns, key string, size int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if v, ok := q.usage.Get(ns); ok {
		u := v.(*nsUsage)
		u.bytes += size
		u.keys[key] = true
		q.publish(ns, u)
	}
}

// Put stores an object as the API does, within the namespace's quota: the
// run controller's saveState steps write through it. declared is the
// body's size, or -1 when unknown.
func (s *Server) Put(ctx context.Context, opts PutOptions, body io.Reader, declared int64) (Meta, error) {
	return s.putWithin(ctx, opts, body, declared)
}

// putWithin is Store.Put within the namespace's quota, refused before any
// byte is read when the namespace is full or the declared size does not
// fit. A body of unknown size (chunked) is admitted while the namespace is
// under its limit, so it may pass the limit by that one object.
func (s *Server) putWithin(ctx context.Context, opts PutOptions, body io.Reader, declared int64) (Meta, error) {
	if err := s.quota.admit(ctx, opts.Namespace, opts.Key, declared); err != nil {
		return Meta{}, err
	}
	m, err := s.store.Put(ctx, opts, body)
	if err == nil {
		s.quota.wrote(opts.Namespace, opts.Key, m.Size)
	}
	return m, err
}
