package push

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/mqgate/mqgate/core/config"
	"github.com/mqgate/mqgate/core/consume"
	"github.com/mqgate/mqgate/core/transform"
)

// A subscription delivers the messages of its topics to its targets. A
// puller per topic takes messages from the topic's group session (a
// consume.Reader) into lanes; workers, Concurrency of them, send one
// attempt at a time of the message at the head of a ready lane. A lane is
// the unit of order: one per key (order: key), per qid (partition) or per
// message (none), and only its head is ever in flight or waiting for a
// retry, so a failing message holds back its lane and nothing else.
type subscription struct {
	svc       *Service
	cfg       *config.Push
	logger    *slog.Logger
	filter    *transform.Filter
	transform *transform.Transform
	transport *http.Transport // requests go straight to it: see roundTrip
	targets   *targets
	limiter   *rate.Limiter // nil: unlimited
	record    *delivered    // nil in delivery 1
	readers   []*topicReader
	ddmq      *ddmqEnvelope // envelope ddmq only
	slow      *slowDown     // envelope ddmq only

	delivered, retried, deadLettered, filtered, deduplicated, failures atomic.Int64
	lastFailureLog                                                     atomic.Int64 // unix ns
	lastRecordLog                                                      atomic.Int64 // unix ns

	mu        sync.Mutex
	lanes     map[string]*lane
	ready     []*lane
	changed   chan struct{} // closed and replaced when a lane gets ready or room frees up
	queued    int           // messages held, in flight or not
	inFlight  int
	retrying  int
	closing   bool
	state     string
	lastErr   string
	lastErrAt time.Time
}

// topicReader is the subscription's reader of one topic.
type topicReader struct {
	topic  string
	r      *consume.Reader
	origin Origin
}

// item is one message held by the subscription.
type item struct {
	tr      *topicReader
	msg     consume.Message
	key     string // of its lane
	attempt int    // attempts made
	// requests counts the requests sent (an attempt may try a second
	// target); errRetries and errnoRetries the retries of envelope ddmq
	// after an error and after an errno DDMQ does not define (CProxy's
	// errorRetryCnt and retryIdx).
	requests, errRetries, errnoRetries int
	// revoked is set when its qid is given up while it is in flight: a
	// failure then releases it instead of retrying.
	revoked bool
	timer   *time.Timer // the pending retry, if any
}

type laneState int

const (
	laneIdle  laneState = iota // not in ready; its head is not in flight
	laneReady                  // in ready
	laneBusy                   // its head is in flight or waiting for a retry
)

type lane struct {
	key   string
	items []*item
	state laneState
}

// States a subscription reports.
const (
	StateStarting = "starting" // no topic pulled yet
	StateRunning  = "running"
	StateWaiting  = "waiting" // a topic cannot be consumed now; last_error says why
	StateStopped  = "stopped"
)

func newSubscription(svc *Service, cfg *config.Push) (*subscription, error) {
	s := &subscription{svc: svc, cfg: cfg, logger: svc.logger.With("push", cfg.Name),
		targets: newTargets(cfg.Targets, cfg.TargetCooldown),
		lanes:   map[string]*lane{}, changed: make(chan struct{}), state: StateStarting}
	var err error
	if cfg.Filter != "" {
		if s.filter, err = transform.CompileFilter(cfg.Filter); err != nil {
			return nil, fmt.Errorf("push %s: filter: %w", cfg.Name, err)
		}
	}
	if t := cfg.Transform; t != nil {
		if s.transform, err = transform.Compile(transform.Spec{Body: t.Body, Headers: t.Headers, Transit: t.Transit}); err != nil {
			return nil, fmt.Errorf("push %s: transform.%w", cfg.Name, err)
		}
	}
	if cfg.Envelope == "ddmq" {
		if s.ddmq, err = newDDMQEnvelope(cfg); err != nil {
			return nil, fmt.Errorf("push %s: %w", cfg.Name, err)
		}
		s.slow = newSlowDown(cfg.RateLimit)
	}
	if cfg.RateLimit > 0 {
		s.limiter = rate.NewLimiter(rate.Limit(cfg.RateLimit), max(1, min(cfg.Concurrency, cfg.RateLimit)))
	}
	dialer := &net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 30 * time.Second}
	s.transport = &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         dialer.DialContext,
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        cfg.Concurrency * len(cfg.Targets),
		MaxIdleConnsPerHost: cfg.Concurrency,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: cfg.ConnectTimeout,
	}
	if cfg.Delivery >= 2 {
		// state_dir is used as written, relative to the working directory
		// like producer.spool_dir.
		if s.record, err = openDelivered(cfg.StateDir, cfg.Name, cfg.Delivery == 3, s.logger); err != nil {
			return nil, fmt.Errorf("push %s: %w", cfg.Name, err)
		}
	}
	for _, topic := range cfg.Topics {
		tr := &topicReader{topic: topic, origin: Origin{Cluster: cfg.Cluster, Source: "KAFKA"}}
		if svc.opts.Origin != nil {
			tr.origin = svc.opts.Origin(cfg.Cluster, topic)
		}
		ropts := consume.ReaderOptions{Cluster: cfg.Cluster, OnRevoke: func(qids []string) { s.revoke(tr, qids) }}
		if cfg.Delivery == 1 {
			ropts.CommitInterval = cfg.CommitInterval
		}
		if tr.r, err = svc.opts.Consumer.OpenReader(cfg.Group, topic, ropts); err != nil {
			s.closeReaders()
			if s.record != nil {
				s.record.Close()
			}
			return nil, fmt.Errorf("push %s: topic %s: %w", cfg.Name, topic, err)
		}
		s.readers = append(s.readers, tr)
	}
	return s, nil
}

