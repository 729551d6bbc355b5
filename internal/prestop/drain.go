package prestop

import (
	"context"
	"fmt"
	"io"
	"net/http"
)

// drain POSTs c.DrainURL until the app answers 2xx, a 4xx, or ctx ends. The
// connection is not kept alive: the wait step that follows would count it.
func (h *Hook) drain(ctx context.Context) (string, int, error) {
	var status string
	n, err := retry(ctx, h.clock, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.cfg.DrainURL, http.NoBody)
		if err != nil {
			return permanent(err)
		}
		req.Close = true
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
	return fmt.Sprintf("POST %s: %s", redactString(h.cfg.DrainURL), status), n, nil
}
