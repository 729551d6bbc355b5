package watch

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	hookFailures *prometheus.CounterVec
	killed       *prometheus.CounterVec
	runs         *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (metrics, error) {
	m := metrics{
		hookFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lastcall_watch_hook_failures_total",
			Help: "Lifecycle hook failures the kubelet reported (FailedPreStopHook, FailedPostStartHook Events), by namespace and hook.",
		}, []string{"namespace", "hook"}),
		killed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lastcall_watch_killed_at_deadline_total",
			Help: "Containers SIGKILLed at their pod's termination deadline, by namespace.",
		}, []string{"namespace"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lastcall_watch_runs_started_total",
			Help: "TerminationRuns started for pods whose preStop hook failed (policies with runOnFailedPreStop), by namespace.",
		}, []string{"namespace"}),
	}
	for _, c := range []prometheus.Collector{m.hookFailures, m.killed, m.runs} {
		if err := reg.Register(c); err != nil {
			return metrics{}, err
		}
	}
	return m, nil
}