func (s *subscription) closeReaders() {
	for _, tr := range s.readers {
		tr.r.Close()
	}
}

func (s *subscription) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// run works the subscription until ctx ends; work ends the workers, which
// Close cancels only after giving in-flight attempts time to finish.
func (s *subscription) run(ctx, work context.Context) {
	var wg sync.WaitGroup
	for _, tr := range s.readers {
		wg.Go(func() { s.pull(ctx, tr) })
	}
	if s.record != nil {
		wg.Go(func() { s.prune(ctx) })
	}
	var workers sync.WaitGroup
	for range s.cfg.Concurrency {
		workers.Go(func() { s.work(work) })
	}
	wg.Wait()
	s.mu.Lock()
	s.closing = true
	s.notifyLocked()
	s.mu.Unlock()
	workers.Wait()
	if s.record != nil {
		s.record.Flush() // the acks of what was delivered
	}
}

// pull takes messages of one topic while there is room.
func (s *subscription) pull(ctx context.Context, tr *topicReader) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		s.mu.Lock()
		free := s.cfg.Buffer - s.queued
		ch := s.changed
		s.mu.Unlock()
		// Pull a good share of the buffer at a time: refilling it one
		// message per delivery costs a pull per message.
		if free <= 0 || free < s.cfg.Buffer/4 {
			select {
			case <-ch:
			case <-ctx.Done():
			}
			continue
		}
		b, err := tr.r.Pull(ctx, free, time.Second)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.setState(StateWaiting, fmt.Sprintf("consuming %s: %v", tr.topic, err))
			sleep(ctx, backoff)
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		s.setState(StateRunning, "")
		if len(b.Messages) > 0 {
			s.admit(tr, b)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func (s *subscription) setState(state, lastErr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if state == StateRunning && s.state == StateWaiting {
		s.logger.Info("push subscription consuming again")
	}
	if state == StateWaiting && s.state != StateWaiting {
		s.logger.Warn("push subscription waiting", "error", lastErr)
	}
	s.state = state
	if lastErr != "" {
		s.lastErr, s.lastErrAt = lastErr, time.Now()
	}
}

// admit takes a pulled batch: what the record says was delivered and what
// the filter rejects are acked at once; the rest goes into lanes.
func (s *subscription) admit(tr *topicReader, b consume.Batch) {
	msgs := b.Messages
	var done []int64
	if s.record != nil {
		offs := make([]int64, len(msgs))
		for i, m := range msgs {
			offs[i] = m.Offset
		}
		seen, err := s.record.Has(tr.topic, b.Qid, offs)
		if err != nil {
			s.logger.Error("reading the delivered record; sending anyway", "error", err)
		}
		if len(seen) > 0 {
			msgs = slices.DeleteFunc(slices.Clone(msgs), func(m consume.Message) bool { return seen[m.Offset] })
			for off := range seen {
				done = append(done, off)
			}
			s.deduplicated.Add(int64(len(seen)))
		}
	}
	if s.ddmq != nil && !s.cfg.DDMQ.PressureTraffic {
		msgs = slices.DeleteFunc(slices.Clone(msgs), func(m consume.Message) bool {
			if pressureTraffic(&m) {
				done = append(done, m.Offset)
				s.filtered.Add(1)
				return true
			}
			return false
		})
	}
	if s.filter != nil {
		msgs = slices.DeleteFunc(slices.Clone(msgs), func(m consume.Message) bool {
			ok, err := s.filter.Match(input(&m))
			switch {
			case err != nil:
				s.deadLetter(tr, m.Qid, m.Offset, 0, "filter: "+err.Error())
				return true
			case !ok:
				done = append(done, m.Offset)
				s.filtered.Add(1)
				return true
			}
			return false
		})
	}
	if len(done) > 0 {
		if err := tr.r.Ack(b.Qid, done...); err != nil {
			s.logger.Debug("acking skipped messages", "topic", tr.topic, "qid", b.Qid, "error", err)
		}
	}
	// Lane keys before the lock: an order_key path parses the value.
	items := make([]*item, len(msgs))
	for i, m := range msgs {
		items[i] = &item{tr: tr, msg: m}
		items[i].key = s.laneKey(&items[i].msg)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, it := range items {
		l := s.lanes[it.key]
		if l == nil {
			l = &lane{key: it.key}
			s.lanes[it.key] = l
		}
		l.items = append(l.items, it)
		s.queued++
		if l.state == laneIdle {
			l.state = laneReady
			s.ready = append(s.ready, l)
		}
	}
	s.notifyLocked()
}

// laneKey names the lane a message waits in.
func (s *subscription) laneKey(m *consume.Message) string {
	if s.ddmq != nil {
		if key, ok := s.ddmq.laneKey(m); ok {
			return key
		}
	}
	switch {
	case s.cfg.Order == "partition":
		return m.Topic + "\x00" + m.Qid
	case s.cfg.Order == "key" && m.Key != nil:
		return m.Topic + "\x01" + string(m.Key)
	default: // none, or a message without a key: no order to keep
		return unorderedKey(m)
	}
}

// unorderedKey is a lane of m's own.
func unorderedKey(m *consume.Message) string {
	return m.Topic + "\x02" + m.Qid + "\x00" + strconv.FormatInt(m.Offset, 10)
}

// work sends attempts until the subscription closes.
func (s *subscription) work(ctx context.Context) {
	for {
		it := s.take(ctx)
		if it == nil {
			return
		}
		s.attempt(ctx, it)
	}
}

// take waits for a ready lane and returns its head, now in flight; nil
// once the subscription closes.
func (s *subscription) take(ctx context.Context) *item {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.ready) == 0 {
		if s.closing || ctx.Err() != nil {
			return nil
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
		}
		s.mu.Lock()
	}
	if s.closing {
		return nil
	}
	l := s.ready[0]
	s.ready = slices.Delete(s.ready, 0, 1)
	l.state = laneBusy
	s.inFlight++
	return l.items[0]
}

// attempt sends it once and acts on the outcome.
func (s *subscription) attempt(ctx context.Context, it *item) {
	it.attempt++
	if s.limiter != nil {
		if err := s.limiter.Wait(ctx); err != nil {
			s.settle(it, settleRelease, "")
			return
		}
	}
	if s.slow != nil {
		if err := s.slow.wait(ctx); err != nil {
			s.settle(it, settleRelease, "")
			return
		}
	}
	start := time.Now()
	o, tgt := s.send(ctx, it)
	took := time.Since(start)
	s.svc.metrics.latency.WithLabelValues(s.cfg.Name).Observe(took.Seconds())
	if s.cfg.SlowMs > 0 && took > time.Duration(s.cfg.SlowMs)*time.Millisecond {
		s.logger.Warn("slow push delivery", "topic", it.msg.Topic, "qid", it.msg.Qid, "offset", it.msg.Offset,
			"attempt", it.attempt, "target", tgt, "took", took.Round(time.Millisecond))
	}
	if ctx.Err() != nil {
		// Shutting down: what the target did is unknown; the next owner
		// sends it again.
		s.settle(it, settleRelease, "")
		return
	}
	if o.slowDown {
		s.slow.trigger(time.Now())
	}
	switch o.verdict {
	case verdictOK:
		if s.record == nil {
			s.delivered.Add(1)
			s.settle(it, settleAck, "")
			return
		}
		// The worker goes on; the message is acked once the record holds
		// it, so the group never commits past what a restart would send
		// again. Its lane waits for that: with order key or partition,
		// what a crash may repeat stays the one message per lane.
		s.record.Add(it.msg.Topic, it.msg.Qid, it.msg.Offset, func(err error) {
			if err != nil {
				s.recordFailed(it, err)
			}
			s.delivered.Add(1)
			s.settle(it, settleAck, "")
		})
	case verdictReject:
		s.failed(it, o.why, tgt)
		s.settle(it, settleDeadLetter, o.why)
	case verdictRetry:
		s.failed(it, o.why, tgt)
		wait, giveUp := s.retryPlan(it, o)
		switch {
		case it.revoked:
			s.settle(it, settleRelease, "")
		case giveUp:
			s.settle(it, settleDeadLetter, fmt.Sprintf("%s (after %d attempts)", o.why, it.attempt))
		default:
			s.scheduleRetry(it, wait)
		}
	}
}

// retryPlan says how long a failed attempt of it waits before the next,
// or that its retries are spent (only with can_skip).
func (s *subscription) retryPlan(it *item, o outcome) (wait time.Duration, giveUp bool) {
	if s.ddmq != nil {
		return s.ddmqRetryPlan(it, o)
	}
	return s.backoff(it.attempt), s.cfg.CanSkip && it.attempt >= s.cfg.Retry.Max
}

// ddmqRetryPlan is CProxy's: an error (no reply, or not 200) waits
// retry.backoff and counts against retry.max (errorRetryCnt against
// maxRetry, which is retry.max - 1); errno 1000002 waits a second; any
// other errno waits the next of ddmq.retry_intervals. Whatever the cause,
// CProxy retries only while errorRetryCnt < maxRetry (canDoErrorRetry).
// With can_skip false nothing gives up: spent retry_intervals repeat
// their last, as a trailing -1 does in CProxy.
func (s *subscription) ddmqRetryPlan(it *item, o outcome) (time.Duration, bool) {
	canRetry := !s.cfg.CanSkip || it.errRetries < s.cfg.Retry.Max-1
	switch o.rule {
	case retrySoon:
		return ddmqRetrySoon, !canRetry
	case retryErrno:
		iv := s.cfg.DDMQ.RetryIntervals
		switch {
		case it.errnoRetries < len(iv):
			it.errnoRetries++
			return iv[it.errnoRetries-1], !canRetry
		case s.cfg.CanSkip:
			return 0, true
		case len(iv) > 0:
			return iv[len(iv)-1], false
		default:
			return s.backoff(len(s.cfg.Retry.Backoff)), false
		}
	default:
		it.errRetries++
		return s.backoff(it.errRetries), !canRetry
	}
}

// send tries targets for one attempt: a target that refused the
// connection did not see the request, so the next one is tried at once.
func (s *subscription) send(ctx context.Context, it *item) (outcome, string) {
	p, err := s.payload(it)
	if err != nil {
		return outcome{verdict: verdictReject, why: err.Error()}, ""
	}
	if p.ddmq != nil && len(p.ddmq.urls) > 0 {
		// The message's carrera_http_callback_url replaces the targets;
		// CProxy's getUrl moves to the next URL on each error retry.
		urls := p.ddmq.urls
		u := urls[(int(uint64(it.msg.Offset)%uint64(len(urls)))+it.errRetries)%len(urls)]
		return s.sendTo(ctx, u, false, it, p), u
	}
	var skip *target
	for {
		t := s.targets.pick(time.Now(), skip)
		o := s.sendTo(ctx, t.url, true, it, p)
		if o.unhealthy {
			s.targets.down(t, time.Now(), o.why)
		}
		if o.unsent && skip == nil && len(s.targets.list) > 1 && ctx.Err() == nil {
			skip = t
			continue
		}
		return o, t.url
	}
}

// sendTo sends one request of it to rawURL: one of the subscription's
// targets (own), or a URL the message named.
func (s *subscription) sendTo(ctx context.Context, rawURL string, own bool, it *item, p *payload) outcome {
	actx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := s.newRequest(actx, rawURL, own, it, p, it.requests)
	if err != nil {
		return outcome{verdict: verdictReject, why: err.Error()}
	}
	it.requests++
	if s.slow != nil {
		s.slow.sent(time.Now())
	}
	resp, err := roundTrip(s.transport, req)
	if err != nil {
		return transportOutcome(err, actx.Err())
	}
	defer resp.Body.Close()
	if s.ddmq != nil {
		return classifyDDMQ(resp)
	}
	return classify(resp)
}

// recordFailed logs, at most once a second, that a delivered message is
// not in the delivered record: it is acked all the same, and a restart
// may send it again.
func (s *subscription) recordFailed(it *item, err error) {
	now := time.Now().UnixNano()
	last := s.lastRecordLog.Load()
	if now-last >= int64(time.Second) && s.lastRecordLog.CompareAndSwap(last, now) {
		s.logger.Error("recording a delivered message; a restart may send it again", "topic", it.msg.Topic, "qid", it.msg.Qid, "offset", it.msg.Offset, "error", err)
	}
}

// failed counts a failed attempt and logs it, at most once a second.
func (s *subscription) failed(it *item, why, tgt string) {
	s.failures.Add(1)
	now := time.Now()
	s.mu.Lock()
	s.lastErr, s.lastErrAt = why, now
	s.mu.Unlock()
	last := s.lastFailureLog.Load()
	if now.UnixNano()-last >= int64(time.Second) && s.lastFailureLog.CompareAndSwap(last, now.UnixNano()) {
		s.logger.Warn("push delivery failed", "topic", it.msg.Topic, "qid", it.msg.Qid, "offset", it.msg.Offset,
			"attempt", it.attempt, "target", tgt, "error", why)
	}
}

// backoff is the wait before the attempt after attempt n.
func (s *subscription) backoff(n int) time.Duration {
	b := s.cfg.Retry.Backoff
	return b[min(n, len(b))-1]
}

// scheduleRetry frees the worker; the lane stays busy until wait is
// over, then becomes ready with the same head.
func (s *subscription) scheduleRetry(it *item, wait time.Duration) {
	s.retried.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inFlight--
	s.retrying++
	it.timer = time.AfterFunc(wait, func() { s.retryDue(it) })
}

func (s *subscription) retryDue(it *item) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.lanes[it.key]
	if it.timer == nil || l == nil || len(l.items) == 0 || l.items[0] != it {
		return // given up (revoked or closing) meanwhile
	}
	it.timer = nil
	s.retrying--
	l.state = laneReady
	s.ready = append(s.ready, l)
	s.notifyLocked()
}

