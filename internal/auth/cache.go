package auth

import (
	"context"
	"crypto/sha256"
	"time"

	"golang.org/x/sync/singleflight"
	utilcache "k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/utils/clock"
)

// reviewTimeout bounds one TokenReview or SubjectAccessReview. The call is
// shared by every request waiting for the same answer, so it does not follow
// any single caller's context.
const reviewTimeout = 10 * time.Second

// outcome is a cacheable answer: a value, or a final refusal such as
// ErrUnauthenticated. Errors reaching the API server are not outcomes and are
// never cached.
type outcome[T any] struct {
	val T
	err error
}

// reviewCache remembers review answers for a short time in a bounded LRU
// keyed by a SHA-256 (never by the token itself), and collapses concurrent
// identical reviews into one API call.
type reviewCache[T any] struct {
	lru    *utilcache.LRUExpireCache // nil when caching is disabled
	flight singleflight.Group
}

func newReviewCache[T any](size int, ttl time.Duration, clk clock.PassiveClock) *reviewCache[T] {
	c := &reviewCache[T]{}
	if ttl > 0 {
		c.lru = utilcache.NewLRUExpireCacheWithClock(size, clk)
	}
	return c
}

// review is what a cache miss calls: it returns the outcome, how long it may
// be cached, or an error that must not be cached.
type review[T any] func(ctx context.Context) (outcome[T], time.Duration, error)

func (c *reviewCache[T]) get(ctx context.Context, key [sha256.Size]byte, fetch review[T]) (T, error) {
	if c.lru != nil {
		if v, ok := c.lru.Get(key); ok {
			o := v.(outcome[T])
			return o.val, o.err
		}
	}
	ch := c.flight.DoChan(string(key[:]), func() (any, error) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reviewTimeout)
		defer cancel()
		o, ttl, err := fetch(rctx)
		if err != nil {
			return nil, err
		}
		if c.lru != nil && ttl > 0 {
			c.lru.Add(key, o, ttl)
		}
		return o, nil
	})
	var zero T
	select {
	case <-ctx.Done():
		return zero, ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return zero, r.Err
		}
		o := r.Val.(outcome[T])
		return o.val, o.err
	}
}
