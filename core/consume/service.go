package consume

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqgate/mqgate/core/metrics"
	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/core/topicname"
	"github.com/mqgate/mqgate/sdk"
)

// Headers a dead-lettered message carries besides its own.
const (
	HeaderOriginTopic  = "mqgate-dlq-origin-topic"
	HeaderOriginQid    = "mqgate-dlq-origin-qid"
	HeaderOriginOffset = "mqgate-dlq-origin-offset"
	HeaderAttempts     = "mqgate-dlq-attempts"
	HeaderLastError    = "mqgate-dlq-last-error"
)

// Settings tune a group's sessions.
type Settings struct {
	// SessionIdle closes a session (leaving the broker group) after this
	// long without a Pull or Ack.
	SessionIdle time.Duration
	// MaxInFlight bounds the messages of one qid handed out and not acked.
	MaxInFlight int
	// AckTimeout is how long a handed-out message may go unacked before it
	// is redelivered.
	AckTimeout time.Duration
	// MaxRetries is how often a failed or timed-out message is redelivered
	// before it goes to the dead-letter topic.
	MaxRetries int
	// RetryBackoff is the wait before the first redelivery; it doubles up
	// to RetryBackoffMax.
	RetryBackoff, RetryBackoffMax time.Duration
	// DeadLetterTopic names the dead-letter topic; "{group}" is replaced
	// by the group.
	DeadLetterTopic string
	// Buffer bounds the records a session holds that are not handed out.
	Buffer int
	// CommitInterval is how often acked offsets are committed; 0 commits
	// as soon as they are acked (within a few tens of milliseconds).
	CommitInterval time.Duration
}

// DeadLetterTopicOf is group's dead-letter topic under s.
func (s Settings) DeadLetterTopicOf(group string) string {
	return strings.ReplaceAll(s.DeadLetterTopic, "{group}", group)
}

// DefaultSettings are the defaults of consume: in plugins.yaml.
func DefaultSettings() Settings {
	return Settings{
		SessionIdle: 5 * time.Minute, MaxInFlight: 1024, AckTimeout: 30 * time.Second, MaxRetries: 3,
		RetryBackoff: time.Second, RetryBackoffMax: time.Minute, DeadLetterTopic: "{group}-dlq", Buffer: 1024,
	}
}

// Options configure a Service.
type Options struct {
	// Backends by cluster, and Route naming the cluster of a topic.
	Backends map[string]sdk.Backend
	Route    func(topic string) (string, error)
	// DefaultCluster serves Fetch and Commit calls that name none.
	DefaultCluster string
	// Producer writes dead letters.
	Producer *produce.Producer
	// Defaults apply to every group; Groups override them per group.
	Defaults Settings
	Groups   map[string]Settings
	// Start is where a new group starts on a qid it never committed.
	Start sdk.StartPosition
	// Reserved are the names clients may not use (topicname.Reserved);
	// nil is the default rule. Readers (OpenReader) are the gateway's
	// own and are not held to it.
	Reserved *topicname.Reserved
	// MaxBatch caps the messages of one Pull, Fetch or batch (default 1000).
	MaxBatch int
	// MaxSessions bounds the sessions open at once (0: no bound). A
	// client's pull or batch fetch that would open one more is refused
	// with code 15; readers (push subscriptions, sinks: the gateway's
	// own, as many as its config names) open theirs regardless, and count.
	MaxSessions int
	// Quota counts the sessions a client's call opens against the
	// principal of its context (*quota.Ledger), which may refuse them;
	// nil: no principal is limited. Readers' sessions are not counted.
	Quota      SessionQuota
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Subscriptions names the topics of groups that pull, fetch or read
	// stats without a topic; nil: no group has any.
	Subscriptions SubscriptionSource
	// Now is the clock of session time: ack deadlines, retry backoffs,
	// idleness and the commit interval. Nil is time.Now. How long a pull
	// waits is real time whatever the clock. Tests hold it still and move
	// it past a timeout, so that what times out does not depend on how
	// fast the machine is. Timers cannot follow such a clock, so with one
	// an unused session checks for idleness every maintainInterval
	// instead of sleeping until it would be idle.
	Now func() time.Time
}