type settlement int

const (
	settleAck settlement = iota
	settleDeadLetter
	settleRelease
)

// settle ends an in-flight head: acked, dead-lettered or released; the
// lane's next message becomes ready.
func (s *subscription) settle(it *item, how settlement, why string) {
	var err error
	switch how {
	case settleAck:
		err = it.tr.r.Ack(it.msg.Qid, it.msg.Offset)
	case settleDeadLetter:
		s.deadLetter(it.tr, it.msg.Qid, it.msg.Offset, it.attempt, why)
	case settleRelease:
		err = it.tr.r.Release(it.msg.Qid, it.msg.Offset)
	}
	if err != nil {
		// The qid moved on (the session gave it up or restarted): its next
		// owner sends the message again.
		s.logger.Debug("settling a push delivery", "topic", it.msg.Topic, "qid", it.msg.Qid, "offset", it.msg.Offset, "error", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inFlight--
	s.popLocked(it)
	s.notifyLocked()
}

// popLocked removes the head it from its lane and readies the next one.
func (s *subscription) popLocked(it *item) {
	s.queued--
	l := s.lanes[it.key]
	if l == nil || len(l.items) == 0 || l.items[0] != it {
		return
	}
	l.items = l.items[1:]
	if len(l.items) == 0 {
		delete(s.lanes, it.key)
		return
	}
	l.state = laneReady
	s.ready = append(s.ready, l)
}

func (s *subscription) deadLetter(tr *topicReader, qid string, offset int64, attempts int, why string) {
	if err := tr.r.DeadLetter(qid, offset, attempts, why); err != nil {
		s.logger.Debug("dead-lettering a push delivery", "topic", tr.topic, "qid", qid, "offset", offset, "error", err)
		return
	}
	s.deadLettered.Add(1)
	s.logger.Warn("push message sent to the dead-letter topic", "topic", tr.topic, "qid", qid, "offset", offset, "attempts", attempts, "error", why)
}

// revoke gives up what is held of qids of tr's topic that is not in
// flight (queued, or waiting for a retry), so the session can hand the
// qids over at once; in-flight ones finish their attempt.
func (s *subscription) revoke(tr *topicReader, qids []string) {
	gone := map[string][]int64{}
	s.mu.Lock()
	for key, l := range s.lanes {
		kept := l.items[:0:0]
		for i, it := range l.items {
			if it.tr != tr || !slices.Contains(qids, it.msg.Qid) {
				kept = append(kept, it)
				continue
			}
			if i == 0 && l.state == laneBusy && it.timer == nil {
				it.revoked = true // in flight
				kept = append(kept, it)
				continue
			}
			if it.timer != nil {
				it.timer.Stop()
				it.timer = nil
				s.retrying--
			}
			gone[it.msg.Qid] = append(gone[it.msg.Qid], it.msg.Offset)
			s.queued--
		}
		if len(kept) == len(l.items) {
			continue
		}
		headGone := len(kept) == 0 || kept[0] != l.items[0]
		l.items = kept
		switch {
		case len(kept) == 0:
			delete(s.lanes, key)
			if l.state == laneReady {
				s.ready = slices.DeleteFunc(s.ready, func(x *lane) bool { return x == l })
			}
		case headGone && l.state == laneBusy:
			// Its head was waiting for a retry; the next one may go.
			l.state = laneReady
			s.ready = append(s.ready, l)
		}
	}
	s.notifyLocked()
	s.mu.Unlock()
	for qid, offs := range gone {
		if err := tr.r.Release(qid, offs...); err != nil {
			s.logger.Debug("releasing revoked push messages", "topic", tr.topic, "qid", qid, "error", err)
		}
	}
}

// prune forgets recorded offsets the group has committed past.
func (s *subscription) prune(ctx context.Context) {
	t := time.NewTicker(pruneInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, tr := range s.readers {
			if err := s.record.Prune(tr.topic, tr.r.Committed()); err != nil {
				s.logger.Warn("pruning the delivered record", "error", err)
			}
		}
	}
}

const pruneInterval = 5 * time.Second

// stopTimers cancels pending retries at shutdown.
func (s *subscription) stopTimers() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.lanes {
		if len(l.items) > 0 && l.items[0].timer != nil {
			l.items[0].timer.Stop()
			l.items[0].timer = nil
		}
	}
}

// Status is one subscription's state in GET /v1/push.
type Status struct {
	Name    string   `json:"name"`
	Cluster string   `json:"cluster,omitempty"`
	Group   string   `json:"group"`
	Topics  []string `json:"topics"`
	// State is starting, running, waiting (a topic cannot be consumed
	// now; LastError says why) or stopped.
	State string `json:"state"`
	// InFlight counts requests being sent; Queued the messages held
	// (in flight, waiting for a retry, or waiting their turn); Retrying
	// those waiting for a retry.
	InFlight int `json:"in_flight"`
	Queued   int `json:"queued"`
	Retrying int `json:"retrying"`
	// Counters since the gateway started.
	Delivered    int64 `json:"delivered"`
	Retried      int64 `json:"retried"`
	DeadLettered int64 `json:"dead_lettered"`
	Filtered     int64 `json:"filtered"`
	Deduplicated int64 `json:"deduplicated"`
	Failures     int64 `json:"failures"`
	// SlowDowns counts the replies asking to slow down (envelope ddmq's
	// errno 1000000); SlowPending the requests still to be sent at the
	// slowed pace.
	SlowDowns   int64 `json:"slow_downs,omitempty"`
	SlowPending int   `json:"slow_pending,omitempty"`
	// LastError is the last failed attempt or consume error.
	LastError     string         `json:"last_error,omitempty"`
	LastErrorAtMs int64          `json:"last_error_at_ms,omitempty"`
	Targets       []TargetStatus `json:"targets"`
}

func (s *subscription) status() Status {
	s.mu.Lock()
	st := Status{Name: s.cfg.Name, Cluster: s.cfg.Cluster, Group: s.cfg.Group, Topics: s.cfg.Topics,
		State: s.state, InFlight: s.inFlight, Queued: s.queued, Retrying: s.retrying, LastError: s.lastErr}
	if !s.lastErrAt.IsZero() {
		st.LastErrorAtMs = s.lastErrAt.UnixMilli()
	}
	s.mu.Unlock()
	st.Delivered, st.Retried, st.DeadLettered = s.delivered.Load(), s.retried.Load(), s.deadLettered.Load()
	st.Filtered, st.Deduplicated, st.Failures = s.filtered.Load(), s.deduplicated.Load(), s.failures.Load()
	st.Targets = s.targets.status(time.Now())
	if s.slow != nil {
		st.SlowDowns, st.SlowPending = s.slow.state()
	}
	return st
}
