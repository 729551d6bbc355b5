package gate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
)

// HookType is a Flagger webhook type (spec.analysis.webhooks[].type).
type HookType string

// Flagger's webhook types (v1.36).
const (
	HookConfirmRollout         HookType = "confirm-rollout"
	HookPreRollout             HookType = "pre-rollout"
	HookRollout                HookType = "rollout"
	HookConfirmTrafficIncrease HookType = "confirm-traffic-increase"
	HookConfirmPromotion       HookType = "confirm-promotion"
	HookPostRollout            HookType = "post-rollout"
	HookRollback               HookType = "rollback"
	HookEvent                  HookType = "event"
)

var knownHooks = map[HookType]bool{
	HookConfirmRollout: true, HookPreRollout: true, HookRollout: true, HookConfirmTrafficIncrease: true,
	HookConfirmPromotion: true, HookPostRollout: true, HookRollback: true, HookEvent: true,
}

// Metadata keys the gate reads from a webhook's metadata map.
const (
	// MetaPolicy names the TerminationPolicy (in the canary's namespace) a
	// gate run uses; without it the policy covering <target>-primary is used.
	MetaPolicy = "policy"
	// MetaType is the hook type: Flagger's payload does not carry it.
	MetaType = "type"
	// MetaTarget is the canary's target workload name, when the Canary
	// object cannot be read (default: the canary's name).
	MetaTarget = "target"
	// MetaRun names the gate run an override applies to (overrides only).
	MetaRun = "run"
	// MetaEventMessage and MetaEventType are set by Flagger on event hooks.
	MetaEventMessage = "eventMessage"
	MetaEventType    = "eventType"
)

// Payload is the JSON body Flagger POSTs to every webhook: the canary's
// name, namespace and phase, the checksum of the revision being rolled out,
// and the webhook's metadata. Unknown fields are ignored.
type Payload struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Phase     string `json:"phase,omitempty"`
	Checksum  string `json:"checksum,omitempty"`
	// Type is not sent by Flagger v1.36; it is honoured when a caller sends
	// it, before metadata.type.
	Type     HookType          `json:"type,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// ErrInvalidPayload wraps every reason DecodePayload and Payload.Hook refuse
// a body; the handlers answer it with 400.
var ErrInvalidPayload = errors.New("invalid payload")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidPayload, fmt.Sprintf(format, args...))
}

// DecodePayload parses and checks a webhook body: it must be one JSON object
// with a canary name (a Kubernetes object name) and namespace.
func DecodePayload(body []byte) (Payload, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return Payload{}, invalid("empty body: send Flagger's JSON payload")
	}
	var p Payload
	if err := json.Unmarshal(body, &p); err != nil {
		return Payload{}, invalid("%s", jsonError(err))
	}
	if p.Name == "" || p.Namespace == "" {
		return Payload{}, invalid("name and namespace of the canary are required")
	}
	if errs := validation.IsDNS1123Subdomain(p.Name); len(errs) > 0 {
		return Payload{}, invalid("name %q: %s", p.Name, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Label(p.Namespace); len(errs) > 0 {
		return Payload{}, invalid("namespace %q: %s", p.Namespace, strings.Join(errs, "; "))
	}
	// Flagger's checksums are short lowercase alphanumerics; anything else
	// is not Flagger's and must not reach a run name, a label or a log line.
	if p.Checksum != "" && len(validation.IsDNS1123Label(p.Checksum)) > 0 {
		return Payload{}, invalid("checksum: at most 63 characters of [a-z0-9-]")
	}
	if len(p.Metadata) > maxMetadataEntries {
		return Payload{}, invalid("metadata: more than %d entries", maxMetadataEntries)
	}
	for k, v := range p.Metadata {
		if len(k) > maxMetadataKey || len(v) > maxMetadataValue {
			return Payload{}, invalid("metadata: keys at most %d bytes, values at most %d", maxMetadataKey, maxMetadataValue)
		}
	}
	return p, nil
}

// Bounds of a payload's metadata (spec.analysis.webhooks[].metadata): room
// for a loadtester command line, far from what could make a run, a label or
// an Event grow.
const (
	maxMetadataEntries = 32
	maxMetadataKey     = 63
	maxMetadataValue   = 4096
)

// jsonError says what was wrong with a body without echoing all of it.
func jsonError(err error) string {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return "the body must be a JSON object"
		}
		return fmt.Sprintf("field %s must be a %s, not a JSON %s", typeErr.Field, typeErr.Type, typeErr.Value)
	case errors.As(err, &syntaxErr):
		return fmt.Sprintf("malformed JSON at byte %d: %v", syntaxErr.Offset, err)
	}
	return "malformed JSON: " + err.Error()
}

// Hook returns the hook type the caller declared (the type field, else
// metadata.type), or def when it declared none.
func (p Payload) Hook(def HookType) (HookType, error) {
	h := p.Type
	if h == "" {
		h = HookType(p.Metadata[MetaType])
	}
	if h == "" {
		return def, nil
	}
	if !knownHooks[h] {
		return "", invalid("unknown hook type %q", h)
	}
	return h, nil
}

// nn is the canary's key, which is also its Gate's.
func (p Payload) nn() types.NamespacedName {
	return types.NamespacedName{Namespace: p.Namespace, Name: p.Name}
}
