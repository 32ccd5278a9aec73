package delay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqgate/mqgate/core/metrics"
	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/core/topicname"
	"github.com/mqgate/mqgate/sdk"
)

// Clock is the time the service runs on; tests scale it.
type Clock interface {
	Now() time.Time
	// Timer fires after d and returns a function that stops it.
	Timer(d time.Duration) (<-chan time.Time, func())
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) Timer(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTimer(d)
	return t.C, func() { t.Stop() }
}

// Options configure a Service.
type Options struct {
	// Cluster names the cluster holding the tier and cancel topics, and
	// Backend is its backend.
	Cluster string
	Backend sdk.Backend
	// Producer writes to the tiers and delivers to target topics.
	Producer *produce.Producer
	// Route names the cluster of a target topic.
	Route func(topic string) (string, error)
	Plan  Plan
	// Partitions of each tier topic and of the cancel topic.
	Partitions int32
	// Max is the longest delay accepted.
	Max time.Duration
	// TopicPrefix starts the names of the tier topics, their groups and the
	// cancel topic (prefix + "cancel"). Default "mqgate_delay_".
	TopicPrefix string
	// Reserved are the names clients may not use (topicname.Reserved):
	// Add and Cancel refuse them as target topics. Nil is the rule of
	// TopicPrefix alone. The tier workers are not held to it.
	Reserved *topicname.Reserved
	// Window bounds the records each tier worker holds. Default 2000.
	Window     int
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Clock      Clock
}

