package delay

import (
	"container/heap"
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/sdk"
)

// A worker serves one tier: it consumes the tier topic in the tier's own
// consumer group (which splits the topic's partitions between gateways),
// holds each record until its hop time, then moves it on: to the next tier,
// to a sub-second wait in memory, or to its target topic. A record's offset
// is committed only once that move is acknowledged and every record before
// it in its partition is done, so a crash repeats a hop and never loses one.
//
// One group per tier, rather than one across all tiers: the plugin stream
// has no per-partition pause, so when a worker holds its window's worth of
// records it stops polling its whole stream. Within one tier every record
// waits the same time, so that stall is short and fair; across tiers a
// full 9000 s tier would hold up the 1 s tier.
type worker struct {
	s     *Service
	tier  time.Duration
	topic string // the tier topic, also the group
	// failing is set while consuming fails; owned by run's goroutine.
	failing bool
	// moveFailing is set while moves fail; owned by schedule's goroutine.
	moveFailing bool

	// actMu is held while entries are moved, so that a revoke waits for
	// moves in flight and commits them before the partition changes hands.
	actMu sync.Mutex

	mu    sync.Mutex
	qids  map[string]*qstate
	timed entryHeap
	held  int           // records held, done or not, until committed
	room  chan struct{} // signalled when held drops
	wake  chan struct{} // signalled when timed gets an earlier head
	moved chan struct{} // signalled when a commit point moves
}

type qstate struct {
	qid     string
	revoked bool
	entries []*entry // by offset; the front is the oldest not committed
	next    int64    // offset to commit; -1 when nothing new
	// base is the last known commit point (the assignment's start, then
	// each commit); -1 when unknown.
	base int64
}

type entry struct {
	q        *qstate
	offset   int64
	env      *envelope // nil for a record that is not a delayed message
	at       time.Time // when to act
	final    bool      // at is the due time: deliver
	done     bool
	attempts int
	index    int // in timed
}

type entryHeap []*entry

func (h entryHeap) Len() int           { return len(h) }
func (h entryHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h entryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i]; h[i].index = i; h[j].index = j }
func (h *entryHeap) Push(x any)        { e := x.(*entry); e.index = len(*h); *h = append(*h, e) }
func (h *entryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

func newWorker(s *Service, tier time.Duration) *worker {
	return &worker{
		s: s, tier: tier, topic: TierName(s.opts.TopicPrefix, tier),
		qids: map[string]*qstate{}, room: make(chan struct{}, 1), wake: make(chan struct{}, 1),
		moved: make(chan struct{}, 1),
	}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// run consumes until ctx ends, re-joining the group after failures.
func (w *worker) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { w.schedule(ctx) })
	defer wg.Wait()
	for ctx.Err() == nil {
		c, err := w.s.opts.Backend.Consume(ctx, sdk.Subscription{Group: w.topic, Topics: []string{w.topic}, Start: sdk.StartEarliest})
		if err != nil {
			if ctx.Err() == nil {
				w.failed("delay tier worker cannot consume", err)
			}
			sleep(ctx, time.Second)
			continue
		}
		cctx, cancel := context.WithCancel(ctx)
		var cw sync.WaitGroup
		cw.Go(func() { w.commits(cctx, c) })
		w.poll(cctx, c)
		cancel()
		cw.Wait()
		w.commitNow(context.Background(), c) // what finished meanwhile
		c.Close()
		w.dropAll()
	}
}

// failed reports a failure to consume or poll. The tier workers share one
// cluster, so when one fails the others mostly do too: see workerTrouble.
func (w *worker) failed(msg string, err error) {
	first := !w.failing
	w.failing = true
	w.s.consumeTrouble.fail(first, msg, w.topic, err)
}

// recovered reports that a worker consumes again after failures.
func (w *worker) recovered() {
	if w.failing {
		w.failing = false
		w.s.consumeTrouble.recover()
	}
}

// troubleReport is how often a failure the tier workers keep meeting is
// logged again.
const troubleReport = time.Minute

