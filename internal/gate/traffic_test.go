package gate

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func canaryWith(spec, status map[string]any) *unstructured.Unstructured {
	if spec["targetRef"] == nil {
		spec["targetRef"] = map[string]any{"kind": "Deployment", "name": "web"}
	}
	return &unstructured.Unstructured{Object: map[string]any{"spec": spec, "status": status}}
}

// TestDecideTrafficModeByMode is the table of docs/gate.md: for each mode
// Flagger runs, whether the old primary pods carry traffic at a
// confirm-promotion call, and whether they ever stop before being replaced.
func TestDecideTrafficModeByMode(t *testing.T) {
	w := func(n int64) *int64 { return &n }
	eps := func(n int) *int { return &n }
	bg := map[string]any{"iterations": int64(5)}
	for _, tc := range []struct {
		name             string
		spec, status     map[string]any
		weight           *int64
		endpoints        *int
		onPrimary, never bool
		why              string
	}{
		{"kubernetes Blue/Green", map[string]any{"provider": "kubernetes", "analysis": bg}, nil, nil, eps(3), true, true, "provider kubernetes"},
		{"kubernetes without iterations is still Blue/Green", map[string]any{"provider": "kubernetes", "analysis": map[string]any{"maxWeight": int64(100)}}, nil, nil, eps(3), true, true, "Blue/Green"},
		{"kubernetes with no ready endpoint", map[string]any{"provider": "kubernetes", "analysis": bg}, nil, nil, eps(0), false, false, "no ready endpoints"},
		{"no provider: the server's default (kubernetes)", map[string]any{"analysis": bg}, nil, nil, eps(2), true, true, "provider kubernetes"},
		{"gatewayapi Blue/Green before the switch", map[string]any{"provider": "gatewayapi:v1", "analysis": bg}, map[string]any{"iterations": int64(5)}, w(100), nil, true, false, "weight 100"},
		{"gatewayapi Blue/Green after the switch", map[string]any{"provider": "gatewayapi:v1", "analysis": bg}, map[string]any{"iterations": int64(6)}, w(0), nil, false, false, "weight 0"},
		{"gatewayapi Blue/Green after Flagger reset the iterations", map[string]any{"provider": "gatewayapi:v1", "analysis": bg}, map[string]any{"iterations": int64(4)}, w(0), nil, false, false, "weight 0"},
		{"gatewayapi progressive at 100", map[string]any{"provider": "gatewayapi:v1", "analysis": map[string]any{"maxWeight": int64(100), "stepWeight": int64(50)}}, map[string]any{"canaryWeight": int64(100)}, w(0), nil, false, false, "weight 0"},
		{"gatewayapi progressive to 50", map[string]any{"provider": "gatewayapi:v1", "analysis": map[string]any{"maxWeight": int64(50), "stepWeight": int64(25)}}, map[string]any{"canaryWeight": int64(50)}, w(50), nil, true, true, "maxWeight 50"},
		{"stepWeights ending below 100", map[string]any{"provider": "gatewayapi:v1", "analysis": map[string]any{"stepWeights": []any{int64(10), int64(60)}}}, map[string]any{"canaryWeight": int64(60)}, w(40), nil, true, true, "maxWeight 60"},
		{"A/B testing", map[string]any{"provider": "gatewayapi:v1", "analysis": map[string]any{"iterations": int64(5), "match": []any{map[string]any{"headers": map[string]any{}}}}}, nil, w(100), nil, true, true, "A/B"},
		{"istio progressive at 100, from the status", map[string]any{"provider": "istio", "analysis": map[string]any{"stepWeight": int64(50)}}, map[string]any{"canaryWeight": int64(100)}, nil, nil, false, false, "weight 100"},
		{"istio progressive at 50, from the status", map[string]any{"provider": "istio", "analysis": map[string]any{"stepWeight": int64(50)}}, map[string]any{"canaryWeight": int64(50)}, nil, nil, true, false, "weight 50"},
		{"istio Blue/Green before the switch", map[string]any{"provider": "istio", "analysis": bg}, map[string]any{"iterations": int64(5)}, nil, nil, true, false, "still on the primary"},
		{"istio Blue/Green after the switch", map[string]any{"provider": "istio", "analysis": bg}, map[string]any{"iterations": int64(6)}, nil, nil, false, false, "all traffic routed to the canary"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status := tc.status
			if status == nil {
				status = map[string]any{}
			}
			rt := routingOf(canaryWith(tc.spec, status), DefaultMeshProvider)
			got := decideTraffic(rt, tc.weight, tc.endpoints)
			if got.onPrimary != tc.onPrimary || got.never != tc.never || !strings.Contains(got.why, tc.why) {
				t.Errorf("got onPrimary %v never %v (%s); want %v %v, saying %q", got.onPrimary, got.never, got.why, tc.onPrimary, tc.never, tc.why)
			}
		})
	}
}
