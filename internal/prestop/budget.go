package prestop

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// podLookupTimeout bounds the API call that finds the budget: it spends the
// budget it is looking for.
const podLookupTimeout = 2 * time.Second

// Budget is the grace the hook found, counted from the hook's start.
type Budget struct {
	Total  time.Duration
	Source string // where it came from, for the summary
}

// podTimes is the part of a Pod the budget needs.
type podTimes struct {
	Metadata struct {
		DeletionTimestamp          *time.Time `json:"deletionTimestamp"`
		DeletionGracePeriodSeconds *int64     `json:"deletionGracePeriodSeconds"`
	} `json:"metadata"`
	Spec struct {
		TerminationGracePeriodSeconds *int64 `json:"terminationGracePeriodSeconds"`
	} `json:"spec"`
}

// resolveBudget returns c.Budget, or reads the pod from the API server.
//
// The kubelet counts deletionGracePeriodSeconds from when it starts killing
// the container, which is after the API server set deletionTimestamp
// (= delete time + grace), so deletionTimestamp − now is a slightly early
// deadline: safe. deletionGracePeriodSeconds caps it against a node clock
// that runs behind. A pod that is not being deleted (a liveness-probe
// restart) gets spec.terminationGracePeriodSeconds. If none of that can be
// read, the Kubernetes default of 30 s is assumed, and the summary says so.
func (h *Hook) resolveBudget(ctx context.Context, start time.Time) Budget {
	if h.cfg.Budget > 0 {
		return Budget{h.cfg.Budget, "--budget"}
	}
	fallback := func(why string) Budget {
		return Budget{DefaultFallbackBudget, "assumed (Kubernetes default): " + why}
	}
	if h.cfg.APIServer == "" {
		return fallback("no --budget and no API server ($KUBERNETES_SERVICE_HOST unset)")
	}
	ctx, cancel := context.WithTimeout(ctx, podLookupTimeout)
	defer cancel()
	pod, err := h.getPodTimes(ctx)
	if err != nil {
		return fallback(err.Error())
	}
	m := pod.Metadata
	switch {
	case m.DeletionTimestamp != nil:
		b := m.DeletionTimestamp.Sub(start)
		if m.DeletionGracePeriodSeconds != nil {
			b = min(b, time.Duration(*m.DeletionGracePeriodSeconds)*time.Second)
		}
		return Budget{b, "deletionTimestamp " + m.DeletionTimestamp.UTC().Format(time.RFC3339)}
	case m.DeletionGracePeriodSeconds != nil:
		return Budget{time.Duration(*m.DeletionGracePeriodSeconds) * time.Second, "deletionGracePeriodSeconds"}
	case pod.Spec.TerminationGracePeriodSeconds != nil:
		return Budget{time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second, "terminationGracePeriodSeconds (pod not being deleted)"}
	}
	return fallback("pod has no grace period")
}

// getPodTimes GETs this pod with plain HTTP, as the ServiceAccount: the
// static helper has no client-go.
func (h *Hook) getPodTimes(ctx context.Context) (podTimes, error) {
	var pod podTimes
	if h.cfg.Namespace == "" || h.cfg.Pod == "" {
		return pod, errors.New("pod name or namespace unknown")
	}
	client, err := h.apiClient()
	if err != nil {
		return pod, err
	}
	defer client.CloseIdleConnections()
	u := strings.TrimRight(h.cfg.APIServer, "/") + "/api/v1/namespaces/" + url.PathEscape(h.cfg.Namespace) + "/pods/" + url.PathEscape(h.cfg.Pod)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return pod, err
	}
	tok, err := os.ReadFile(filepath.Join(h.cfg.ServiceAccountDir, "token"))
	if err != nil {
		return pod, fmt.Errorf("read ServiceAccount token: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return pod, fmt.Errorf("get pod %s/%s: %w", h.cfg.Namespace, h.cfg.Pod, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// The API server's Status body has "message" and "reason"; the
		// status line says enough for the summary (403: RBAC missing).
		return pod, fmt.Errorf("get pod %s/%s: %s", h.cfg.Namespace, h.cfg.Pod, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&pod); err != nil {
		return pod, fmt.Errorf("decode pod %s/%s: %w", h.cfg.Namespace, h.cfg.Pod, err)
	}
	return pod, nil
}

// apiClient trusts the cluster CA from the ServiceAccount directory.
func (h *Hook) apiClient() (*http.Client, error) {
	pem, err := os.ReadFile(filepath.Join(h.cfg.ServiceAccountDir, "ca.crt"))
	if err != nil {
		return nil, fmt.Errorf("read cluster CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("cluster CA: no PEM certificate")
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	return &http.Client{Transport: tr}, nil
}