// workerTrouble logs a failure the tier workers share (their cluster is
// down, or its plugin restarting) once, rather than once per worker and
// retry: when the first worker starts failing, again every troubleReport
// while any still fails, and, with recoveredMsg, when the last one is past
// it. Other failures are logged at debug level.
type workerTrouble struct {
	logger       *slog.Logger
	recoveredMsg string

	mu      sync.Mutex
	failing int // workers failing now
	since   time.Time
	logged  time.Time
}

// fail records a failure; first is true for a worker's first failure since
// it last recovered.
func (t *workerTrouble) fail(first bool, msg, tier string, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if first {
		t.failing++
		if t.failing == 1 {
			t.since = time.Time{}
		}
	}
	now := time.Now()
	if t.since.IsZero() {
		t.since = now
	}
	if (first && t.failing == 1) || now.Sub(t.logged) >= troubleReport {
		t.logger.Warn(msg, "tier", tier, "error", err, "workers_failing", t.failing,
			"note", "tier workers' failures are logged at debug level until they recover, and once a minute")
		t.logged = now
		return
	}
	t.logger.Debug(msg, "tier", tier, "error", err)
}

// recover records that a failing worker is past its failure.
func (t *workerTrouble) recover() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failing--
	if t.failing == 0 {
		t.logger.Info(t.recoveredMsg, "after", time.Since(t.since).Round(time.Millisecond))
	}
}

// streamLossLevel is the level for a failure to commit: debug when the
// stream itself ended (a plugin restart ends every worker's stream at once,
// and the plugin host logs that once; the moves not committed are made
// again), warn otherwise.
func streamLossLevel(err error) slog.Level {
	if errors.Is(err, sdk.ErrStreamEnded) {
		return slog.LevelDebug
	}
	return slog.LevelWarn
}

// sleep waits for d and reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// poll feeds records into the schedule while the window has room.
func (w *worker) poll(ctx context.Context, c sdk.Consumer) {
	window := w.s.opts.Window
	for ctx.Err() == nil {
		w.mu.Lock()
		free := window - w.held
		w.mu.Unlock()
		if free <= 0 {
			select {
			case <-ctx.Done():
				return
			case <-w.room:
			}
			continue
		}
		ev, err := c.Poll(ctx, min(free, 500))
		if err == nil {
			w.recovered()
		}
		if err == nil && len(ev.Revoked) > 0 {
			w.revoke(ctx, c, ev.Revoked)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, sdk.ErrStreamEnded) {
				return
			}
			w.failed("delay tier worker poll", err)
			sleep(ctx, 100*time.Millisecond)
			continue
		}
		w.apply(ev)
	}
}

// revoke gives partitions up: it waits for moves in flight, then commits
// what is finished of them in one Commit call, made even when there is
// nothing to commit, since the plugin may hold the rebalance until then
// (see sdk.Consumer.Commit). The next owner starts after what was moved
// here, so a clean rebalance repeats nothing.
func (w *worker) revoke(ctx context.Context, c sdk.Consumer, revoked []sdk.Offset) {
	w.actMu.Lock()
	defer w.actMu.Unlock()
	w.mu.Lock()
	var offs []sdk.Offset
	for _, o := range revoked {
		q := w.qids[o.Qid]
		if q == nil {
			continue
		}
		// Every revoked qid with a known position, moved or not: a plugin
		// may release the qid to its next owner on this commit.
		if p := max(q.next, q.base); p >= 0 {
			offs = append(offs, sdk.Offset{Topic: w.topic, Qid: q.qid, Offset: p, Release: true})
		}
		q.revoked = true
		w.held -= len(q.entries)
		delete(w.qids, o.Qid)
		w.s.metrics.owned.Dec()
	}
	w.mu.Unlock()
	signal(w.room)
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := c.Commit(cctx, offs); err != nil && ctx.Err() == nil {
		w.s.logger.Log(ctx, streamLossLevel(err), "delay tier worker commit on revoke", "tier", w.topic, "error", err)
	}
}

