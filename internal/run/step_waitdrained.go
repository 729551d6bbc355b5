package run

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"k8s.io/utils/clock"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
)

// WaitDrainedAction polls an endpoint until its condition holds; the step's
// timeout bounds the wait.
type WaitDrainedAction struct {
	Client *http.Client
	Clock  clock.Clock
}

// Do implements Action.
func (a WaitDrainedAction) Do(ctx context.Context, t Target) (string, error) {
	spec := t.Step.WaitDrained
	url, err := endpointURL(spec.Endpoint, t)
	if err != nil {
		return "", err
	}
	interval := time.Second
	if spec.Interval != nil && spec.Interval.Duration > 0 {
		interval = spec.Interval.Duration
	}
	polls, last := 0, "no answer yet"
	for {
		polls++
		resp, body, err := send(ctx, a.Client, http.MethodGet, url, spec.Headers, "", t)
		if err == nil {
			done, why, cerr := drained(spec, resp.StatusCode, body)
			if cerr != nil {
				return "", cerr
			}
			if done {
				return fmt.Sprintf("drained after %d polls: %s", polls, why), nil
			}
			last = why
		} else {
			last = err.Error()
		}
		timer := a.Clock.NewTimer(interval)
		select {
		case <-ctx.Done():
			timer.Stop()
			return "", fmt.Errorf("not drained after %d polls (%s): %w", polls, last, ctx.Err())
		case <-timer.C():
		}
	}
}

// drained evaluates the step's condition on one answer.
func drained(spec *v1alpha1.WaitDrainedAction, code int, body string) (bool, string, error) {
	switch {
	case len(spec.Status) > 0:
		return slices.Contains(spec.Status, int32(code)), fmt.Sprintf("status %d", code), nil
	case spec.JSONField != nil:
		if code < 200 || code >= 300 {
			return false, fmt.Sprintf("status %d", code), nil
		}
		return jsonFieldHolds(spec.JSONField, body)
	case spec.Metric != nil:
		if code < 200 || code >= 300 {
			return false, fmt.Sprintf("status %d", code), nil
		}
		v, err := metricSum(spec.Metric, body)
		if err != nil {
			return false, err.Error(), nil
		}
		return v <= spec.Metric.AtMost, fmt.Sprintf("%s = %g (at most %g)", spec.Metric.Name, v, spec.Metric.AtMost), nil
	default:
		return code >= 200 && code < 300, fmt.Sprintf("status %d", code), nil
	}
}

func jsonFieldHolds(c *v1alpha1.JSONFieldCondition, body string) (bool, string, error) {
	var doc any
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		return false, "answer is not JSON", nil
	}
	for _, part := range strings.Split(c.Path, ".") {
		m, ok := doc.(map[string]any)
		if !ok {
			return false, fmt.Sprintf("%s: no such field", c.Path), nil
		}
		if doc, ok = m[part]; !ok {
			return false, fmt.Sprintf("%s: no such field", c.Path), nil
		}
	}
	switch {
	case c.Equals != nil:
		got := fmt.Sprint(doc)
		if b, err := json.Marshal(doc); err == nil && !isString(doc) {
			got = string(b)
		}
		return got == *c.Equals, fmt.Sprintf("%s = %s", c.Path, got), nil
	case c.AtMost != nil:
		f, ok := doc.(float64)
		if !ok {
			return false, fmt.Sprintf("%s is not a number", c.Path), nil
		}
		return f <= *c.AtMost, fmt.Sprintf("%s = %g (at most %g)", c.Path, f, *c.AtMost), nil
	default:
		return true, fmt.Sprintf("%s present", c.Path), nil
	}
}

func isString(v any) bool { _, ok := v.(string); return ok }

// metricSum sums the series of a metric that carry the wanted labels.
func metricSum(c *v1alpha1.MetricCondition, body string) (float64, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("parse metrics: %w", err)
	}
	fam, ok := fams[c.Name]
	if !ok {
		return 0, fmt.Errorf("metric %s not exposed", c.Name)
	}
	var sum float64
	for _, m := range fam.GetMetric() {
		if !hasLabels(m, c.Labels) {
			continue
		}
		switch {
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Untyped != nil:
			sum += m.GetUntyped().GetValue()
		default:
			return 0, fmt.Errorf("metric %s is not a gauge, counter or untyped", c.Name)
		}
	}
	return sum, nil
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	found := 0
	for _, l := range m.GetLabel() {
		if v, ok := want[l.GetName()]; ok {
			if v != l.GetValue() {
				return false
			}
			found++
		}
	}
	return found == len(want)
}
