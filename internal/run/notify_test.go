package run

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
)

// TestNotifyDefaultBodyIsJSONForAnyMessage: the default notify body is
// built with json.Marshal; Go's %q quoting made invalid JSON of control
// characters and emoji in a run's message.
func TestNotifyDefaultBodyIsJSONForAnyMessage(t *testing.T) {
	got := make(chan []byte, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- b
	}))
	defer srv.Close()
	urls, err := NewURLAllowList([]string{srv.URL + "/"})
	if err != nil {
		t.Fatal(err)
	}
	c := &Controller{http: srv.Client(), urls: urls}
	msg := "pod web-0: \x01 bell\a, \"quoted\", 😀 and \u2028"
	run := &v1alpha1.TerminationRun{ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "ns"},
		Status: v1alpha1.TerminationRunStatus{Phase: v1alpha1.RunFailed, Message: msg, Attempt: 2}}
	if _, err := c.notify(context.Background(), &v1alpha1.NotifyAction{URL: srv.URL}, run, &v1alpha1.TerminationPolicy{}); err != nil {
		t.Fatal(err)
	}
	var body struct {
		Run, Namespace, Phase, Message string
		Attempt                        int32
	}
	b := <-got
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("notify body %q is not JSON: %v", b, err)
	}
	if body.Message != msg || body.Run != "r" || body.Phase != "Failed" || body.Attempt != 2 {
		t.Fatalf("notify body decodes to %+v", body)
	}
}
