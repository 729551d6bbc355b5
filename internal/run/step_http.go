package run

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
)

// HTTPAction sends a request to the pod (or any URL) and checks the code.
type HTTPAction struct {
	Client *http.Client
}

// Do implements Action.
func (a HTTPAction) Do(ctx context.Context, t Target) (string, error) {
	spec := t.Step.HTTP
	url, err := endpointURL(spec.Endpoint, t)
	if err != nil {
		return "", err
	}
	body, err := render("body", spec.Body, dataFor(t))
	if err != nil {
		return "", err
	}
	method := spec.Method
	if method == "" {
		method = http.MethodPost
	}
	resp, text, err := send(ctx, a.Client, method, url, spec.Headers, body, t)
	if err != nil {
		return "", err
	}
	if !statusExpected(resp.StatusCode, spec.ExpectedStatus) {
		return "", fmt.Errorf("%s %s: unexpected status %d: %s", method, url, resp.StatusCode, trim(strings.TrimSpace(text)))
	}
	return fmt.Sprintf("%s %s: %d", method, url, resp.StatusCode), nil
}

func statusExpected(code int, expected []int32) bool {
	if len(expected) == 0 {
		return code >= 200 && code < 300
	}
	return slices.Contains(expected, int32(code))
}

// send performs one request and reads at most 64 KiB of the answer.
func send(ctx context.Context, c *http.Client, method, url string, headers map[string]string, body string, t Target) (*http.Response, string, error) {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return nil, "", permanent("build request: %v", err)
	}
	hs, err := renderHeaders(headers, t)
	if err != nil {
		return nil, "", err
	}
	for k, v := range hs {
		req.Header.Set(k, v)
	}
	if body != "" && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return resp, "", fmt.Errorf("read answer of %s: %w", url, err)
	}
	return resp, string(b), nil
}

var _ Action = HTTPAction{}

// kindOf is for metrics and messages.
func kindOf(s *v1alpha1.Step) string { return string(s.Kind()) }
