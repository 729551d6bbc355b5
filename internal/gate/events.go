package gate

import (
	"errors"
	"net/http"

	corev1 "k8s.io/api/core/v1"

	"github.com/lastcall-dev/lastcall/internal/text"
)

// Flagger emits a few events per canary and analysis interval; the bucket
// takes a rollout of many canaries at once.
const (
	eventsPerSecond = 20
	eventsBurst     = 200
)

var errTooManyEvents = errors.New("too many events; Flagger retries none, so this one is dropped")

// maxEventMessage keeps an Event's message within what the API accepts.
const maxEventMessage = 1024

// event answers POST /flagger/event: Flagger's event webhook becomes a
// Kubernetes Event on the Canary (reason Canary<phase>) and a count in
// lastcall_gate_flagger_events_total. It answers 202 with no body.
func (s *Server) event(w http.ResponseWriter, r *http.Request) (string, string) {
	p, err := s.readPayload(w, r)
	if err != nil {
		return s.fail(w, r, err), hookNone
	}
	ref, err := s.canaryRef(r.Context(), p)
	if err != nil {
		return s.fail(w, r, err), string(HookEvent)
	}
	// Events cost the API server a write each and the endpoint takes no
	// token: a flood is refused rather than written.
	if !s.events.TryAccept() {
		return s.fail(w, r, errTooManyEvents), string(HookEvent)
	}
	typ := corev1.EventTypeNormal
	if p.Metadata[MetaEventType] == corev1.EventTypeWarning {
		typ = corev1.EventTypeWarning
	}
	msg := p.Metadata[MetaEventMessage]
	if msg == "" {
		msg = "(Flagger sent no message)"
	}
	msg = text.Truncate(msg, maxEventMessage, "")
	phase := phaseLabel(p.Phase)
	s.c.Recorder.Event(ref, typ, "Canary"+phase, msg)
	s.metrics.events.WithLabelValues(typ, phase).Inc()
	writeText(w, http.StatusAccepted, "")
	return resultAccepted, string(HookEvent)
}