// Service adds, cancels and fires delayed messages.
type Service struct {
	opts    Options
	plan    Plan
	logger  *slog.Logger
	cancels *cancels
	metrics *serviceMetrics
	ready   atomic.Bool
	// consumeTrouble and moveTrouble log failures the tier workers share.
	consumeTrouble, moveTrouble *workerTrouble

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var _ Delayer = (*Service)(nil)

// New returns a service; Start sets up its topics and workers.
func New(opts Options) *Service {
	if opts.TopicPrefix == "" {
		opts.TopicPrefix = "mqgate_delay_"
	}
	if opts.Window <= 0 {
		opts.Window = 2000
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Clock == nil {
		opts.Clock = realClock{}
	}
	if opts.Reserved == nil {
		opts.Reserved = &topicname.Reserved{DelayPrefix: opts.TopicPrefix}
	}
	s := &Service{opts: opts, plan: opts.Plan, logger: opts.Logger,
		consumeTrouble: &workerTrouble{logger: opts.Logger, recoveredMsg: "delay tier workers consuming again"},
		moveTrouble:    &workerTrouble{logger: opts.Logger, recoveredMsg: "delay tier workers moving records again"},
	}
	s.cancels = newCancels(opts.Backend, s.cancelTopic(), s.cancelHold()+cancelSkew, opts.Clock.Now, opts.Logger)
	s.metrics = newServiceMetrics(opts.Registerer, opts.Plan, opts.TopicPrefix, s.samplePending, s.cancels.len)
	return s
}

func (s *Service) cancelTopic() string { return s.opts.TopicPrefix + "cancel" }

// cancelHold is how long a cancel applies from when it is written:
// delay.max plus the longest tier, longer than any message added before it
// can wait, and long enough for a loop to meet it at its next hop.
func (s *Service) cancelHold() time.Duration {
	return s.opts.Max + s.plan.tiers[len(s.plan.tiers)-1]
}

// cancelSkew is what a cancel read from the topic may apply beyond
// cancelHold from the time it is read, for the clocks of the gateway that
// wrote it and the one that reads it to disagree.
const cancelSkew = 10 * time.Minute

// Start creates the topics (retrying while the cluster is down) and runs
// the cancel reader and a worker per tier until Close.
func (s *Service) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Go(func() {
		// The first failure is a warning, and so is a new one or the same
		// one a minute on; retries between say it at debug level.
		var (
			attempts           int
			lastMsg            string
			loggedAt, failedAt time.Time
		)
		for ctx.Err() == nil {
			err := s.ensureTopics(ctx)
			if err == nil {
				if attempts > 0 {
					s.logger.Info("created delay topics", "cluster", s.opts.Cluster, "attempts", attempts+1, "after", time.Since(failedAt).Round(time.Millisecond))
				}
				break
			}
			if ctx.Err() != nil {
				return // stopping: not a failure
			}
			if attempts == 0 {
				failedAt = time.Now()
			}
			attempts++
			if msg := err.Error(); msg != lastMsg || time.Since(loggedAt) >= troubleReport {
				s.logger.Warn("creating delay topics; retrying every second", "cluster", s.opts.Cluster, "error", err, "attempts", attempts)
				lastMsg, loggedAt = msg, time.Now()
			} else {
				s.logger.Debug("creating delay topics; retrying", "cluster", s.opts.Cluster, "error", err, "attempts", attempts)
			}
			sleep(ctx, time.Second)
		}
		if ctx.Err() != nil {
			return
		}
		s.ready.Store(true)
		s.wg.Go(func() { s.cancels.follow(ctx) })
		for _, t := range s.plan.tiers {
			w := newWorker(s, t)
			s.wg.Go(func() { w.run(ctx) })
		}
	})
}

// Close stops the workers; what they were moving is moved again by the next
// owner of their partitions.
func (s *Service) Close() {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
}

func (s *Service) ensureTopics(ctx context.Context) error {
	var specs []sdk.TopicSpec
	for _, t := range s.plan.tiers {
		specs = append(specs, sdk.TopicSpec{Name: TierName(s.opts.TopicPrefix, t), Partitions: s.opts.Partitions})
	}
	if err := s.opts.Backend.EnsureTopics(ctx, specs); err != nil {
		return err
	}
	cancelSpec := sdk.TopicSpec{Name: s.cancelTopic(), Partitions: s.opts.Partitions, Configs: map[string]string{"cleanup.policy": "compact"}}
	err := s.opts.Backend.EnsureTopics(ctx, []sdk.TopicSpec{cancelSpec})
	if sdk.CodeOf(err) == sdk.CodeIllegal {
		// A broker without compaction (RocketMQ): the topic keeps cancels
		// for its retention instead.
		cancelSpec.Configs = nil
		err = s.opts.Backend.EnsureTopics(ctx, []sdk.TopicSpec{cancelSpec})
	}
	return err
}

// Max is the longest delay accepted.
func (s *Service) Max() time.Duration { return s.opts.Max }

// Ready is nil once the delay topics exist.
func (s *Service) Ready() error {
	if !s.ready.Load() {
		return s.notReady()
	}
	return nil
}

func (s *Service) notReady() error {
	return sdk.Errorf(sdk.CodeUnavailable, "delay messages are not ready: the delay topics on cluster %s are being created", s.opts.Cluster)
}

// newID is 16 random bytes in hex.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// tierFor is the tier topic e goes to now: the largest tier not longer
// than its time left, or the shortest with its hop at the due time when
// less than a second is left.
func (s *Service) tierFor(e *envelope, now time.Time) string {
	left := e.due.Sub(now)
	t, ok := s.plan.Next(left)
	if !ok {
		t = s.plan.tiers[0]
		e.hop = e.due
	} else {
		e.hop = now.Add(t)
	}
	return TierName(s.opts.TopicPrefix, t)
}

// Add schedules msgs. Messages already due are delivered at once (unless
// cancelled); the others go to their first tier.
func (s *Service) Add(ctx context.Context, msgs []Message) ([]Result, error) {
	if err := s.Ready(); err != nil {
		return nil, err
	}
	now := s.opts.Clock.Now()
	results := make([]Result, len(msgs))
	var tierRecs []sdk.Record
	var tierIdx []int
	dueNow := map[string][]int{} // target topic -> indexes of messages already due
	for i := range msgs {
		m := &msgs[i]
		if m.ID == "" {
			m.ID = newID()
		}
		results[i] = Result{ID: m.ID, DueAt: m.DueAt}
		if err := s.check(m, now); err != nil {
			results[i].Err = err
			continue
		}
		e := envelopeOf(m)
		if !m.DueAt.After(now) {
			dueNow[m.Topic] = append(dueNow[m.Topic], i)
			continue
		}
		tierRecs = append(tierRecs, e.record(s.tierFor(e, now)))
		tierIdx = append(tierIdx, i)
	}
	if len(tierRecs) > 0 {
		res, err := s.opts.Producer.SendRecords(ctx, s.opts.Cluster, tierRecs)
		for j, i := range tierIdx {
			results[i].Err = err
			if err == nil {
				results[i].Err = res[j].Err
			}
			if results[i].Err == nil {
				s.metrics.added.Inc()
			}
		}
	}
	for topic, idx := range dueNow {
		s.addDue(ctx, topic, msgs, idx, results)
	}
	return results, nil
}

// envelopeOf is the envelope of a message Add accepted, before its first
// hop: a Chronos message keyed and placed as Chronos delivers it.
func envelopeOf(m *Message) *envelope {
	msg := m.Msg
	if m.Chronos {
		msg = chronosMessage(msg, m.ID)
	}
	return &envelope{id: m.ID, topic: m.Topic, msg: msg, due: m.DueAt, loop: m.Loop, chronos: m.Chronos}
}

// addDue delivers messages whose due time has passed, unless a cancel
// already names them.
func (s *Service) addDue(ctx context.Context, topic string, msgs []Message, idx []int, results []Result) {
	fail := func(err error) {
		for _, i := range idx {
			results[i].Err = err
		}
	}
	if err := s.cancels.sync(ctx); err != nil {
		fail(err)
		return
	}
	cluster, err := s.opts.Route(topic)
	if err != nil {
		fail(err)
		return
	}
	now := s.opts.Clock.Now()
	var send []produce.Message
	var sendIdx []int
	var loops []sdk.Record
	for _, i := range idx {
		m := &msgs[i]
		if s.cancels.cancelled(cancelKey(topic, m.ID), now) {
			continue // a cancel came first: nothing is delivered
		}
		e := envelopeOf(m)
		send = append(send, e.delivered())
		sendIdx = append(sendIdx, i)
		if next := nextFiring(e); next != nil {
			loops = append(loops, next.record(s.tierFor(next, now)))
		}
	}
	if len(loops) > 0 {
		// The loop's rest is enqueued first: if that fails, nothing fired.
		res, err := s.opts.Producer.SendRecords(ctx, s.opts.Cluster, loops)
		if err == nil {
			for _, r := range res {
				if r.Err != nil {
					err = r.Err
					break
				}
			}
		}
		if err != nil {
			fail(err)
			return
		}
	}
	if len(send) == 0 {
		return
	}
	res, err := s.opts.Producer.SendRecords(ctx, cluster, produce.Records(topic, send))
	for j, i := range sendIdx {
		results[i].Err = err
		if err == nil {
			results[i].Err = res[j].Err
		}
		if results[i].Err == nil {
			s.metrics.delivered.Inc()
			s.metrics.lateness.Observe(max(now.Sub(msgs[i].DueAt), 0).Seconds())
		}
	}
}

// CheckTopic is nil when topic may take delay messages and cancels: a
// valid topic name, not reserved (code 11 or 13 otherwise).
func (s *Service) CheckTopic(topic string) error {
	if err := topicname.Validate(topic); err != nil {
		return err
	}
	return s.opts.Reserved.Topic(topic)
}

// check validates a message for Add.
func (s *Service) check(m *Message, now time.Time) error {
	if err := s.CheckTopic(m.Topic); err != nil {
		return err
	}
	if err := m.Validate(now, s.opts.Max); err != nil {
		return err
	}
	if err := topicname.CheckHeaders(m.Msg.Headers); err != nil {
		return err
	}
	if _, err := s.opts.Route(m.Topic); err != nil {
		return err
	}
	return nil
}

// admissible reports why a tier record's message must not be delivered:
// the rules of check that a record written into a tier topic by other
// means than Add (before the gateway refused such writes, or by a client
// of the broker itself) could break. Its target topic must not be reserved,
// its id must fit, and its own headers must not carry the gateway's.
func (s *Service) admissible(e *envelope) error {
	if err := s.opts.Reserved.Topic(e.topic); err != nil {
		return fmt.Errorf("its target: %w", err)
	}
	if err := ValidateID(e.id); err != nil {
		return err
	}
	return topicname.CheckHeaders(e.msg.Headers)
}

// Cancel writes a cancel for id on topic and waits for the broker. It
// applies for cancelHold from now. An id that Add would refuse (empty,
// longer than MaxIDBytes) is code 11, and a reserved topic code 13.
func (s *Service) Cancel(ctx context.Context, topic, id string) error {
	if id == "" {
		return sdk.Errorf(sdk.CodeIllegal, "id: required to cancel")
	}
	if err := ValidateID(id); err != nil {
		return err
	}
	if err := s.CheckTopic(topic); err != nil {
		return err
	}
	if err := s.Ready(); err != nil {
		return err
	}
	until := s.opts.Clock.Now().Add(s.cancelHold())
	key := cancelKey(topic, id)
	rec := sdk.Record{Topic: s.cancelTopic(), Partition: sdk.PartitionHash, Hash: hashString(key), Key: []byte(key), Value: []byte(strconv.FormatInt(until.UnixMilli(), 10))}
	res, err := s.opts.Producer.SendRecords(ctx, s.opts.Cluster, []sdk.Record{rec})
	if err == nil {
		err = res[0].Err
	}
	if err != nil {
		return err
	}
	s.cancels.add(key, until)
	s.metrics.cancels.Inc()
	return nil
}

// samplePending sets the pending gauges from the brokers' offsets; a tier
// whose offsets cannot be read keeps its last value.
func (s *Service) samplePending(ctx context.Context, pending *prometheus.GaugeVec) {
	if s.Ready() != nil {
		return // no tier topics yet
	}
	for _, tier := range s.plan.tiers {
		topic := TierName(s.opts.TopicPrefix, tier)
		offs, err := s.opts.Backend.ListOffsets(ctx, []string{topic}, topic)
		if err != nil {
			continue
		}
		var n int64
		for _, o := range offs {
			from := o.Committed
			if from < 0 {
				from = o.Start
			}
			n += max(o.End-from, 0)
		}
		pending.WithLabelValues(topic).Set(float64(n))
	}
}

// pendingMaxAge is how old a sample of the pending gauges may be when they
// are scraped; pendingSampleTimeout bounds taking one.
const (
	pendingMaxAge        = 5 * time.Second
	pendingSampleTimeout = 5 * time.Second
)

// pendingGauge is mqgate_delay_pending_messages. Counting what waits in a
// tier takes a ListOffsets call per tier, so the counts are taken when the
// metrics are scraped (at most every pendingMaxAge), not on a timer: an idle
// gateway nobody watches asks its broker nothing.
type pendingGauge struct {
	vec    *prometheus.GaugeVec
	sample func(context.Context, *prometheus.GaugeVec)

	mu      sync.Mutex // held while sampling, so concurrent scrapes share one sample
	sampled time.Time
}

func (p *pendingGauge) Describe(ch chan<- *prometheus.Desc) { p.vec.Describe(ch) }

func (p *pendingGauge) Collect(ch chan<- prometheus.Metric) {
	p.mu.Lock()
	if time.Since(p.sampled) >= pendingMaxAge {
		ctx, cancel := context.WithTimeout(context.Background(), pendingSampleTimeout)
		p.sample(ctx, p.vec)
		cancel()
		p.sampled = time.Now()
	}
	p.mu.Unlock()
	p.vec.Collect(ch)
}

type serviceMetrics struct {
	added, delivered, cancels, cancelledDropped prometheus.Counter
	hops                                        *prometheus.CounterVec
	dropped                                     *prometheus.CounterVec
	lateness                                    prometheus.Histogram
	pending                                     *pendingGauge
	cancelsHeld                                 prometheus.GaugeFunc
	owned                                       prometheus.Gauge
}

// newServiceMetrics returns the service's metrics; sample fills the
// pending gauges when they are scraped, and held counts the cancels held.
func newServiceMetrics(reg prometheus.Registerer, plan Plan, prefix string, sample func(context.Context, *prometheus.GaugeVec), held func() int) *serviceMetrics {
	m := &serviceMetrics{
		added:            prometheus.NewCounter(prometheus.CounterOpts{Name: "mqgate_delay_added_total", Help: "Delayed messages accepted into the tiers."}),
		delivered:        prometheus.NewCounter(prometheus.CounterOpts{Name: "mqgate_delay_delivered_total", Help: "Delayed messages delivered to their topics (each loop firing counts)."}),
		cancels:          prometheus.NewCounter(prometheus.CounterOpts{Name: "mqgate_delay_cancels_total", Help: "Cancels written."}),
		cancelledDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "mqgate_delay_cancelled_total", Help: "Delayed messages dropped because a cancel named them."}),
		hops:             prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mqgate_delay_hops_total", Help: "Moves of a message from a tier to the next tier, by the tier it left."}, []string{"tier"}),
		dropped:          prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mqgate_delay_dropped_total", Help: "Delayed messages dropped: refused by their topic, malformed tier records, or tier records aimed at reserved topics or carrying reserved headers."}, []string{"reason"}),
		lateness: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "mqgate_delay_lateness_seconds", Help: "How long after its due time a delayed message was delivered.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		pending: &pendingGauge{
			vec:    prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "mqgate_delay_pending_messages", Help: "Records in each tier topic not yet moved on (all gateways), counted when scraped, at most every 5 s."}, []string{"tier"}),
			sample: sample,
		},
		cancelsHeld: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mqgate_delay_cancels_held", Help: "Cancels this gateway holds in memory."},
			func() float64 { return float64(held()) }),
		owned: prometheus.NewGauge(prometheus.GaugeOpts{Name: "mqgate_delay_partitions_owned", Help: "Tier topic partitions this gateway's workers own."}),
	}
	for _, t := range plan.tiers {
		m.pending.vec.WithLabelValues(TierName(prefix, t))
	}
	if reg != nil {
		m.added = metrics.Register(reg, m.added)
		m.delivered = metrics.Register(reg, m.delivered)
		m.cancels = metrics.Register(reg, m.cancels)
		m.cancelledDropped = metrics.Register(reg, m.cancelledDropped)
		m.hops = metrics.Register(reg, m.hops)
		m.dropped = metrics.Register(reg, m.dropped)
		m.lateness = metrics.Register(reg, m.lateness)
		m.pending = metrics.Register(reg, m.pending)
		m.cancelsHeld = metrics.Register(reg, m.cancelsHeld)
		m.owned = metrics.Register(reg, m.owned)
	}
	return m
}