// SessionQuota bounds the sessions each principal holds open.
type SessionQuota interface {
	// OpenSession counts one more session, of group on topic, against
	// the principal of ctx, or refuses it with the error clients see.
	// The caller calls release once the session closes.
	OpenSession(ctx context.Context, group, topic string) (release func(), err error)
}

type sessionKey struct{ cluster, group, topic string }

// Service is the gateway's consumption: sessions, cursors and the
// low-level fetch and commit. Its lock is taken before a session's, and
// before Options.Quota's.
type Service struct {
	opts Options
	// realClock is whether opts.Now is time.Now, which timers follow.
	realClock bool
	logger    *slog.Logger
	metrics   *consumeMetrics

	mu       sync.Mutex
	sessions map[sessionKey]*session
	readers  map[sessionKey]*Reader
	closed   bool

	// stopWaiting is closed by StopWaiting: clients' pulls answer with
	// what is there instead of waiting.
	stopWaiting chan struct{}
	stopOnce    sync.Once
	// served counts the batches pulls without a topic handed out.
	served atomic.Uint64
}

var _ Consumer = (*Service)(nil)

// New returns a service.
func New(opts Options) *Service {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 1000
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	realClock := opts.Now == nil
	if realClock {
		opts.Now = time.Now
	}
	return &Service{opts: opts, realClock: realClock, logger: opts.Logger, metrics: newConsumeMetrics(opts.Registerer),
		sessions: map[sessionKey]*session{}, readers: map[sessionKey]*Reader{},
		stopWaiting: make(chan struct{})}
}

// StopWaiting makes every client pull (Pull, FetchNew) that waits for
// messages answer at once with what it has, often nothing, and later ones
// not wait at all. A gateway shutting down calls it first, so that long
// polls end promptly instead of holding the shutdown for their linger.
// Readers are not affected: they stop when closed.
func (s *Service) StopWaiting() {
	s.stopOnce.Do(func() { close(s.stopWaiting) })
}

// MaxBatch is the most messages one call returns.
func (s *Service) MaxBatch() int { return s.opts.MaxBatch }

func (s *Service) settings(group string) Settings {
	if g, ok := s.opts.Groups[group]; ok {
		return g
	}
	return s.opts.Defaults
}

// checkNames validates a group and a topic name.
func checkNames(group, topic string) error {
	if err := topicname.ValidateGroup(group); err != nil {
		return err
	}
	return topicname.Validate(topic)
}

// clientKeyOf is keyOf for a client's call: it also refuses reserved
// names, and a group reading its own dead-letter topic.
func (s *Service) clientKeyOf(group, topic string) (sessionKey, error) {
	key, err := s.keyOf(group, topic)
	if err != nil {
		return sessionKey{}, err
	}
	if err := s.opts.Reserved.Consume(group, topic, s.settings(group).DeadLetterTopicOf(group)); err != nil {
		return sessionKey{}, err
	}
	return key, nil
}

// keyOf checks group and topic and names their session: the cluster the
// topic is routed to, the group, the topic.
func (s *Service) keyOf(group, topic string) (sessionKey, error) {
	if err := checkNames(group, topic); err != nil {
		return sessionKey{}, err
	}
	cluster, err := s.opts.Route(topic)
	if err != nil {
		return sessionKey{}, err
	}
	return sessionKey{cluster, group, topic}, nil
}

// session returns the session of (group, topic), joining the group on
// first use.
func (s *Service) session(ctx context.Context, group, topic string) (*session, error) {
	key, err := s.clientKeyOf(group, topic)
	if err != nil {
		return nil, err
	}
	return s.sessionOf(ctx, key, true)
}

// sessionOf returns the session of key, joining the group on first use.
// A client's call (client) may not open one past Options.MaxSessions, nor
// past the quota of the principal of ctx, which the session counts
// against until it closes. A session is shared by every client of its
// group and topic: those that did not open it are not counted.
func (s *Service) sessionOf(ctx context.Context, key sessionKey, client bool) (*session, error) {
	return s.sessionOfTopics(ctx, key, []string{key.topic}, client)
}

