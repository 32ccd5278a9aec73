// Package sink runs the sink pipelines of plugins.yaml's sinks: list. Each
// pipeline consumes its topics through consume's group sessions (so
// offsets, rebalancing and dead letters are shared with every other
// client), filters and transforms each message with core/transform, and
// writes batches through its sink plugin's Write. A message is acked only
// once the plugin reports it durable; a failed one is retried with backoff
// and, when its failures are its own (not an outage of the store) and its
// retries are spent, dead-lettered with can_skip or retried forever
// without, holding back only its own lane (see config.Sink.Order).
package sink

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqgate/mqgate/core/config"
	"github.com/mqgate/mqgate/core/consume"
	"github.com/mqgate/mqgate/core/metrics"
	"github.com/mqgate/mqgate/sdk"
)

// Options configure a Service.
type Options struct {
	// Sinks as plugins.yaml's sinks: list has them, validated.
	Sinks []*config.Sink
	// Plugins holds each sink's plugin, configured, by sink name.
	Plugins map[string]sdk.Sink
	// Consumer holds the group sessions the sinks read from.
	Consumer   *consume.Service
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// PluginState, when set, reports the state of a sink's plugin process
	// ("up", "restarting", ...) and its last error, for Status.
	PluginState func(sink string) (state, lastError string)
	// DrainTimeout bounds how long Close waits for Write calls in flight
	// (default 10s); then they are cut off, and what they held is written
	// again by the group's next owner.
	DrainTimeout time.Duration
}

// Service runs the sink pipelines.
type Service struct {
	opts    Options
	logger  *slog.Logger
	metrics *sinkMetrics
	pipes   []*pipeline

	cancel, stopWork context.CancelFunc
	wg               sync.WaitGroup
	closeOnce        sync.Once
}

// New prepares every pipeline: it compiles their expressions and opens
// their readers. Start runs them.
func New(opts Options) (*Service, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = 10 * time.Second
	}
	s := &Service{opts: opts, logger: opts.Logger}
	s.metrics = newSinkMetrics(opts.Registerer, s)
	for _, cfg := range opts.Sinks {
		p, err := newPipeline(s, cfg, opts.Plugins[cfg.Name])
		if err != nil {
			s.closeAll()
			return nil, err
		}
		s.pipes = append(s.pipes, p)
	}
	return s, nil
}

// Start runs every pipeline until Close.
func (s *Service) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	work, stopWork := context.WithCancel(context.Background())
	s.cancel, s.stopWork = cancel, stopWork
	for _, p := range s.pipes {
		s.wg.Go(func() { p.run(ctx, work) })
	}
}

// Close stops taking messages, waits up to the drain timeout for Write
// calls in flight, then cuts the rest off. What was not written is not
// acked, so the group's next owner (or this gateway's next start) writes
// it.
func (s *Service) Close() { s.closeOnce.Do(s.close) }

func (s *Service) close() {
	if s.cancel != nil {
		s.cancel()
		done := make(chan struct{})
		go func() { s.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(s.opts.DrainTimeout):
			s.logger.Warn("sink: writes still in flight at shutdown; cutting them off", "waited", s.opts.DrainTimeout)
			s.stopWork()
			<-done
		}
		s.stopWork()
	}
	s.closeAll()
}

func (s *Service) closeAll() {
	for _, p := range s.pipes {
		p.stopTimers()
		p.closeReaders()
		p.mu.Lock()
		p.state = StateStopped
		p.mu.Unlock()
	}
}

// Status reports every pipeline, in config order.
func (s *Service) Status() []Status {
	out := make([]Status, len(s.pipes))
	for i, p := range s.pipes {
		out[i] = p.status()
	}
	return out
}

// StatusOf reports the pipeline named name.
func (s *Service) StatusOf(name string) (Status, bool) {
	for _, p := range s.pipes {
		if p.cfg.Name == name {
			return p.status(), true
		}
	}
	return Status{}, false
}

type sinkMetrics struct {
	latency *prometheus.HistogramVec
	records *prometheus.HistogramVec
}

// newSinkMetrics registers the histograms of Write calls and a collector
// that reads the pipelines' counters when scraped.
func newSinkMetrics(reg prometheus.Registerer, s *Service) *sinkMetrics {
	m := &sinkMetrics{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mqgate_sink_write_seconds", Help: "Time of one Write call to a sink plugin.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"sink"}),
		records: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mqgate_sink_batch_records", Help: "Records in one Write call to a sink plugin.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 14),
		}, []string{"sink"}),
	}
	if reg != nil {
		m.latency = metrics.Register(reg, m.latency)
		m.records = metrics.Register(reg, m.records)
		metrics.Register(reg, prometheus.Collector(&statusCollector{s}))
	}
	return m
}

var (
	descWritten      = prometheus.NewDesc("mqgate_sink_written_total", "Messages the sink plugin reported durable (and acked).", []string{"sink"}, nil)
	descFailures     = prometheus.NewDesc("mqgate_sink_failures_total", "Messages a Write failed for, each time it failed.", []string{"sink"}, nil)
	descRetried      = prometheus.NewDesc("mqgate_sink_retries_total", "Messages scheduled to be written again after a failure.", []string{"sink"}, nil)
	descDeadLettered = prometheus.NewDesc("mqgate_sink_dead_lettered_total", "Messages sent to the dead-letter topic.", []string{"sink"}, nil)
	descFiltered     = prometheus.NewDesc("mqgate_sink_filtered_total", "Messages the filter rejected (acked, not written).", []string{"sink"}, nil)
	descBatches      = prometheus.NewDesc("mqgate_sink_batches_total", "Write calls made.", []string{"sink"}, nil)
	descInFlight     = prometheus.NewDesc("mqgate_sink_in_flight", "Messages in Write calls in flight.", []string{"sink"}, nil)
	descQueued       = prometheus.NewDesc("mqgate_sink_queued", "Messages held: in flight, waiting for a retry or for their turn.", []string{"sink"}, nil)
	descRetrying     = prometheus.NewDesc("mqgate_sink_retrying", "Lanes whose head waits for a retry.", []string{"sink"}, nil)
	descUp           = prometheus.NewDesc("mqgate_sink_running", "1 while the pipeline is consuming every topic.", []string{"sink"}, nil)
)

type statusCollector struct{ s *Service }

func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descWritten, descFailures, descRetried, descDeadLettered, descFiltered, descBatches, descInFlight, descQueued, descRetrying, descUp} {
		ch <- d
	}
}

func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.s.Status() {
		counter := func(d *prometheus.Desc, v int64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), st.Name)
		}
		gauge := func(d *prometheus.Desc, v int) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), st.Name)
		}
		counter(descWritten, st.Written)
		counter(descFailures, st.Failures)
		counter(descRetried, st.Retried)
		counter(descDeadLettered, st.DeadLettered)
		counter(descFiltered, st.Filtered)
		counter(descBatches, st.Batches)
		gauge(descInFlight, st.InFlight)
		gauge(descQueued, st.Queued)
		gauge(descRetrying, st.Retrying)
		up := 0
		if st.State == StateRunning {
			up = 1
		}
		gauge(descUp, up)
	}
}
