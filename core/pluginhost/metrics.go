package pluginhost

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	calls    *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	restarts *prometheus.CounterVec
	up       *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mqgate_plugin_calls_total",
			Help: "Calls the gateway made to plugins, by instance, method and result code.",
		}, []string{"instance", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mqgate_plugin_call_duration_seconds",
			Help:    "Latency of calls to plugins, by instance and method.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 14),
		}, []string{"instance", "method"}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mqgate_plugin_restarts_total",
			Help: "Times a plugin process was replaced after it died or stopped answering.",
		}, []string{"instance"}),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mqgate_plugin_up",
			Help: "1 while the plugin process of an instance is up and configured.",
		}, []string{"instance"}),
	}
	if reg != nil {
		reg.MustRegister(m.calls, m.latency, m.restarts, m.up)
	}
	return m
}
