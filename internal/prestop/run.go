package prestop

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// RunRequest is the body POSTed to the run URL: run Policy for this pod.
type RunRequest struct {
	Namespace string `json:"namespace"`
	Pod       string `json:"pod"`
	Policy    string `json:"policy"`
}

// requestRun POSTs a RunRequest to c.RunURL, retrying transport errors and
// 5xx answers until ctx ends. The server decides what a repeated request
// means (hooks may run twice); this side only asks.
func (h *Hook) requestRun(ctx context.Context) (string, int, error) {
	body, err := json.Marshal(RunRequest{Namespace: h.cfg.Namespace, Pod: h.cfg.Pod, Policy: h.cfg.Policy})
	if err != nil {
		return "", 0, err
	}
	var status string
	n, err := retry(ctx, h.clock, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.cfg.RunURL, bytes.NewReader(body))
		if err != nil {
			return permanent(err)
		}
		if err := authorize(req, h.cfg.TokenPath); err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := h.http.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return classify(readAPIError(resp))
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		status = resp.Status
		return nil
	})
	if err != nil {
		return "", n, err
	}
	return fmt.Sprintf("policy %q for %s/%s: %s", h.cfg.Policy, h.cfg.Namespace, h.cfg.Pod, status), n, nil
}
