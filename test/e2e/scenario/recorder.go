package scenario

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"
)

// GateAnswer is the JSON body lastcall's /flagger/gate answers with.
type GateAnswer struct {
	Run       string `json:"run"`
	Phase     string `json:"phase"`
	PodsDone  int32  `json:"podsDone"`
	PodsTotal int32  `json:"podsTotal"`
	Message   string `json:"message"`
}

// GateCall is one webhook call from Flagger and the answer it got.
type GateCall struct {
	At       time.Time // when the answer was known, just before Flagger got it
	Took     time.Duration
	Checksum string // the canary revision Flagger asked about
	Status   int    // what Flagger got; 502 when lastcall was unreachable
	Answer   GateAnswer
	Err      string // why lastcall could not be reached
}

// Open reports whether Flagger took the answer as "go on" (it accepts up to 202).
func (c GateCall) Open() bool { return c.Status >= 200 && c.Status <= 202 }

// Undrained reports a pass without a run: the old primary pods carried
// traffic (Deferred: a later call drains; NotDrained: none will).
func (c GateCall) Undrained() bool {
	return c.Open() && (c.Answer.Phase == "Deferred" || c.Answer.Phase == "NotDrained")
}

// gateRecorder sits between Flagger and lastcall's gate and records each
// call and answer, which Flagger itself only logs. It passes requests and
// answers through unchanged; when lastcall is down it answers 502, as a
// Service with no ready endpoint would.
type gateRecorder struct {
	proxy *httputil.ReverseProxy
	onLog func(format string, args ...any)

	mu    sync.Mutex
	calls []GateCall
}

type callKey struct{}

type pending struct {
	start    time.Time
	answered time.Time // before the answer is written to Flagger
	checksum string
	status   int
	body     []byte
	err      string
}

func newGateRecorder(upstream *url.URL, onLog func(string, ...any)) *gateRecorder {
	g := &gateRecorder{onLog: onLog}
	g.proxy = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(upstream) },
		// A dead lastcall must show at once as an error, not after a long dial.
		Transport: &http.Transport{DialContext: (&net.Dialer{Timeout: 2 * time.Second}).DialContext},
		ModifyResponse: func(resp *http.Response) error {
			p := resp.Request.Context().Value(callKey{}).(*pending)
			b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			if err != nil {
				return err
			}
			resp.Body = io.NopCloser(bytes.NewReader(b))
			p.status, p.body, p.answered = resp.StatusCode, b, time.Now()
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			p := r.Context().Value(callKey{}).(*pending)
			p.status, p.err, p.answered = http.StatusBadGateway, err.Error(), time.Now()
			http.Error(w, "lastcall unreachable", http.StatusBadGateway)
		},
	}
	return g
}

func (g *gateRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := &pending{start: time.Now()}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	r.Body = io.NopCloser(bytes.NewReader(body))
	var payload struct{ Checksum string }
	_ = json.Unmarshal(body, &payload)
	p.checksum = payload.Checksum
	r = r.WithContext(context.WithValue(r.Context(), callKey{}, p))
	g.proxy.ServeHTTP(w, r)
	c := GateCall{At: p.answered, Took: p.answered.Sub(p.start), Checksum: p.checksum, Status: p.status, Err: p.err}
	_ = json.Unmarshal(p.body, &c.Answer)
	g.mu.Lock()
	g.calls = append(g.calls, c)
	g.mu.Unlock()
	switch {
	case c.Err != "":
		g.onLog("gate: lastcall unreachable (%d to Flagger)", c.Status)
	default:
		g.onLog("gate: %d %s %d/%d %s", c.Status, c.Answer.Phase, c.Answer.PodsDone, c.Answer.PodsTotal, c.Answer.Message)
	}
}

// all returns a copy of the calls so far.
func (g *gateRecorder) all() []GateCall {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]GateCall(nil), g.calls...)
}