func (w *worker) apply(ev sdk.ConsumeEvent) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, o := range ev.Assigned {
		if w.qids[o.Qid] == nil {
			w.qids[o.Qid] = &qstate{qid: o.Qid, next: -1, base: o.Offset}
			w.s.metrics.owned.Inc()
		}
	}
	headBefore := w.head()
	for i := range ev.Records {
		r := &ev.Records[i]
		q := w.qids[r.Qid]
		if q == nil {
			q = &qstate{qid: r.Qid, next: -1, base: -1}
			w.qids[r.Qid] = q
			w.s.metrics.owned.Inc()
		}
		e := &entry{q: q, offset: r.Offset}
		env, err := parseEnvelope(r)
		reason := "malformed"
		if err == nil {
			if err = w.s.admissible(env); err != nil {
				reason = "reserved"
			}
		}
		if err != nil {
			w.s.logger.Error("skipping a record in a delay tier", "tier", w.topic, "error", err)
			w.s.metrics.dropped.WithLabelValues(reason).Inc()
			e.done = true
		} else {
			e.env, e.at = env, env.hop
		}
		q.entries = append(q.entries, e)
		w.held++
		if !e.done {
			heap.Push(&w.timed, e)
		}
	}
	w.advanceAll()
	if h := w.head(); h != nil && (headBefore == nil || h.at.Before(headBefore.at)) {
		signal(w.wake)
	}
}

func (w *worker) head() *entry {
	if len(w.timed) == 0 {
		return nil
	}
	return w.timed[0]
}

// advanceAll moves every qid's commit point past its done entries; mu held.
func (w *worker) advanceAll() {
	for _, q := range w.qids {
		w.advance(q)
	}
}

func (w *worker) advance(q *qstate) {
	n := 0
	for n < len(q.entries) && q.entries[n].done {
		n++
	}
	if n == 0 {
		return
	}
	q.next = q.entries[n-1].offset + 1
	q.entries = slices.Delete(q.entries, 0, n)
	w.held -= n
	signal(w.room)
	signal(w.moved)
}

// dropAll forgets everything after the stream ended: the next member (or
// this one, re-joining) starts from the committed offsets.
func (w *worker) dropAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, q := range w.qids {
		q.revoked = true
	}
	w.s.metrics.owned.Sub(float64(len(w.qids)))
	w.qids = map[string]*qstate{}
	w.timed = nil
	w.held = 0
	signal(w.room)
}

// schedule acts on entries as their times come.
func (w *worker) schedule(ctx context.Context) {
	clock := w.s.opts.Clock
	for ctx.Err() == nil {
		w.mu.Lock()
		var due []*entry
		now := clock.Now()
		for len(w.timed) > 0 && !w.timed[0].at.After(now) {
			due = append(due, heap.Pop(&w.timed).(*entry))
		}
		var wait time.Duration = time.Hour
		if h := w.head(); h != nil {
			wait = h.at.Sub(now)
		}
		w.mu.Unlock()
		if len(due) > 0 {
			w.act(ctx, due)
			continue
		}
		timer, stop := clock.Timer(wait)
		select {
		case <-ctx.Done():
		case <-timer:
		case <-w.wake:
		}
		stop()
	}
}