// sessionOfTopics is sessionOf for a session consuming topics: [key.topic],
// or, for a group session (key.topic ""), the group's subscribed topics on
// key.cluster. A group session that consumes other topics (the group's
// subscriptions changed) is closed, and a new one opened in its place.
func (s *Service) sessionOfTopics(ctx context.Context, key sessionKey, topics []string, client bool) (*session, error) {
	var stale *session
	defer func() {
		if stale != nil {
			s.closeSession(stale, "the group's subscribed topics changed")
		}
	}()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, sdk.Errorf(sdk.CodeUnavailable, "the gateway is shutting down")
	}
	if ss := s.sessions[key]; ss != nil {
		failed := ss.hasFailed()
		if !failed && slices.Equal(ss.topics, topics) {
			return ss, nil
		}
		if !failed {
			stale = ss // a failed one is being closed by its end
		}
		delete(s.sessions, key)
		s.metrics.sessions.Dec()
		ss.release() // closeSession will not: the session has left the service
	}
	if max := s.opts.MaxSessions; client && max > 0 && len(s.sessions) >= max {
		s.metrics.refused.Inc()
		return nil, errTooManySessions(max, key)
	}
	b, ok := s.opts.Backends[key.cluster]
	if !ok {
		return nil, sdk.Errorf(sdk.CodeIllegal, "no cluster %q", key.cluster)
	}
	release := func() {}
	if client && s.opts.Quota != nil {
		r, err := s.opts.Quota.OpenSession(ctx, key.group, key.topic)
		if err != nil {
			return nil, err
		}
		release = r
	}
	set := s.settings(key.group)
	if r := s.readers[key]; r != nil && r.opts.CommitInterval > 0 {
		set.CommitInterval = r.opts.CommitInterval
	}
	// The stream lives as long as the session, not the request that
	// opened it.
	sctx, cancel := context.WithCancel(context.Background())
	c, err := b.Consume(sctx, sdk.Subscription{Group: key.group, Topics: topics, Start: s.opts.Start})
	if err != nil {
		cancel()
		release()
		return nil, err
	}
	ss := &session{svc: s, cluster: key.cluster, group: key.group, topic: key.topic, topics: topics, set: set, c: c, release: release,
		ctx: sctx, cancel: cancel, done: make(chan struct{}), qids: map[string]*qtrack{},
		changed: make(chan struct{}), lastUse: s.opts.Now(), used: make(chan struct{}, 1)}
	if g, ok := c.(reopenGate); ok {
		g.ReopenIf(ss.worthReopening)
	}
	s.sessions[key] = ss
	s.metrics.sessions.Inc()
	go ss.run()
	return ss, nil
}

// errTooManySessions is the refusal of a session past the limit: code 15,
// as the gateway refuses load it cannot take; the backend is fine (17 would
// say otherwise, and make load balancers take the gateway out), the
// sessions already open go on, and a pull later (once sessions idle out)
// or through another gateway may pass.
func errTooManySessions(max int, key sessionKey) error {
	return sdk.Errorf(sdk.CodeRateLimited,
		"this gateway already holds %d consume sessions, its limit (consume.max_sessions); "+
			"a pull of group %s on topic %s would open another. Pull again once sessions close "+
			"(a session closes consume.session_idle after its last pull or ack), or through another gateway",
		max, key.group, key.topic)
}

// reopenGate is a consumer that re-opens its stream by itself when it
// ends (the plugin host's, on the new process after a plugin restart),
// asking keep first; see session.worthReopening.
type reopenGate interface {
	ReopenIf(keep func() bool)
}

// existing returns the session of (group, topic) if this gateway has one.
func (s *Service) existing(group, topic string) (*session, error) {
	key, err := s.clientKeyOf(group, topic)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[key], nil
}

// groupSessionOf returns the group session that consumes topic for group,
// if this gateway has one.
func (s *Service) groupSessionOf(group, topic string) *session {
	cluster, err := s.opts.Route(topic)
	if err != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss := s.sessions[sessionKey{cluster, group, ""}]; ss != nil && slices.Contains(ss.topics, topic) {
		return ss
	}
	return nil
}

// closeSession ends ss: it commits what was acked and leaves the group.
func (s *Service) closeSession(ss *session, why string) {
	s.closeSessionLogged(ss, why, slog.LevelInfo)
}

