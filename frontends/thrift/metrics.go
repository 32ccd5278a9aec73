package thriftapi

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqgate/mqgate/core/metrics"
	"github.com/mqgate/mqgate/sdk"
)

// thriftMetrics are the per-call metrics of the Thrift frontend.
type thriftMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	// requestBytesInFlight and requestsRefused watch requests in memory
	// (budget.go).
	requestBytesInFlight prometheus.Gauge
	requestsRefused      prometheus.Counter
}

// newThriftMetrics registers the Thrift metrics in reg, reusing ones an
// earlier server registered there.
func newThriftMetrics(reg *prometheus.Registry) *thriftMetrics {
	return &thriftMetrics{
		requests: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mqgate_thrift_requests_total",
			Help: "Thrift calls answered, by method and result code.",
		}, []string{"method", "code"})),
		duration: metrics.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mqgate_thrift_request_duration_seconds",
			Help:    "Time from reading a Thrift call to having its answer ready, by method.",
			Buckets: prometheus.DefBuckets,
		}, []string{"method"})),
		requestBytesInFlight: metrics.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mqgate_thrift_request_bytes_in_flight",
			Help: "Bytes of Thrift requests read and not yet answered; bounded per service by thrift.max_request_bytes_in_flight.",
		})),
		requestsRefused: metrics.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mqgate_thrift_requests_refused_total",
			Help: "Thrift connections closed because their request found no room in thrift.max_request_bytes_in_flight.",
		})),
	}
}

// observe counts and times one answered call.
func (m *thriftMetrics) observe(method string, code sdk.Code, elapsed time.Duration) {
	m.requests.WithLabelValues(method, strconv.Itoa(int(code))).Inc()
	m.duration.WithLabelValues(method).Observe(elapsed.Seconds())
}
