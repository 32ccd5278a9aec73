package produce

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqgate/mqgate/sdk"
)

// Options tune a Producer. Zero values take the defaults of
// docs/configuration.md (producer: section).
type Options struct {
	Linger           time.Duration
	MaxBatchMessages int
	MaxBatchBytes    int
	RetryBackoff     time.Duration
	RetryBackoffMax  time.Duration
	// Limits are the rate limits of topics that have one.
	Limits     map[string]RateLimit
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

func (o *Options) setDefaults() {
	if o.Linger < 0 {
		o.Linger = 0
	}
	if o.MaxBatchMessages <= 0 {
		o.MaxBatchMessages = 1000
	}
	if o.MaxBatchBytes <= 0 {
		o.MaxBatchBytes = 8 << 20
	}
	if o.RetryBackoff <= 0 {
		o.RetryBackoff = 20 * time.Millisecond
	}
	if o.RetryBackoffMax <= 0 {
		o.RetryBackoffMax = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Producer runs the produce pipeline for every cluster: rate limit,
// placement, auto-batching and retries for sync sends; rate limit,
// placement and the durable spool for async ones.
type Producer struct {
	opts     Options
	batchers map[string]*batcher
	limits   limits
	spool    Spooler // nil until AttachSpool
	metrics  *producerMetrics
}

// NewProducer returns a producer over backends (cluster name -> backend).
func NewProducer(backends map[string]sdk.Backend, opts Options) *Producer {
	opts.setDefaults()
	p := &Producer{opts: opts, batchers: map[string]*batcher{}, limits: newLimits(opts.Limits), metrics: newProducerMetrics(opts.Registerer)}
	for name, b := range backends {
		batchRecords := p.metrics.batchRecords.WithLabelValues(name)
		p.batchers[name] = newBatcher(b, opts.Linger, opts.MaxBatchMessages, opts.MaxBatchBytes, func(n int) { batchRecords.Observe(float64(n)) })
	}
	return p
}

// Spooler keeps async records durably until they are forwarded.
type Spooler interface {
	// Append returns once records are durable, or fails with nothing
	// stored.
	Append(ctx context.Context, cluster string, records []sdk.Record) error
}

// AttachSpool makes async sends go to s. Call it before serving.
func (p *Producer) AttachSpool(s Spooler) { p.spool = s }

// Send produces msgs to topic on cluster and returns one result per message.
// The error is for the whole request: refused by the rate limiter (15), or
// the last error of the retries.
func (p *Producer) Send(ctx context.Context, cluster, topic string, msgs []Message) ([]sdk.ProduceResult, error) {
	results, _, err := p.SendReleasing(ctx, cluster, topic, msgs)
	return results, err
}

// SendReleasing is Send, also reporting whether nothing holds msgs' bytes
// any more (released), so that the caller may reuse the memory they are
// in. That is so when every plugin call that carried them returned
// without failing whole: a call that failed whole (its deadline passed,
// say) may have left them in a backend in the gateway's process
// (in_process), still on their way to the broker, whatever a retry got.
func (p *Producer) SendReleasing(ctx context.Context, cluster, topic string, msgs []Message) (results []sdk.ProduceResult, released bool, err error) {
	if err := p.limits.allow(topic, len(msgs)); err != nil {
		p.metrics.rateLimited.WithLabelValues(topic).Add(float64(len(msgs)))
		return nil, true, err
	}
	return p.sendRecords(ctx, cluster, Records(topic, msgs))
}

// SendAsync accepts msgs once they are durable in the spool; the spool's
// forwarder delivers them through SendRecords.
func (p *Producer) SendAsync(ctx context.Context, cluster, topic string, msgs []Message) error {
	if p.spool == nil {
		return sdk.Errorf(sdk.CodeIllegal, "mode=async needs the spool, which is not configured")
	}
	if _, ok := p.batchers[cluster]; !ok {
		return sdk.Errorf(sdk.CodeNotAllowed, "no cluster %q", cluster)
	}
	if err := p.limits.allow(topic, len(msgs)); err != nil {
		p.metrics.rateLimited.WithLabelValues(topic).Add(float64(len(msgs)))
		return err
	}
	return p.spool.Append(ctx, cluster, Records(topic, msgs))
}

// SendRecords produces placed records on cluster, batched with concurrent
// senders. Records that fail with a retriable code (17, or 12 while ctx
// still has time) are sent again with growing backoff until ctx ends,
// unless the 17 says the plugin's restarts keep failing; the
// others keep their result, and a record acknowledged once stays so. The
// error is only for a first attempt that failed whole with a code retrying
// cannot mend (nothing was produced); after that every record has its own
// result, a failed retry's error included; a retry that the end of ctx cuts
// short leaves the result of the attempt before it.
func (p *Producer) SendRecords(ctx context.Context, cluster string, records []sdk.Record) ([]sdk.ProduceResult, error) {
	results, _, err := p.sendRecords(ctx, cluster, records)
	return results, err
}

// sendRecords is SendRecords, also saying whether the records were
// released (see SendReleasing).
func (p *Producer) sendRecords(ctx context.Context, cluster string, records []sdk.Record) (results []sdk.ProduceResult, released bool, err error) {
	b, ok := p.batchers[cluster]
	if !ok {
		return nil, true, sdk.Errorf(sdk.CodeNotAllowed, "no cluster %q", cluster)
	}
	results = make([]sdk.ProduceResult, len(records))
	released = true
	todo := make([]int, len(records)) // indexes still to send
	for i := range todo {
		todo[i] = i
	}
	backoff := p.opts.RetryBackoff
	for attempt := 1; ; attempt++ {
		batch := records
		if len(todo) != len(records) {
			batch = make([]sdk.Record, len(todo))
			for j, i := range todo {
				batch[j] = records[i]
			}
		}
		res, sent, err := b.send(ctx, batch)
		released = released && sent
		if err != nil && attempt == 1 && !p.retriable(ctx, err, backoff) {
			return nil, released, err // the whole request failed at once: nothing of it was produced
		}
		if err != nil && attempt > 1 && ctx.Err() != nil {
			// The caller's deadline cut a retry short. Each record keeps
			// what its last whole attempt got (a broker that cannot be
			// reached, say), which tells the client more than a timeout.
			return results, released, nil
		}
		// From here results stand per record: what an earlier attempt got
		// acknowledged stays acknowledged even if a retry fails whole.
		var retry []int
		var lastErr error
		for j, i := range todo {
			r := sdk.ProduceResult{Partition: records[i].Partition, Offset: -1, Err: err}
			if err == nil {
				r = res[j]
			}
			results[i] = r
			if r.Err != nil && p.retriable(ctx, r.Err, backoff) {
				retry = append(retry, i)
				lastErr = r.Err
			}
		}
		if len(retry) == 0 {
			return results, released, nil
		}
		p.metrics.retries.WithLabelValues(cluster, strconv.Itoa(int(sdk.CodeOf(lastErr)))).Add(float64(len(retry)))
		p.opts.Logger.Debug("retrying produce", "cluster", cluster, "records", len(retry), "attempt", attempt, "error", lastErr, "backoff", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return results, released, nil // unreachable in practice: retriable checked there was time
		}
		backoff = min(2*backoff, p.opts.RetryBackoffMax)
		todo = retry
	}
}

// retriable reports whether err may succeed if sent again, and there is
// time within ctx to wait backoff and still make an attempt (given at least
// the first backoff's length). A plugin whose restarts keep failing will
// not be back within one request: its 17 is answered at once, naming why,
// rather than retried into a timeout.
func (p *Producer) retriable(ctx context.Context, err error, backoff time.Duration) bool {
	switch sdk.CodeOf(err) {
	case sdk.CodeUnavailable, sdk.CodeTimeout:
	default:
		return false
	}
	if errors.Is(err, sdk.ErrLasting) {
		return false
	}
	if ctx.Err() != nil {
		return false
	}
	if d, ok := ctx.Deadline(); ok && time.Until(d) <= backoff+p.opts.RetryBackoff {
		return false
	}
	return true
}

type producerMetrics struct {
	batchRecords *prometheus.HistogramVec
	retries      *prometheus.CounterVec
	rateLimited  *prometheus.CounterVec
}

func newProducerMetrics(reg prometheus.Registerer) *producerMetrics {
	m := &producerMetrics{
		batchRecords: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mqgate_produce_batch_records",
			Help:    "Records per plugin Produce call, after auto-batching, by cluster.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8),
		}, []string{"cluster"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mqgate_produce_retries_total",
			Help: "Records sent again after a retriable failure, by cluster and the failure's code.",
		}, []string{"cluster", "code"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mqgate_produce_rate_limited_total",
			Help: "Messages refused by a topic's rate limit.",
		}, []string{"topic"}),
	}
	if reg != nil {
		reg.MustRegister(m.batchRecords, m.retries, m.rateLimited)
	}
	return m
}
