package state

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Operations, the "op" label of every metric.
const (
	opPut    = "put"
	opGet    = "get"
	opList   = "list"
	opDelete = "delete"
	opSave   = "save"
)

type metrics struct {
	requests *prometheus.CounterVec
	bytes    *prometheus.CounterVec
	duration *prometheus.HistogramVec
	pruned   prometheus.Counter
	damaged  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lastcall_state_requests_total",
			Help: "State API requests by operation and status code.",
		}, []string{"op", "code"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lastcall_state_bytes_total",
			Help: "Payload bytes stored (put, save) or served (get).",
		}, []string{"op"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "lastcall_state_request_duration_seconds",
			Help: "State API request duration by operation.",
			// 1 ms (a small fsync'd save) to about 4 min (a 1 GiB upload).
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"op"}),
		pruned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lastcall_state_pruned_versions_total",
			Help: "Versions deleted by the retention policy.",
		}),
		damaged: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lastcall_state_unreadable_objects_total",
			Help: "Damaged objects a read or a listing skipped (each time it met one).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.bytes, m.duration, m.pruned, m.damaged)
	}
	return m
}

// instrument counts and times every request of op.
func (s *Server) instrument(op string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		h(rec, r)
		s.metrics.requests.WithLabelValues(op, strconv.Itoa(rec.code)).Inc()
		s.metrics.duration.WithLabelValues(op).Observe(time.Since(start).Seconds())
	})
}

type statusRecorder struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.code, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the real writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
