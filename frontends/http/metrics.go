package httpapi

import (
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mqgate/mqgate/core/metrics"
)

// unmatchedRoute is the route label of requests no route matched, so that
// arbitrary paths never become label values.
const unmatchedRoute = "unmatched"

// httpMetrics are the per-request metrics of the HTTP frontend.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
	// bodyBytesInFlight and bodiesRefused watch request bodies in memory
	// (bodies.go).
	bodyBytesInFlight prometheus.Gauge
	bodiesRefused     *prometheus.CounterVec
}

// newHTTPMetrics registers the HTTP metrics in reg, reusing ones an earlier
// Server registered there.
func newHTTPMetrics(reg *prometheus.Registry) *httpMetrics {
	return &httpMetrics{
		requests: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mqgate_http_requests_total",
			Help: "HTTP requests answered, by route pattern, method and HTTP status.",
		}, []string{"route", "method", "code"})),
		duration: metrics.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mqgate_http_request_duration_seconds",
			Help:    "Time from receiving an HTTP request to answering it, by route pattern and method.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route", "method"})),
		inFlight: metrics.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mqgate_http_requests_in_flight",
			Help: "HTTP requests received and not yet answered, long polls and this scrape included.",
		})),
		bodyBytesInFlight: metrics.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mqgate_http_request_body_bytes_in_flight",
			Help: "Bytes of memory held for HTTP request bodies being read or served; bounded by http.max_body_bytes_in_flight.",
		})),
		bodiesRefused: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mqgate_http_request_bodies_refused_total",
			Help: "HTTP request bodies refused, by the limit they met: max_body_bytes (code 16) or max_body_bytes_in_flight (code 17).",
		}, []string{"limit"})),
	}
}

// observe counts and times every request, and logs it: server errors at
// Warn, everything else at Debug.
func (s *Server) observe(c *gin.Context) {
	start := time.Now()
	s.metrics.inFlight.Inc()
	defer s.metrics.inFlight.Dec()
	c.Next()
	elapsed := time.Since(start)

	route := c.FullPath()
	if route == "" {
		route = unmatchedRoute
	}
	method := methodLabel(c.Request.Method)
	status := c.Writer.Status()
	s.metrics.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	s.metrics.duration.WithLabelValues(route, method).Observe(elapsed.Seconds())

	level := slog.LevelDebug
	if status >= http.StatusInternalServerError {
		level = slog.LevelWarn
	}
	// Asked first: the arguments cost two allocations a request even when
	// the line is not written, as it is not at the default level.
	if ctx := c.Request.Context(); s.log.Enabled(ctx, level) {
		s.log.Log(ctx, level, "http request",
			"method", c.Request.Method, "path", c.Request.URL.Path, "route", route,
			"status", status, "duration", elapsed, "remote", c.Request.RemoteAddr)
	}
}

// methodLabel keeps the method label to the standard methods, since a client
// may send any token as a method.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	default:
		return "other"
	}
}

// serveMetrics serves the registry in the Prometheus text format.
func (s *Server) serveMetrics() gin.HandlerFunc {
	h := promhttp.HandlerFor(s.opts.Registry, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	})
	return gin.WrapH(h)
}
