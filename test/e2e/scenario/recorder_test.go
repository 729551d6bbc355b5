package scenario

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestGateRecorderPassesAnswersThroughAndRecordsThem(t *testing.T) {
	var gotBody string
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		gotBody = r.URL.Path + " " + string(b)
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, `{"run":"r1","phase":"Running","podsDone":1,"podsTotal":3,"message":"waiting","extra":true}`)
	}))
	u, _ := url.Parse(upstream.URL)
	rec := newGateRecorder(u, func(string, ...any) {})
	front := httptest.NewServer(rec)
	defer front.Close()

	payload := `{"name":"podinfo","namespace":"ns","phase":"Progressing","checksum":"abc"}`
	resp, err := http.Post(front.URL+"/flagger/gate", "application/json", strings.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), `"extra":true`) {
		t.Errorf("Flagger got %d %s, want the upstream's answer unchanged", resp.StatusCode, body)
	}
	if gotBody != "/flagger/gate "+payload {
		t.Errorf("upstream got %q", gotBody)
	}

	upstream.Close() // lastcall is down
	resp, err = http.Post(front.URL+"/flagger/gate", "application/json", strings.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("with lastcall down Flagger got %d, want 502", resp.StatusCode)
	}

	calls := rec.all()
	if len(calls) != 2 {
		t.Fatalf("%d calls recorded", len(calls))
	}
	want := GateAnswer{Run: "r1", Phase: "Running", PodsDone: 1, PodsTotal: 3, Message: "waiting"}
	if c := calls[0]; c.Status != 403 || c.Answer != want || c.Checksum != "abc" || c.Err != "" || c.Open() {
		t.Errorf("first call recorded as %+v", c)
	}
	if c := calls[1]; c.Status != 502 || c.Err == "" || c.Open() {
		t.Errorf("second call recorded as %+v", c)
	}
}
