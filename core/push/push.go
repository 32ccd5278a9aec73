// Package push delivers consumed messages to HTTP endpoints: the push
// subscriptions of plugins.yaml's push: list. Each subscription consumes
// its topics through consume's group sessions (so offsets, rebalancing and
// dead letters are shared with pull clients) and sends every message as an
// HTTP request to one of its targets, with retries, per-key or per-qid
// order, a rate limit, filters and transforms, and seed 003's delivery
// guarantees 1, 2 and 3.
package push

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqgate/mqgate/core/config"
	"github.com/mqgate/mqgate/core/consume"
	"github.com/mqgate/mqgate/core/metrics"
)

// Options configure a Service.
type Options struct {
	// Subscriptions as plugins.yaml's push: list has them, validated.
	Subscriptions []*config.Push
	// Consumer holds the group sessions the subscriptions read from.
	Consumer   *consume.Service
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Origin names the cluster a subscription's topic is consumed from
	// ("" when the topic's routed one) and its broker, for envelope ddmq's
	// carrera_qid and carrera_source; nil gives no cluster and KAFKA.
	Origin func(cluster, topic string) Origin
	// DrainTimeout bounds how long Close waits for requests in flight
	// (default 10s); then they are cut off and sent again by the next
	// owner.
	DrainTimeout time.Duration
}

// Service runs the push subscriptions.
type Service struct {
	opts    Options
	logger  *slog.Logger
	metrics *pushMetrics
	subs    []*subscription

	cancel, stopWork context.CancelFunc
	wg               sync.WaitGroup
	closeOnce        sync.Once
}

// New prepares every subscription: it compiles their expressions, opens
// their delivered records and their readers. Start runs them.
func New(opts Options) (*Service, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = 10 * time.Second
	}
	s := &Service{opts: opts, logger: opts.Logger}
	for _, cfg := range opts.Subscriptions {
		sub, err := newSubscription(s, cfg)
		if err != nil {
			s.closeAll()
			return nil, err
		}
		s.subs = append(s.subs, sub)
	}
	s.metrics = newPushMetrics(opts.Registerer, s)
	return s, nil
}

// Start runs every subscription until Close.
func (s *Service) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	work, stopWork := context.WithCancel(context.Background())
	s.cancel, s.stopWork = cancel, stopWork
	for _, sub := range s.subs {
		s.wg.Go(func() { sub.run(ctx, work) })
	}
}

// Close stops taking messages, waits up to the drain timeout for requests
// in flight, then cuts the rest off. What was not delivered is not acked,
// so the group's next owner (or this gateway's next start) sends it.
func (s *Service) Close() { s.closeOnce.Do(s.close) }

func (s *Service) close() {
	if s.cancel != nil {
		s.cancel()
		done := make(chan struct{})
		go func() { s.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(s.opts.DrainTimeout):
			s.logger.Warn("push: requests still in flight at shutdown; cutting them off", "waited", s.opts.DrainTimeout)
			s.stopWork()
			<-done
		}
		s.stopWork()
	}
	s.closeAll()
}

func (s *Service) closeAll() {
	for _, sub := range s.subs {
		sub.stopTimers()
		sub.closeReaders()
		sub.mu.Lock()
		sub.state = StateStopped
		sub.mu.Unlock()
		if sub.record != nil {
			if err := sub.record.Close(); err != nil {
				s.logger.Error("closing push state", "push", sub.cfg.Name, "error", err)
			}
		}
	}
}

// Status reports every subscription, in config order.
func (s *Service) Status() []Status {
	out := make([]Status, len(s.subs))
	for i, sub := range s.subs {
		out[i] = sub.status()
	}
	return out
}

type pushMetrics struct {
	latency *prometheus.HistogramVec
}

// newPushMetrics registers the request latency histogram and a collector
// that reads the subscriptions' counters when scraped.
func newPushMetrics(reg prometheus.Registerer, s *Service) *pushMetrics {
	m := &pushMetrics{latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "mqgate_push_request_seconds", Help: "Time of one push attempt, from sending the request to reading the reply.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
	}, []string{"subscription"})}
	if reg != nil {
		m.latency = metrics.Register(reg, m.latency)
		metrics.Register(reg, prometheus.Collector(&statusCollector{s}))
	}
	return m
}

var (
	descDelivered    = prometheus.NewDesc("mqgate_push_delivered_total", "Messages delivered (2xx or SUCCESS).", []string{"subscription"}, nil)
	descRetried      = prometheus.NewDesc("mqgate_push_retries_total", "Attempts scheduled again after a failure.", []string{"subscription"}, nil)
	descDeadLettered = prometheus.NewDesc("mqgate_push_dead_lettered_total", "Messages sent to the dead-letter topic.", []string{"subscription"}, nil)
	descFiltered     = prometheus.NewDesc("mqgate_push_filtered_total", "Messages the filter rejected (acked, not sent).", []string{"subscription"}, nil)
	descDedup        = prometheus.NewDesc("mqgate_push_deduplicated_total", "Messages not sent again because the delivered record had them.", []string{"subscription"}, nil)
	descFailures     = prometheus.NewDesc("mqgate_push_failures_total", "Attempts that failed.", []string{"subscription"}, nil)
	descSlowDowns    = prometheus.NewDesc("mqgate_push_slow_downs_total", "Replies asking to send slower (envelope ddmq, errno 1000000).", []string{"subscription"}, nil)
	descInFlight     = prometheus.NewDesc("mqgate_push_in_flight", "Requests being sent.", []string{"subscription"}, nil)
	descQueued       = prometheus.NewDesc("mqgate_push_queued", "Messages held: in flight, waiting for a retry or for their turn.", []string{"subscription"}, nil)
	descUp           = prometheus.NewDesc("mqgate_push_running", "1 while the subscription is consuming every topic.", []string{"subscription"}, nil)
)

type statusCollector struct{ s *Service }

func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descDelivered, descRetried, descDeadLettered, descFiltered, descDedup, descFailures, descSlowDowns, descInFlight, descQueued, descUp} {
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
		counter(descDelivered, st.Delivered)
		counter(descRetried, st.Retried)
		counter(descDeadLettered, st.DeadLettered)
		counter(descFiltered, st.Filtered)
		counter(descDedup, st.Deduplicated)
		counter(descFailures, st.Failures)
		counter(descSlowDowns, st.SlowDowns)
		gauge(descInFlight, st.InFlight)
		gauge(descQueued, st.Queued)
		up := 0
		if st.State == StateRunning {
			up = 1
		}
		gauge(descUp, up)
	}
}
