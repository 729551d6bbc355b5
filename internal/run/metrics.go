package run

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics of the run controller. Labels are bounded: step kinds and phases.
type Metrics struct {
	started  prometheus.Counter
	finished *prometheus.CounterVec
	active   prometheus.Gauge
	waiting  prometheus.Gauge
	duration prometheus.Histogram
	steps    *prometheus.CounterVec
	stepTime *prometheus.HistogramVec
}

// NewMetrics creates the metrics and registers them with reg (if not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		started: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lastcall_runs_started_total", Help: "TerminationRuns started.",
		}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lastcall_run_attempts_finished_total", Help: "Run attempts finished, by phase.",
		}, []string{"phase"}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lastcall_runs_active", Help: "Runs being executed by this process.",
		}),
		waiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lastcall_runs_waiting", Help: "Runs waiting for an execution slot (--max-concurrent-runs).",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "lastcall_run_attempt_duration_seconds", Help: "Duration of run attempts.",
			Buckets: prometheus.ExponentialBuckets(0.1, 2, 14),
		}),
		steps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lastcall_steps_total", Help: "Steps executed, by kind and result.",
		}, []string{"kind", "result"}),
		stepTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "lastcall_step_duration_seconds", Help: "Step duration including retries, by kind.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 16),
		}, []string{"kind"}),
	}
	if reg != nil {
		reg.MustRegister(m.started, m.finished, m.active, m.waiting, m.duration, m.steps, m.stepTime)
	}
	return m
}

func (m *Metrics) observeStep(kind string, err error, d time.Duration) {
	result := "succeeded"
	if err != nil {
		result = "failed"
	}
	m.steps.WithLabelValues(kind, result).Inc()
	m.stepTime.WithLabelValues(kind).Observe(d.Seconds())
}
