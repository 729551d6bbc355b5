package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	testingclock "k8s.io/utils/clock/testing"
)

// TestMalformedTokensCostNoTokenReview: what cannot be a ServiceAccount token
// of this cluster is refused before the API server is asked.
func TestMalformedTokensCostNoTokenReview(t *testing.T) {
	clk := testingclock.NewFakeClock(time.Now())
	rv := &reviewer{valid: map[string]string{}}
	a, err := NewAuthenticator(AuthenticatorOptions{Client: rv.client(), Clock: clk, Issuers: []string{"https://kubernetes.default.svc"}})
	if err != nil {
		t.Fatal(err)
	}
	good := map[string]any{"iss": "https://kubernetes.default.svc", "aud": "lastcall", "exp": clk.Now().Add(time.Hour).Unix()}
	with := func(k string, v any) map[string]any {
		c := map[string]any{}
		for k, v := range good {
			c[k] = v
		}
		c[k] = v
		return c
	}
	for _, tc := range []struct {
		name, token string
		want        error
	}{
		{"random", "Zm9vYmFy", ErrUnauthenticated},
		{"three random parts", "a.b.c", ErrUnauthenticated},
		{"oversized", strings.Repeat("x", maxTokenBytes+1), ErrUnauthenticated},
		{"unsigned", "eyJhbGciOiJub25lIn0." + strings.Split(fakeJWT(t, good), ".")[1] + ".", ErrUnauthenticated},
		{"other issuer", fakeJWT(t, with("iss", "https://evil.example")), ErrUnauthenticated},
		{"no issuer", fakeJWT(t, with("iss", "")), ErrUnauthenticated},
		{"other audience", fakeJWT(t, with("aud", "vault")), ErrWrongAudience},
		{"expired", fakeJWT(t, with("exp", clk.Now().Add(-time.Second).Unix())), ErrTokenExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := a.AuthenticateToken(context.Background(), tc.token); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	if n := rv.calls.Load(); n != 0 {
		t.Fatalf("%d TokenReviews for tokens that could be refused without one", n)
	}
	// The well-shaped token is reviewed (and refused by the reviewer).
	if _, err := a.AuthenticateToken(context.Background(), fakeJWT(t, good)); !errors.Is(err, ErrUnauthenticated) || rv.calls.Load() != 1 {
		t.Fatalf("well-shaped token: err %v after %d reviews, want one review refusing it", err, rv.calls.Load())
	}
}

// TestReviewsBeyondTheRateLimitAre429: a flood of distinct well-shaped tokens
// costs at most the burst, and the rest get ErrThrottled (429, Retry-After)
// instead of queueing.
func TestReviewsBeyondTheRateLimitAre429(t *testing.T) {
	rv := &reviewer{valid: map[string]string{}}
	a, err := NewAuthenticator(AuthenticatorOptions{Client: rv.client(), ReviewQPS: 0.001, ReviewBurst: 5})
	if err != nil {
		t.Fatal(err)
	}
	throttled := 0
	for i := range 200 {
		_, err := a.AuthenticateToken(context.Background(), tok(fmt.Sprint("flood-", i)))
		if errors.Is(err, ErrThrottled) {
			throttled++
			if code, _ := StatusFor(err); code != http.StatusTooManyRequests {
				t.Fatalf("StatusFor(throttled) = %d, want 429", code)
			}
			if s, ok := RetryAfter(err); !ok || s <= 0 {
				t.Fatal("no Retry-After for a throttled review")
			}
		}
	}
	if n := rv.calls.Load(); n != 5 || throttled != 195 {
		t.Fatalf("%d reviews and %d throttled for 200 tokens, want 5 and 195", n, throttled)
	}
}

// TestKnownTokenServedWhileTheAPIServerIsDown: a token reviewed recently is
// still accepted when the API server cannot answer, until the token expires;
// a token never seen gets 503.
func TestKnownTokenServedWhileTheAPIServerIsDown(t *testing.T) {
	clk := testingclock.NewFakeClock(time.Now())
	known := fakeJWT(t, map[string]any{"aud": "lastcall", "exp": clk.Now().Add(30 * time.Minute).Unix()})
	rv := &reviewer{valid: map[string]string{known: "system:serviceaccount:a:b"}}
	a := newTestAuthenticator(t, rv, clk, 0)
	if _, err := a.AuthenticateToken(context.Background(), known); err != nil {
		t.Fatal(err)
	}
	rv.fail = errors.New("connection refused")
	clk.Step(DefaultCacheTTL + time.Minute) // past the fresh cache
	u, err := a.AuthenticateToken(context.Background(), known)
	if err != nil || u.Name != "system:serviceaccount:a:b" {
		t.Fatalf("known token during the outage: %+v, %v", u, err)
	}
	if _, err := a.AuthenticateToken(context.Background(), tok("never-seen")); IsRejection(err) || err == nil {
		t.Fatalf("unknown token during the outage: %v, want a 503 error", err)
	}
	clk.Step(30 * time.Minute) // the token has expired
	if _, err := a.AuthenticateToken(context.Background(), known); !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("expired token during the outage: %v, want ErrTokenExpired", err)
	}
}

// TestRefusedTokenIsNotServedStale: once a review refuses a token, an outage
// must not bring its old positive answer back.
func TestRefusedTokenIsNotServedStale(t *testing.T) {
	clk := testingclock.NewFakeClock(time.Now())
	rv := &reviewer{valid: map[string]string{tok("t"): "u"}}
	a := newTestAuthenticator(t, rv, clk, 0)
	ctx := context.Background()
	if _, err := a.AuthenticateToken(ctx, tok("t")); err != nil {
		t.Fatal(err)
	}
	delete(rv.valid, tok("t")) // revoked
	clk.Step(DefaultCacheTTL + time.Second)
	if _, err := a.AuthenticateToken(ctx, tok("t")); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("revoked: %v", err)
	}
	rv.fail = errors.New("connection refused")
	clk.Step(DefaultCacheTTL + time.Second)
	if _, err := a.AuthenticateToken(ctx, tok("t")); err == nil {
		t.Fatal("a refused token was accepted from the stale cache during an outage")
	}
}
