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
	}
}

// observe counts and times one answered call.
func (m *thriftMetrics) observe(method string, code sdk.Code, elapsed time.Duration) {
	m.requests.WithLabelValues(method, strconv.Itoa(int(code))).Inc()
	m.duration.WithLabelValues(method).Observe(elapsed.Seconds())
}
