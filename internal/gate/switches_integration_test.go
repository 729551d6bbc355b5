//go:build integration

package gate_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
)

// TestManualGatesAnswerExactlyLikeFlaggerLoadtester sends the same requests
// to the real flagger-loadtester and to lastcall, and compares status, body
// and content type of every answer. Malformed requests must fail with the
// same status; lastcall's body then says why (JSON), the loadtester's is
// empty.
func TestManualGatesAnswerExactlyLikeFlaggerLoadtester(t *testing.T) {
	env := clustertest.New(t)
	lt, _ := startLoadtester(t)
	lc := startServer(t, serverOpts{})
	web := map[string]any{"name": "web", "namespace": env.Namespace, "phase": "Progressing", "checksum": "c1",
		"metadata": map[string]string{"type": "confirm-promotion"}}
	other := map[string]any{"name": "api", "namespace": env.Namespace}
	elsewhere := map[string]any{"name": "web", "namespace": env.Namespace + "x"}
	steps := []struct {
		method, path string
		body         any
	}{
		{"POST", "/gate/check", web},
		{"POST", "/rollback/check", web},
		{"POST", "/gate/approve", web},
		{"GET", "/gate/approve", nil},
		{"POST", "/gate/halt", web},
		{"PUT", "/gate/halt", nil},
		{"POST", "/gate/open", web},
		{"POST", "/gate/check", web},
		{"POST", "/gate/check", other},
		{"POST", "/gate/check", elsewhere},
		{"POST", "/rollback/check", web},
		{"POST", "/gate/open", web},
		{"POST", "/gate/check", web},
		{"POST", "/rollback/open", web},
		{"POST", "/rollback/check", web},
		{"POST", "/gate/check", web},
		{"POST", "/gate/close", web},
		{"POST", "/gate/check", web},
		{"POST", "/rollback/check", web},
		{"POST", "/rollback/close", web},
		{"POST", "/rollback/check", web},
		{"POST", "/gate/close", other},
		{"POST", "/gate/check", other},
		{"GET", "/gate/check", nil},
		{"POST", "/gate/check", `{"name":"web",`},
		{"POST", "/gate/open", "not json"},
		{"GET", "/rollback/check", nil},
	}
	for i, st := range steps {
		want := call(t, st.method, lt+st.path, adminToken, st.body)
		got := call(t, st.method, lc.URL+st.path, adminToken, st.body)
		if got.code != want.code {
			t.Fatalf("step %d %s %s: lastcall %v, loadtester %v", i, st.method, st.path, got, want)
		}
		if want.code == http.StatusBadRequest {
			var e struct{ Error, Reason string }
			if err := json.Unmarshal([]byte(got.body), &e); err != nil || e.Error == "" || e.Reason == "" {
				t.Errorf("step %d %s %s: 400 body %q, want a JSON error with a reason", i, st.method, st.path, got.body)
			}
			continue
		}
		if got.body != want.body || got.contentType != want.contentType {
			t.Errorf("step %d %s %s: lastcall %v, loadtester %v", i, st.method, st.path, got, want)
		}
	}
}

func TestManualGatesAreSharedByReplicasAndSurviveARestart(t *testing.T) {
	env := clustertest.New(t)
	c := adminClient(t)
	a := startServer(t, serverOpts{leaseNamespace: env.Namespace})
	b := startServer(t, serverOpts{leaseNamespace: env.Namespace})
	web := map[string]any{"name": "web", "namespace": env.Namespace}

	if got := post(t, a.URL+"/gate/open", adminToken, web); got.code != http.StatusAccepted {
		t.Fatalf("open on a: %v", got)
	}
	if got := post(t, a.URL+"/gate/check", "", web); got.code != http.StatusOK {
		t.Fatalf("check on a right after its open: %v, want 200", got)
	}
	until(t, 5*time.Second, "replica b to see the open gate", func() answer {
		return post(t, b.URL+"/gate/check", "", web)
	}, func(a answer) bool { return a.code == http.StatusOK && a.body == "Approved" })
	if got := post(t, b.URL+"/rollback/open", adminToken, web); got.code != http.StatusAccepted {
		t.Fatalf("rollback open on b: %v", got)
	}

	var g v1alpha1.Gate
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: env.Namespace, Name: "web"}, &g); err != nil {
		t.Fatal(err)
	}
	if !g.Spec.Gate.IsOpen() || g.Spec.Gate.By != "lastcall:admin" || g.Spec.Gate.At == nil || !g.Spec.Rollback.IsOpen() {
		t.Fatalf("gate object %+v: want both switches open, with who and when", g.Spec)
	}

	a.stop()
	b.stop()
	fresh := startServer(t, serverOpts{leaseNamespace: env.Namespace})
	for _, path := range []string{"/gate/check", "/rollback/check"} {
		if got := post(t, fresh.URL+path, "", web); got.code != http.StatusOK || got.body != "Approved" {
			t.Errorf("%s after a restart: %v, want 200 Approved", path, got)
		}
	}
	if got := post(t, fresh.URL+"/gate/close", adminToken, web); got.code != http.StatusAccepted {
		t.Fatalf("close: %v", got)
	}
	if got := post(t, fresh.URL+"/gate/check", "", web); got.code != http.StatusForbidden || got.body != "Forbidden" {
		t.Errorf("check after close: %v, want 403 Forbidden", got)
	}
	if n := counter(t, fresh, "lastcall_gate_decisions_total", map[string]string{"endpoint": "/gate/check", "result": "closed", "hook": "none"}); n != 1 {
		t.Errorf("closed /gate/check decisions = %v, want 1", n)
	}
}

