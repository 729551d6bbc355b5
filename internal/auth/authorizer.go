package auth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
)

// DefaultGroup is the API group lastcall's resources are checked in.
const DefaultGroup = "lastcall.dev"

// AuthorizerOptions configures NewAuthorizer. The zero value means the
// defaults, except Client, which is required.
type AuthorizerOptions struct {
	// Client sends SubjectAccessReviews.
	Client kubernetes.Interface
	// Group is the API group of the checked resources; default lastcall.dev.
	Group string
	// CacheTTL is how long a decision is reused, allowed or not, so an RBAC
	// change takes up to this long to apply; default 10 s, negative disables
	// caching.
	CacheTTL time.Duration
	// CacheSize bounds the number of cached decisions; default 4096.
	CacheSize int
	// Clock drives cache expiry; default real time.
	Clock clock.PassiveClock
}

// Attributes is what a user wants to do: a verb on a resource of the
// authorizer's group, in a namespace ("" for cluster-wide), optionally on one
// named object.
type Attributes struct {
	Verb      string
	Resource  string
	Namespace string
	Name      string
}

// Authorizer asks the API server, with a SubjectAccessReview, whether a user
// may do something. The static admin may do everything without asking.
type Authorizer struct {
	client kubernetes.Interface
	group  string
	ttl    time.Duration
	cache  *reviewCache[struct{}]
}

// NewAuthorizer returns an Authorizer; it fails without a Client.
func NewAuthorizer(opts AuthorizerOptions) (*Authorizer, error) {
	if opts.Client == nil {
		return nil, errors.New("authorizer: no client")
	}
	if opts.Group == "" {
		opts.Group = DefaultGroup
	}
	if opts.CacheTTL == 0 {
		opts.CacheTTL = DefaultCacheTTL
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = DefaultCacheSize
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	return &Authorizer{
		client: opts.Client,
		group:  opts.Group,
		ttl:    opts.CacheTTL,
		cache:  newReviewCache[struct{}](opts.CacheSize, opts.CacheTTL, opts.Clock),
	}, nil
}

// Authorize returns nil when u may do attrs, an error wrapping ErrForbidden
// when not, and another error when the API server could not be asked.
func (a *Authorizer) Authorize(ctx context.Context, u User, attrs Attributes) error {
	if u.IsAdmin() {
		return nil
	}
	key, err := a.cacheKey(u, attrs)
	if err != nil {
		return err
	}
	_, err = a.cache.get(ctx, key, func(ctx context.Context) (outcome[struct{}], time.Duration, error) {
		return a.review(ctx, u, attrs)
	})
	return err
}

func (a *Authorizer) review(ctx context.Context, u User, attrs Attributes) (outcome[struct{}], time.Duration, error) {
	extra := make(map[string]authzv1.ExtraValue, len(u.Extra))
	for k, v := range u.Extra {
		extra[k] = v
	}
	sar := &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
		User:   u.Name,
		UID:    u.UID,
		Groups: u.Groups,
		Extra:  extra,
		ResourceAttributes: &authzv1.ResourceAttributes{
			Namespace: attrs.Namespace,
			Verb:      attrs.Verb,
			Group:     a.group,
			Resource:  attrs.Resource,
			Name:      attrs.Name,
		},
	}}
	res, err := a.client.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
	if err != nil {
		return outcome[struct{}]{}, 0, fmt.Errorf("subject access review: %w", err)
	}
	if res.Status.Allowed {
		return outcome[struct{}]{}, a.ttl, nil
	}
	where := "cluster-wide"
	if attrs.Namespace != "" {
		where = "in namespace " + attrs.Namespace
	}
	msg := fmt.Sprintf("%s may not %s %s.%s %s", u.Name, attrs.Verb, attrs.Resource, a.group, where)
	if res.Status.Reason != "" {
		msg += ": " + res.Status.Reason
	}
	return outcome[struct{}]{err: fmt.Errorf("%w: %s", ErrForbidden, msg)}, a.ttl, nil
}

// cacheKey hashes everything the decision depends on, so that two users or
// two requests never share an answer.
func (a *Authorizer) cacheKey(u User, attrs Attributes) ([sha256.Size]byte, error) {
	groups := slices.Clone(u.Groups)
	slices.Sort(groups)
	b, err := json.Marshal(struct {
		Name, UID string
		Groups    []string
		Extra     map[string][]string // json sorts map keys
		Group     string
		Attrs     Attributes
	}{u.Name, u.UID, groups, u.Extra, a.group, attrs})
	if err != nil {
		return [sha256.Size]byte{}, fmt.Errorf("authorization cache key: %w", err)
	}
	return sha256.Sum256(b), nil
}
