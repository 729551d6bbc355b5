//go:build integration

package gate_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
	"github.com/lastcall-dev/lastcall/internal/gate"
)

func TestEveryEndpointRefusesBadInputWithAJSONReason(t *testing.T) {
	env := clustertest.New(t)
	s := startServer(t, serverOpts{})
	big := `{"name":"web","namespace":"` + env.Namespace + `","metadata":{"pad":"` + strings.Repeat("x", gate.DefaultMaxBodyBytes) + `"}}`
	unknownHook := `{"name":"web","namespace":"` + env.Namespace + `","metadata":{"type":"confirm-everything"}}`
	endpoints := []struct {
		path    string
		control bool
		hooked  bool // refuses an unknown hook type
	}{
		{"/flagger/gate", false, true},
		{"/flagger/gate/open", true, true},
		{"/flagger/gate/close", true, true},
		{"/flagger/event", false, false},
		{"/gate/check", false, false},
		{"/gate/open", true, false},
		{"/gate/close", true, false},
		{"/rollback/check", false, false},
		{"/rollback/open", true, false},
		{"/rollback/close", true, false},
	}
	for _, ep := range endpoints {
		token := ""
		if ep.control {
			token = adminToken
		}
		cases := []struct {
			name, method string
			body         io.Reader
			code         int
			reason       string
		}{
			{"GET", http.MethodGet, nil, http.StatusBadRequest, gate.ReasonMethodNotAllowed},
			{"PUT", http.MethodPut, strings.NewReader(`{"name":"web","namespace":"` + env.Namespace + `"}`), http.StatusBadRequest, gate.ReasonMethodNotAllowed},
			{"empty body", http.MethodPost, nil, http.StatusBadRequest, gate.ReasonInvalidPayload},
			{"malformed JSON", http.MethodPost, strings.NewReader(`{"name": "web", `), http.StatusBadRequest, gate.ReasonInvalidPayload},
			{"not an object", http.MethodPost, strings.NewReader(`["web"]`), http.StatusBadRequest, gate.ReasonInvalidPayload},
			{"no namespace", http.MethodPost, strings.NewReader(`{"name":"web"}`), http.StatusBadRequest, gate.ReasonInvalidPayload},
			{"no name", http.MethodPost, strings.NewReader(`{"namespace":"` + env.Namespace + `"}`), http.StatusBadRequest, gate.ReasonInvalidPayload},
			{"invalid name", http.MethodPost, strings.NewReader(`{"name":"../web","namespace":"` + env.Namespace + `"}`), http.StatusBadRequest, gate.ReasonInvalidPayload},
			{"oversize", http.MethodPost, strings.NewReader(big), http.StatusRequestEntityTooLarge, gate.ReasonTooLarge},
			// No Content-Length: cut off while reading.
			{"oversize, chunked", http.MethodPost, io.MultiReader(strings.NewReader(big)), http.StatusRequestEntityTooLarge, gate.ReasonTooLarge},
		}
		if ep.hooked {
			cases = append(cases, struct {
				name, method string
				body         io.Reader
				code         int
				reason       string
			}{"unknown hook type", http.MethodPost, strings.NewReader(unknownHook), http.StatusBadRequest, gate.ReasonInvalidPayload})
		}
		for _, tc := range cases {
			req, err := http.NewRequest(tc.method, s.URL+ep.path, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			got := do(t, req)
			var e struct{ Error, Reason string }
			if got.code != tc.code || got.contentType != "application/json" || json.Unmarshal([]byte(got.body), &e) != nil || e.Reason != tc.reason || e.Error == "" {
				t.Errorf("%s %s: %v, want %d {error, reason: %s}", ep.path, tc.name, got, tc.code, tc.reason)
			}
			if tc.reason == gate.ReasonTooLarge && !got.close {
				t.Errorf("%s %s: the connection stays open, want Connection: close (the rest of the body is not read)", ep.path, tc.name)
			}
			if tc.reason == gate.ReasonMethodNotAllowed && got.header.Get("Allow") != http.MethodPost {
				t.Errorf("%s %s: Allow %q, want POST", ep.path, tc.name, got.header.Get("Allow"))
			}
		}
	}
	if n := counter(t, s, "lastcall_gate_decisions_total", map[string]string{"endpoint": "/gate/check", "result": "invalid", "hook": "none"}); n != 10 {
		t.Errorf("invalid /gate/check decisions counted %v, want 10", n)
	}
}