func TestFlaggerEventBecomesAKubernetesEventOnTheCanary(t *testing.T) {
	env := clustertest.New(t)
	c := adminClient(t)
	s := startServer(t, serverOpts{})
	app := newDrainApp()
	close(app.release)
	canary(t, c, env.Namespace, "web", "web", 1, app)
	var cn struct {
		Metadata struct{ UID string } `json:"metadata"`
	}
	raw, err := env.Client.CoreV1().RESTClient().Get().AbsPath("/apis/flagger.app/v1beta1/namespaces", env.Namespace, "canaries", "web").DoRaw(context.Background())
	if err != nil || json.Unmarshal(raw, &cn) != nil {
		t.Fatalf("read canary: %v", err)
	}

	// What Flagger v1.36 sends to an event webhook.
	ev := map[string]any{"name": "web", "namespace": env.Namespace, "phase": "Progressing", "checksum": "c1",
		"metadata": map[string]string{"eventMessage": "Halt advancement web." + env.Namespace + " waiting for approval", "eventType": "Warning", "timestamp": "1764061200000"}}
	if got := post(t, s.URL+"/flagger/event", "", ev); got.code != http.StatusAccepted || got.body != "" {
		t.Fatalf("event: %v, want 202", got)
	}
	clustertest.Eventually(t, 30*time.Second, func(ctx context.Context) (bool, error) {
		list, err := env.Client.CoreV1().Events(env.Namespace).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=Canary"})
		if err != nil {
			return false, err
		}
		for _, e := range list.Items {
			if string(e.InvolvedObject.UID) == cn.Metadata.UID && e.Reason == "CanaryProgressing" && e.Type == "Warning" &&
				strings.Contains(e.Message, "waiting for approval") {
				return true, nil
			}
		}
		return false, nil
	}, "a Warning CanaryProgressing event on canary web (uid %s)", cn.Metadata.UID)
	if n := counter(t, s, "lastcall_gate_flagger_events_total", map[string]string{"type": "Warning", "phase": "Progressing"}); n != 1 {
		t.Errorf("lastcall_gate_flagger_events_total = %v, want 1", n)
	}
	if got := post(t, s.URL+"/flagger/event", "", map[string]any{"name": "ghost", "namespace": env.Namespace}); got.code != http.StatusNotFound {
		t.Errorf("event of a canary that does not exist: %v, want 404", got)
	}
}

// TestEventFloodIsRefusedNotWritten: /flagger/event takes no token and
// costs the API server a write per call, so a flood beyond the bucket gets
// 429 with Retry-After instead of Events.
func TestEventFloodIsRefusedNotWritten(t *testing.T) {
	env := clustertest.New(t)
	c := adminClient(t)
	s := startServer(t, serverOpts{})
	app := newDrainApp()
	close(app.release)
	canary(t, c, env.Namespace, "web", "web", 1, app)
	ev := map[string]any{"name": "web", "namespace": env.Namespace, "phase": "Progressing",
		"metadata": map[string]string{"eventMessage": "flood", "eventType": "Normal"}}
	start := time.Now()
	accepted, refused := 0, 0
	for range 400 {
		got := post(t, s.URL+"/flagger/event", "", ev)
		switch got.code {
		case http.StatusAccepted:
			accepted++
		case http.StatusTooManyRequests:
			refused++
			if got.header.Get("Retry-After") == "" {
				t.Fatal("a 429 without Retry-After")
			}
		default:
			t.Fatalf("event: %v", got)
		}
	}
	// The bucket holds 200 and refills 20 a second.
	if bound := 200 + int(20*time.Since(start).Seconds()) + 1; accepted > bound || refused == 0 {
		t.Fatalf("%d events accepted and %d refused in %s, want at most %d accepted", accepted, refused, time.Since(start), bound)
	}
}