// closeSessionLogged is closeSession logging at level.
func (s *Service) closeSessionLogged(ss *session, why string, level slog.Level) {
	s.mu.Lock()
	key := sessionKey{ss.cluster, ss.group, ss.topic}
	if s.sessions[key] == ss {
		delete(s.sessions, key)
		s.metrics.sessions.Dec()
		ss.release()
	}
	s.mu.Unlock()
	ss.mu.Lock()
	ss.closed = true
	for k := range ss.qids {
		ss.dropLocked(k)
	}
	ss.notifyLocked()
	ss.mu.Unlock()
	ss.cancel()
	ss.c.Close()
	s.logger.Log(context.Background(), level, "consume session closed", "group", ss.group, "topic", ss.topic, "why", why)
}

// Close ends every session, committing what was acked.
func (s *Service) Close() {
	s.mu.Lock()
	s.closed = true
	var all []*session
	for _, ss := range s.sessions {
		all = append(all, ss)
	}
	s.mu.Unlock()
	for _, ss := range all {
		ss.commit(context.Background())
		s.closeSession(ss, "shutdown")
		<-ss.done
	}
}

func (s *Service) capBatch(max int) (int, error) {
	if max < 1 {
		return 0, sdk.Errorf(sdk.CodeIllegal, "batch size must be at least 1, got %d", max)
	}
	return min(max, s.opts.MaxBatch), nil
}

// Pull hands out up to max messages of one qid: of topic, or, when topic
// is "", of any topic group is subscribed to.
func (s *Service) Pull(ctx context.Context, group, topic string, max int, wait time.Duration) (Batch, error) {
	max, err := s.capBatch(max)
	if err != nil {
		return Batch{}, err
	}
	if topic == "" {
		b, err := s.pullGroup(ctx, group, max, wait)
		if err == nil && len(b.Messages) > 0 {
			s.metrics.delivered.WithLabelValues(group, b.Topic).Add(float64(len(b.Messages)))
		}
		return b, err
	}
	ss, err := s.session(ctx, group, topic)
	if err != nil {
		return Batch{}, err
	}
	b, err := ss.pull(ctx, max, wait, false, s.stopWaiting)
	if errors.Is(err, errSessionClosed) {
		// It closed (idle) just as this pull came: open a new one.
		if ss, err = s.session(ctx, group, topic); err != nil {
			return Batch{}, err
		}
		b, err = ss.pull(ctx, max, wait, false, s.stopWaiting)
	}
	if err == nil {
		s.metrics.delivered.WithLabelValues(group, topic).Add(float64(len(b.Messages)))
	}
	return b, err
}

// Ack applies acks in order.
func (s *Service) Ack(ctx context.Context, acks []Ack) error {
	now := s.opts.Now()
	for _, a := range acks {
		if a.Qid == "" {
			return sdk.Errorf(sdk.CodeIllegal, "qid: required")
		}
		ss, err := s.existing(a.Group, a.Topic)
		if err != nil {
			return err
		}
		if ss == nil {
			ss = s.groupSessionOf(a.Group, a.Topic)
		}
		if ss == nil {
			return sdk.Errorf(sdk.CodeNotFound, "group %s has no session for topic %s on this gateway: nothing of qid %s was handed out here", a.Group, a.Topic, a.Qid)
		}
		if err := ss.ack(a, now); err != nil {
			return err
		}
	}
	return nil
}

