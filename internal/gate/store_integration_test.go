//go:build integration

package gate_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
	"github.com/lastcall-dev/lastcall/internal/gate"
)

// The CLI (`lastcall gate`) works through the API with gate.Store and
// gate.FindRun; this is what it does (cmd/lastcall's tests run the CLI).
func TestStoreChangesGatesUnderConcurrencyAndStatusShowsThem(t *testing.T) {
	env := clustertest.New(t)
	ctx := context.Background()
	c := adminClient(t)
	store := gate.Store{Client: c, Reader: c, Clock: clock.RealClock{}}
	const who = "test-admin"
	web := types.NamespacedName{Namespace: env.Namespace, Name: "web"}

	if g, err := store.SetSwitch(ctx, web, gate.SwitchGate, v1alpha1.GateStateClosed, who); err != nil || g != nil {
		t.Fatalf("closing a gate that does not exist: %+v, %v; want nothing written", g, err)
	}
	// Twenty writers at once, on both switches: every one lands after
	// retrying its conflicts, and the last state of each switch is one that
	// was asked for.
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sw, state := gate.SwitchGate, v1alpha1.GateStateOpen
			if i%2 == 1 {
				sw = gate.SwitchRollback
			}
			if i%4 >= 2 {
				state = v1alpha1.GateStateClosed
			}
			_, err := store.SetSwitch(ctx, web, sw, state, who)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent SetSwitch: %v", err)
		}
	}
	opened, err := store.SetSwitch(ctx, web, gate.SwitchGate, v1alpha1.GateStateOpen, who)
	if err != nil || !opened.Spec.Gate.IsOpen() || opened.Spec.Gate.By != who {
		t.Fatalf("open: %+v, %v", opened, err)
	}
	again, err := store.SetSwitch(ctx, web, gate.SwitchGate, v1alpha1.GateStateOpen, "someone-else")
	if err != nil || again.Spec.Gate.By != who || !again.Spec.Gate.At.Equal(opened.Spec.Gate.At) || again.ResourceVersion != opened.ResourceVersion {
		t.Errorf("opening an open gate changed it: %+v", again.Spec.Gate)
	}

	// A gate run, as /flagger/gate starts it, overridden as `lastcall gate
	// open --run` does.
	s := startServer(t, serverOpts{})
	app := newDrainApp()
	canary(t, c, env.Namespace, "web", "web", 2, app)
	s.waitCached(t, drainPolicy(t, c, env.Namespace, "drain-web", "web", ""))
	if got := post(t, s.URL+"/flagger/gate", "", s.promotion(t, c, env.Namespace, "web", "abc123")); got.code != http.StatusForbidden {
		t.Fatalf("flagger gate: %v", got)
	}
	run, err := gate.FindRun(ctx, c, gate.Payload{Name: "web", Namespace: env.Namespace}, gate.HookConfirmPromotion)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.OverrideRun(ctx, client.ObjectKeyFromObject(run), v1alpha1.GateOverrideOpen, who); err != nil {
		t.Fatal(err)
	}
	until(t, 10*time.Second, "the server to answer the override", func() answer {
		return post(t, s.URL+"/flagger/gate", "", s.promotion(t, c, env.Namespace, "web", "abc123"))
	}, func(a answer) bool { return a.code == http.StatusOK })

	close(app.release)
}

func TestGateCRDRefusesInvalidGates(t *testing.T) {
	env := clustertest.New(t)
	c := adminClient(t)
	now := metav1.Now()
	for _, tc := range []struct {
		name string
		spec v1alpha1.GateSpec
		want string
	}{
		{"unknown state", v1alpha1.GateSpec{Gate: v1alpha1.GateSwitch{State: "Ajar"}}, "Unsupported value"},
		{"time without who", v1alpha1.GateSpec{Rollback: v1alpha1.GateSwitch{State: v1alpha1.GateStateOpen, At: &now}}, "recorded with who made it"},
	} {
		g := &v1alpha1.Gate{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: env.Namespace}, Spec: tc.spec}
		err := c.Create(context.Background(), g)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want a refusal saying %q", tc.name, err, tc.want)
		}
	}
	// The defaults make an empty Gate a closed one.
	g := &v1alpha1.Gate{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: env.Namespace}}
	if err := c.Create(context.Background(), g); err != nil {
		t.Fatal(err)
	}
	if g.Spec.Gate.State != v1alpha1.GateStateClosed || g.Spec.Rollback.State != v1alpha1.GateStateClosed {
		t.Errorf("empty gate defaulted to %+v, want both Closed", g.Spec)
	}
}
