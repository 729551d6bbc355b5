package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/lastcall-dev/lastcall/internal/run"
	"github.com/lastcall-dev/lastcall/internal/state"
)

func TestStepStoreLimitsKeysAndRetention(t *testing.T) {
	ctx := context.Background()
	store, err := state.OpenStore(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	clk := clocktesting.NewFakePassiveClock(time.Now())
	api := state.NewServer(store, nil, nil, state.Options{NamespaceMaxKeys: 3})
	w := &stepStore{store: store, put: api.Put, max: 10, policy: state.Policy{Keep: 2}, clock: clk, log: slog.New(slog.DiscardHandler)}
	put := func(key, body string) error {
		_, err := w.PutState(ctx, run.StateToSave{Namespace: "shop", Key: key, Pod: "db-0", Body: strings.NewReader(body)})
		return err
	}

	// Exactly the limit is fine; one byte more is refused for good.
	if err := put("k", "0123456789"); err != nil {
		t.Fatalf("a body of exactly the limit: %v", err)
	}
	if err := put("k", "0123456789!"); !errors.Is(err, run.ErrPermanent) || !errors.Is(err, errStateTooLarge) {
		t.Fatalf("a body over the limit: %v, want permanent errStateTooLarge", err)
	}
	for _, key := range []string{"../etc", "a//b", ""} {
		if err := put(key, "x"); !errors.Is(err, run.ErrPermanent) || !errors.Is(err, state.ErrInvalidKey) {
			t.Errorf("key %q: %v, want permanent ErrInvalidKey", key, err)
		}
	}
	_, err = w.PutState(ctx, run.StateToSave{Namespace: "shop", Key: "k", Body: strings.NewReader("abc"), SHA256: strings.Repeat("0", 64)})
	if !errors.Is(err, state.ErrChecksumMismatch) {
		t.Fatalf("a payload that does not match the pod's checksum: %v", err)
	}

	// Each write applies retention to its key, as an API write does.
	for i := range 3 {
		clk.SetTime(clk.Now().Add(time.Second)) // distinct version times
		if err := put("k", strings.Repeat("v", i+1)); err != nil {
			t.Fatal(err)
		}
	}
	items, err := store.List(ctx, "shop")
	if err != nil || len(items) != 1 || len(items[0].Versions) != 2 || items[0].Versions[0].Size != 3 {
		t.Fatalf("after 4 writes with Keep 2: %+v, %v", items, err)
	}

	// The namespace quota holds for steps as for the API, for good.
	for _, key := range []string{"k2", "k3"} {
		if err := put(key, "x"); err != nil {
			t.Fatal(err)
		}
	}
	if err := put("k4", "x"); !errors.Is(err, run.ErrPermanent) || !errors.Is(err, state.ErrQuotaExceeded) {
		t.Fatalf("a fourth key with a limit of 3: %v, want permanent ErrQuotaExceeded", err)
	}
}

func TestResponsesCloseTheConnectionOnceDraining(t *testing.T) {
	var draining atomic.Bool
	h := closeWhileDraining(&draining, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	for _, d := range []bool{false, true} {
		draining.Store(d)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		if got := rec.Header().Get("Connection") == "close"; got != d {
			t.Errorf("draining=%v: Connection %q", d, rec.Header().Get("Connection"))
		}
	}
}