// Stats reports consumption per topic.
func (s *Service) Stats(ctx context.Context, group, topic string) ([]Stats, error) {
	var topics []string
	if topic != "" {
		if err := checkNames(group, topic); err != nil {
			return nil, err
		}
		if err := s.opts.Reserved.Group(group); err != nil {
			return nil, err
		}
		if err := s.opts.Reserved.Topic(topic); err != nil {
			return nil, err
		}
		topics = []string{topic}
	} else {
		if err := topicname.ValidateGroup(group); err != nil {
			return nil, err
		}
		if err := s.opts.Reserved.Group(group); err != nil {
			return nil, err
		}
		// Every subscribed topic, whether or not this gateway has its
		// session (DDMQ's doGetConsumeStats lists the group's configured
		// topics), and every topic it has a session for.
		if s.opts.Subscriptions != nil {
			subs, err := s.opts.Subscriptions.Topics(ctx, group)
			if err != nil {
				return nil, err
			}
			for _, sub := range subs {
				topics = append(topics, sub.Topic)
			}
		}
		s.mu.Lock()
		for k, ss := range s.sessions {
			if k.group == group {
				topics = append(topics, ss.topics...)
			}
		}
		s.mu.Unlock()
		slices.Sort(topics)
		topics = slices.Compact(topics)
	}
	var out []Stats
	for _, t := range topics {
		cluster, err := s.opts.Route(t)
		if err != nil {
			return nil, err
		}
		offs, err := s.opts.Backends[cluster].ListOffsets(ctx, []string{t}, group)
		if err != nil {
			return nil, err
		}
		st := Stats{Group: group, Topic: t, ConsumeOffsets: map[string]int64{}, ProduceOffsets: map[string]int64{}}
		lags := make(map[string]int64, len(offs))
		for _, o := range offs {
			c := o.Committed
			if c < 0 {
				c = o.Start
			}
			st.ConsumeOffsets[o.Qid] = c
			st.ProduceOffsets[o.Qid] = o.End
			lag := o.End - c
			if lag < 0 {
				// Not "no lag": the group's position is past the end.
				if st.BeyondEnd == nil {
					st.BeyondEnd = map[string]int64{}
				}
				st.BeyondEnd[o.Qid] = -lag
			} else {
				st.Lag += lag
			}
			lags[o.Qid] = lag
		}
		s.metrics.lagSeries.set(group, t, lags)
		out = append(out, st)
	}
	return out, nil
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

type consumeMetrics struct {
	sessions                                               prometheus.Gauge
	refused, notReopened                                   prometheus.Counter
	owned, inFlight                                        *prometheus.GaugeVec
	delivered, acked, redeliveries, timeouts, deadLettered *prometheus.CounterVec
	lag                                                    *prometheus.GaugeVec
	lagSeries                                              *lagGauges // sets lag, within bounds
}

func newConsumeMetrics(reg prometheus.Registerer) *consumeMetrics {
	gt := []string{"group", "topic"}
	m := &consumeMetrics{
		sessions:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "mqgate_consume_sessions", Help: "Group sessions open on this gateway."}),
		refused:      prometheus.NewCounter(prometheus.CounterOpts{Name: "mqgate_consume_sessions_refused_total", Help: "Pulls refused because they would have opened a session past consume.max_sessions."}),
		notReopened:  prometheus.NewCounter(prometheus.CounterOpts{Name: "mqgate_consume_sessions_not_reopened_total", Help: "Sessions closed, instead of re-opened, when their stream ended (a plugin restart) while they were idle."}),
		owned:        prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "mqgate_consume_qids_owned", Help: "Qids this gateway's sessions own."}, gt),
		inFlight:     prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "mqgate_consume_in_flight", Help: "Messages handed out and not yet acked."}, gt),
		delivered:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mqgate_consume_delivered_total", Help: "Messages handed out by Pull (first deliveries and redeliveries)."}, gt),
		acked:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mqgate_consume_acked_total", Help: "Messages acked."}, gt),
		redeliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mqgate_consume_redeliveries_total", Help: "Messages handed out again after a failure or an ack timeout."}, gt),
		timeouts:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mqgate_consume_ack_timeouts_total", Help: "Handed-out messages not acked within the ack timeout."}, gt),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mqgate_consume_dead_lettered_total", Help: "Messages moved to the dead-letter topic after their retries."}, gt),
		lag:          prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "mqgate_consume_lag_messages", Help: "End offset minus committed offset, per qid, as last asked for by stats; negative when the committed offset is past the end."}, []string{"group", "topic", "qid"}),
	}
	if reg != nil {
		m.sessions = metrics.Register(reg, m.sessions)
		m.refused = metrics.Register(reg, m.refused)
		m.notReopened = metrics.Register(reg, m.notReopened)
		m.owned = metrics.Register(reg, m.owned)
		m.inFlight = metrics.Register(reg, m.inFlight)
		m.delivered = metrics.Register(reg, m.delivered)
		m.acked = metrics.Register(reg, m.acked)
		m.redeliveries = metrics.Register(reg, m.redeliveries)
		m.timeouts = metrics.Register(reg, m.timeouts)
		m.deadLettered = metrics.Register(reg, m.deadLettered)
		m.lag = metrics.Register(reg, m.lag)
	}
	m.lagSeries = newLagGauges(m.lag)
	return m
}