// act moves entries whose time has come.
func (w *worker) act(ctx context.Context, due []*entry) {
	w.actMu.Lock()
	defer w.actMu.Unlock()
	live := due[:0]
	w.mu.Lock()
	for _, e := range due {
		if !e.q.revoked {
			live = append(live, e)
		}
	}
	w.mu.Unlock()
	if len(live) == 0 {
		return
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := w.s.cancels.sync(sctx)
	cancel()
	if err != nil {
		w.s.logger.Warn("delay tier worker cannot read cancels; retrying", "tier", w.topic, "error", err)
		w.retry(live, err)
		return
	}
	now := w.s.opts.Clock.Now()
	var hops, deliveries []*entry
	var hopRecs []sdk.Record
	var done []*entry
	for _, e := range live {
		env := e.env
		if w.s.cancels.cancelled(cancelKey(env.topic, env.id), now) {
			w.s.metrics.cancelledDropped.Inc()
			done = append(done, e)
			continue
		}
		left := env.due.Sub(now)
		switch {
		case left >= time.Second:
			next := *env
			t, _ := w.s.plan.Next(left)
			next.hop = now.Add(t)
			hops = append(hops, e)
			hopRecs = append(hopRecs, next.record(TierName(w.s.opts.TopicPrefix, t)))
		case left > 0:
			// Under a second: wait it out here; the record stays
			// uncommitted until delivered.
			e.at, e.final = env.due, true
			w.mu.Lock()
			if !e.q.revoked {
				heap.Push(&w.timed, e)
			}
			w.mu.Unlock()
		default:
			deliveries = append(deliveries, e)
		}
	}
	w.finish(done, nil)
	if len(hopRecs) > 0 {
		res, err := w.s.opts.Producer.SendRecords(ctx, w.s.opts.Cluster, hopRecs)
		w.settle(hops, res, err, func(*entry) { w.s.metrics.hops.WithLabelValues(w.topic).Inc() })
	}
	if len(deliveries) > 0 {
		w.deliver(ctx, deliveries)
	}
}

// deliver produces due messages to their topics, and the next occurrence
// of loops into the tiers, before marking them done.
func (w *worker) deliver(ctx context.Context, es []*entry) {
	byTopic := map[string][]*entry{}
	var order []string
	for _, e := range es {
		if _, ok := byTopic[e.env.topic]; !ok {
			order = append(order, e.env.topic)
		}
		byTopic[e.env.topic] = append(byTopic[e.env.topic], e)
	}
	for _, topic := range order {
		group := byTopic[topic]
		cluster, err := w.s.opts.Route(topic)
		if err != nil {
			w.settle(group, nil, err, nil)
			continue
		}
		msgs := make([]produce.Message, len(group))
		for i, e := range group {
			msgs[i] = e.env.delivered()
		}
		res, err := w.s.opts.Producer.SendRecords(ctx, cluster, produce.Records(topic, msgs))
		var ok []*entry
		w.settleWith(group, res, err, func(e *entry) { ok = append(ok, e) }, false)
		// Delivered: loops re-enqueue their next firing, then all are done.
		var again []*entry
		var recs []sdk.Record
		var finished []*entry
		now := w.s.opts.Clock.Now()
		for _, e := range ok {
			w.s.metrics.delivered.Inc()
			w.s.metrics.lateness.Observe(max(now.Sub(e.env.due), 0).Seconds())
			if next := nextFiring(e.env); next != nil {
				again = append(again, e)
				recs = append(recs, next.record(w.s.tierFor(next, now)))
				continue
			}
			finished = append(finished, e)
		}
		w.finish(finished, nil)
		if len(recs) > 0 {
			res, err := w.s.opts.Producer.SendRecords(ctx, w.s.opts.Cluster, recs)
			// A loop whose next firing failed to enqueue is retried from
			// the start: this firing repeats rather than the rest being
			// lost.
			w.settle(again, res, err, nil)
		}
	}
}

// nextFiring is a loop's next occurrence after e fired, or nil when the
// loop is over.
func nextFiring(e *envelope) *envelope {
	l := e.loop
	if l == nil || e.fired+1 >= l.Times {
		return nil
	}
	next := *e
	next.fired++
	next.due = e.due.Add(l.gap(next.fired))
	if !l.Expire.IsZero() && next.due.After(l.Expire) {
		return nil
	}
	return &next
}

// settle marks entries done where their produce succeeded (calling ok for
// each), retries the retriable failures and drops the others.
func (w *worker) settle(es []*entry, res []sdk.ProduceResult, err error, ok func(*entry)) {
	w.settleWith(es, res, err, ok, true)
}

func (w *worker) settleWith(es []*entry, res []sdk.ProduceResult, err error, ok func(*entry), markDone bool) {
	var done, failed []*entry
	var lastErr error
	for i, e := range es {
		rerr := err
		if rerr == nil && i < len(res) {
			rerr = res[i].Err
		}
		if rerr == nil {
			if ok != nil {
				ok(e)
			}
			if markDone {
				done = append(done, e)
			}
			continue
		}
		code := sdk.CodeOf(rerr)
		switch {
		case code == sdk.CodeIllegal || code == sdk.CodeNotAllowed || code == sdk.CodeTooLarge,
			code == sdk.CodeTopicNotExist && e.attempts >= missingTopicAttempts:
			w.s.logger.Error("dropping a delayed message its topic refuses", "id", e.env.id, "topic", e.env.topic, "attempts", e.attempts+1, "error", rerr)
			w.s.metrics.dropped.WithLabelValues("refused").Inc()
			done = append(done, e)
		default:
			failed = append(failed, e)
			lastErr = rerr
		}
	}
	w.finish(done, nil)
	switch {
	case len(failed) > 0:
		first := !w.moveFailing
		w.moveFailing = true
		w.s.moveTrouble.fail(first, "delay tier worker will retry moving records", w.topic, lastErr)
		w.retry(failed, lastErr)
	case len(done) > 0 && w.moveFailing:
		w.moveFailing = false
		w.s.moveTrouble.recover()
	}
}

// missingTopicAttempts is how often a delivery to a topic that does not
// exist is tried (over about a minute of backoff) before the message is
// dropped: a topic being created, by an operator or by a broker on its
// first send, gets that long to appear.
const missingTopicAttempts = 30

// retry puts entries back to act on again after a backoff.
func (w *worker) retry(es []*entry, _ error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.s.opts.Clock.Now()
	for _, e := range es {
		if e.q.revoked {
			continue
		}
		e.attempts++
		e.at = now.Add(min(time.Duration(e.attempts)*100*time.Millisecond, 5*time.Second))
		heap.Push(&w.timed, e)
	}
	signal(w.wake)
}

// finish marks entries done and moves commit points.
func (w *worker) finish(es []*entry, _ error) {
	if len(es) == 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, e := range es {
		e.done = true
		if !e.q.revoked {
			w.advance(e.q)
		}
	}
}

// commits commits finished offsets until ctx ends: commitInterval after
// a commit point first moves, so that the moves of that interval share one
// commit, and not at all while nothing moves. A failed commit is tried
// again an interval later.
func (w *worker) commits(ctx context.Context, c sdk.Consumer) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.moved:
		}
		if !sleep(ctx, commitInterval) {
			return
		}
		if !w.commitNow(ctx, c) {
			signal(w.moved)
		}
	}
}

const commitInterval = 100 * time.Millisecond

// commitNow commits every moved commit point; it reports false when the
// commit failed and the points are still to commit.
func (w *worker) commitNow(ctx context.Context, c sdk.Consumer) bool {
	w.mu.Lock()
	var offs []sdk.Offset
	var qs []*qstate
	for _, q := range w.qids {
		if q.next >= 0 {
			offs = append(offs, sdk.Offset{Topic: w.topic, Qid: q.qid, Offset: q.next})
			qs = append(qs, q)
		}
	}
	w.mu.Unlock()
	if len(offs) == 0 {
		// Never a commit of nothing: a plugin takes that for the
		// release commit of a revocation (sdk.Consumer.Commit).
		return true
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := c.Commit(cctx, offs); err != nil {
		if sdk.CodeOf(err) != sdk.CodeNotFound {
			w.s.logger.Log(ctx, streamLossLevel(err), "delay tier worker commit", "tier", w.topic, "error", err)
		}
		return false
	}
	w.mu.Lock()
	for i, q := range qs {
		q.base = max(q.base, offs[i].Offset)
		if q.next == offs[i].Offset {
			q.next = -1
		}
	}
	w.mu.Unlock()
	return true
}
