//go:build integration

package gate_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
	"github.com/lastcall-dev/lastcall/internal/gate"
)

// TestGateStartsNoRunForCallsFlaggerWouldNotMake is issue 16's critical 1:
// before the fix, each of these unauthenticated calls started a run and
// drained production pods. Now none does: a canary that does not exist, a
// checksum that is not the revision being rolled out, a phase in which
// Flagger does not call the hook, a metadata.policy that does not cover the
// canary, a metadata.target that is not its target, and a flood of
// checksums. Only Flagger's own call starts one run, and a new revision
// starts no second run while the first has not ended.
func TestGateStartsNoRunForCallsFlaggerWouldNotMake(t *testing.T) {
	env := clustertest.New(t)
	c := adminClient(t)
	s := startServer(t, serverOpts{})
	app := newDrainApp() // never releases: the run stays Running
	canary(t, c, env.Namespace, "web", "web", 2, app)
	s.waitCached(t, drainPolicy(t, c, env.Namespace, "drain-web", "web", ""))
	s.waitCached(t, drainPolicy(t, c, env.Namespace, "drain-other", "other", ""))
	real := s.promotion(t, c, env.Namespace, "web", "rev-1")

	held := func(what string, payload map[string]any, want string) {
		t.Helper()
		got := post(t, s.URL+"/flagger/gate", "", payload)
		if got.code != http.StatusForbidden || !strings.Contains(got.body, want) {
			t.Errorf("%s: %v, want 403 saying %q", what, got, want)
		}
		if runs := gateRuns(t, c, env.Namespace); len(runs) != 0 {
			t.Fatalf("%s started run %s", what, runs[0].Name)
		}
	}
	with := func(k string, v any) map[string]any {
		p := map[string]any{}
		for key, val := range real {
			p[key] = val
		}
		p[k] = v
		return p
	}
	held("no such canary", with("name", "ghost"), "canary not found")
	held("a checksum that is not the revision", with("checksum", "bogus"), "is not the revision")
	held("a policy that does not cover the canary", with("metadata", map[string]string{"policy": "drain-other"}), "does not cover")
	held("a target that is not the canary's", with("metadata", map[string]string{"target": "other"}), "is not canary")
	for i := range 50 {
		held("a flood of checksums", with("checksum", fmt.Sprintf("c%d", i)), "is not the revision")
	}

	// Flagger's call starts the run.
	first := post(t, s.URL+"/flagger/gate", "", real)
	if first.code != http.StatusForbidden || gateAnswer(t, first).Run == "" {
		t.Fatalf("Flagger's call: %v, want 403 with the new run", first)
	}
	// A new revision while the first run still drains: no second run.
	next := s.promotion(t, c, env.Namespace, "web", "rev-2")
	got := post(t, s.URL+"/flagger/gate", "", next)
	if got.code != http.StatusForbidden || !strings.Contains(got.body, "has not ended") {
		t.Errorf("a new revision during the first run: %v, want 403 saying the first has not ended", got)
	}
	if runs := gateRuns(t, c, env.Namespace); len(runs) != 1 || runs[0].Spec.Trigger.Canary.Checksum != gate.FlaggerChecksum(nil, "rev-1") {
		t.Fatalf("%d gate runs, want the first revision's only", len(runs))
	}
}
