package consume

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/mqgate/mqgate/sdk"
)

// A session is this gateway's member of one (cluster, group, topic): it
// holds the broker group membership through the backend's Consume stream,
// buffers what the stream delivers, hands batches of one qid at a time to
// Pull, and tracks every handed-out offset until it is acked. The group's
// committed offset of a qid is the lowest offset not yet acked, so acks
// may come in any order.
//
// A group session (topic "") is the member of a group that pulls without
// a topic: it consumes every topic the group is subscribed to on its
// cluster (topics), as one member, as DDMQ's cproxy has one consumer per
// group and cluster. A broker allocates a group's queues over all its
// members whatever each one subscribes to (RocketMQ does): one member per
// topic would be handed queues of topics it does not read.
type session struct {
	svc                   *Service
	cluster, group, topic string
	// topics are the topics the session consumes: [topic], or a group
	// session's subscribed topics, sorted.
	topics []string
	set    Settings
	c      sdk.Consumer
	// release gives the session back to the quota of the principal that
	// opened it; called once, when the session leaves the service.
	release func()

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when the session's goroutines are over

	mu       sync.Mutex
	qids     map[string]*qtrack // by qkey
	order    []string           // qkeys, for round robin
	rr       int
	buffered int
	changed  chan struct{} // closed and replaced on every change Pull waits for
	lastUse  time.Time
	// used is signalled (never blocking) by pulls and acks, which may
	// give maintain work.
	used chan struct{}
	// lastCommit is when commit last sent offsets (for CommitInterval).
	lastCommit time.Time
	closed     bool
	failure    error // why the stream ended, for callers
	// pulls counts the pulls waiting on the session.
	pulls int
	// failing is at least the number of failed messages waiting to be
	// handed out again: failLocked counts one up, nextRedoLocked sets it
	// to the count its scan finds. While it is 0, pulls need not look
	// through the messages out for redeliveries.
	failing int
	// lastServed orders the sessions of a group for pulls without a
	// topic (see Service.pullGroup): the Service.served count when one
	// last took messages from it.
	lastServed uint64
	// declined is set when worthReopening said no: the stream's end
	// closes the session quietly, and the next pull opens a new one.
	declined bool
	// pollFree is what the pump's waiting Poll asked for, and
	// pollCancel ends that Poll (nil when none waits or it was ended):
	// see pollingWith.
	pollFree   int
	pollCancel context.CancelFunc
	// cursor is the session's batch-id cursor, made on first use: it
	// lives and ends with the session, whose messages its batches hold.
	cursor *cursor
}

// reopenRecentShare is how recently, as a share of SessionIdle (30 s of
// the default 5 m), a session must have been pulled or acked to be
// re-opened when its stream ends (a plugin restart): a client that pulls
// in a loop is back well within it. A session older than that, with
// nothing handed out and no pull waiting, closes instead, and its group's
// next pull opens it again: a new plugin process should not have to
// rejoin every group pulled once since the gateway started, which is what
// took a plugin that had died of too many groups down again at each
// restart.
const reopenRecentShare = 10

// worthReopening reports whether the session's ended stream should be
// re-opened: a reader (push, sink) holds it, a pull waits on it, messages
// are handed out and not settled (their acks must still find a session),
// or it was used within a tenth of SessionIdle.
func (s *session) worthReopening() bool {
	if s.svc.readerOf(s) != nil { // takes the service's lock: not under s.mu
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pulls > 0 || s.svc.opts.Now().Sub(s.lastUse) < s.set.SessionIdle/reopenRecentShare {
		return true
	}
	for _, q := range s.qids {
		if len(q.out) > 0 {
			return true
		}
	}
	s.declined = true
	return false
}

// qkey names a qid of a topic in a session's maps: a group session holds
// qids of several topics, and qid "0" of one is not qid "0" of another.
func qkey(topic, qid string) string { return topic + "/" + qid }

// qtrack is one qid's state.
type qtrack struct {
	topic, qid string
	// buf holds records received and not yet handed out, in offset order.
	buf []sdk.Record
	// out holds what is handed out and not acked, by offset.
	out map[int64]*flight
	// pending holds every offset received and not yet acked; the commit
	// point is its first.
	pending pendingOffsets
	// next is the offset after the last one received.
	next int64
	// committed is the offset last committed; dirty says the commit point
	// moved since.
	committed int64
	dirty     bool
	// revoking is set while the qid is being given up: nothing more is
	// handed out, acks are still taken.
	revoking bool
}

// flight is one handed-out message.
type flight struct {
	rec      sdk.Record
	attempt  int       // deliveries so far
	deadline time.Time // when an unacked delivery times out; zero: held
	redoAt   time.Time // when a failed one may be handed out again; zero: not failed
	dead     bool      // retries spent: waiting to be dead-lettered
	lastErr  string
}

func (q *qtrack) commitPoint() int64 {
	if off, ok := q.pending.first(); ok {
		return off
	}
	return q.next
}

func (q *qtrack) removePending(off int64) {
	if q.pending.remove(off) {
		q.dirty = true
	}
}

func (s *session) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// run pumps the stream into the buffers until the session ends.
func (s *session) run() {
	defer close(s.done)
	var wg sync.WaitGroup
	wg.Go(s.maintain)
	defer wg.Wait()
	failures := 0 // polls failed in a row
	for s.ctx.Err() == nil {
		s.mu.Lock()
		free := s.set.Buffer - s.buffered
		ch := s.changed
		s.mu.Unlock()
		// Poll for a good share of the buffer at a time: topping it up a
		// few records per round trip to the plugin costs more than it
		// feeds.
		pctx, max, cancel := s.ctx, free, context.CancelFunc(func() {})
		topUp := false // pctx ends when pulls free room for more credits
		if free <= 0 || free < s.set.Buffer/4 {
			t := time.NewTimer(trickleInterval)
			select {
			case <-ch:
				t.Stop()
				continue
			case <-s.ctx.Done():
				t.Stop()
				continue
			case <-t.C:
			}
			// Still full: poll one record anyway, now and then, so that
			// an assignment change waiting behind the records (plugins
			// hand events first) is seen and a revoke is not held up
			// until a slow client drains the buffer. Overflow is bounded.
			if free <= -s.set.Buffer/4 {
				continue
			}
			pctx, cancel = context.WithTimeout(s.ctx, trickleInterval)
			max = 1
		} else {
			pctx, cancel = s.pollingWith(free)
			topUp = true
		}
		ev, err := s.c.Poll(pctx, max)
		ended := pctx != s.ctx && pctx.Err() != nil
		cancel()
		if topUp {
			s.mu.Lock()
			s.pollCancel = nil
			s.mu.Unlock()
		}
		if err != nil && ended && s.ctx.Err() == nil {
			// The trickle poll found nothing, or pulls made room for more
			// credits while the poll waited. A poll that returned
			// records is applied even when its context ended with them.
			continue
		}
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			if errors.Is(err, sdk.ErrStreamEnded) {
				s.mu.Lock()
				declined := s.declined
				s.mu.Unlock()
				if declined {
					// Debug: a plugin restart ends every stream at once,
					// and the plugin host logs that once.
					s.svc.metrics.notReopened.Inc()
					s.svc.closeSessionLogged(s, "idle when its stream ended; not re-opened: the next pull opens it again", slog.LevelDebug)
					return
				}
				s.end(err)
				return
			}
			// Logged when polling starts to fail, not at every retry.
			failures++
			level := slog.LevelDebug
			if failures == 1 {
				level = slog.LevelWarn
			}
			s.svc.logger.Log(s.ctx, level, "consume poll failed; retrying", "group", s.group, "topic", s.topic, "error", err, "failures", failures)
			sleep(s.ctx, 100*time.Millisecond)
			continue
		}
		if failures > 1 {
			s.svc.logger.Info("consume poll working again", "group", s.group, "topic", s.topic, "failures", failures)
		}
		failures = 0
		if len(ev.Revoked) > 0 {
			s.revoke(ev.Revoked)
		}
		s.apply(ev)
	}
}

// pollingWith returns the context of a Poll for free records: it ends
// once pulls have taken a quarter of the buffer more than free, so that
// the pump grants the backend more credits while records are on their
// way instead of after they came (see takeLocked). The buffer bound
// holds: a Poll asks for what is free when it starts, and records in
// flight are counted against the credits they used.
func (s *session) pollingWith(free int) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(s.ctx)
	s.mu.Lock()
	s.pollFree, s.pollCancel = free, cancel
	s.mu.Unlock()
	return ctx, cancel
}

// streamLossLevel is the level for a failure to commit: debug when the
// stream itself ended (a plugin restart ends every stream at once, and the
// plugin host logs that once; what was not committed is delivered again),
// warn otherwise.
func streamLossLevel(err error) slog.Level {
	if errors.Is(err, sdk.ErrStreamEnded) {
		return slog.LevelDebug
	}
	return slog.LevelWarn
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// hasFailed reports whether the session's stream ended for good: end is
// closing it, and the next pull opens a new one rather than get its
// failure, which the pulls waiting when it failed have answered.
func (s *session) hasFailed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failure != nil
}

// end fails the session for good: waiting pulls get err, and the service
// forgets the session, so the next Pull opens a new one (the topic may
// exist by then).
func (s *session) end(err error) {
	s.mu.Lock()
	s.failure = err
	s.notifyLocked()
	s.mu.Unlock()
	s.svc.closeSession(s, "stream ended: "+err.Error())
}

func (s *session) apply(ev sdk.ConsumeEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range ev.Assigned {
		q := s.trackLocked(s.topicOf(o.Topic), o.Qid)
		if o.Offset >= 0 && q.next < 0 {
			// Where consumption starts: the commit point until records come.
			q.next, q.committed = o.Offset, o.Offset
		}
	}
	for _, r := range ev.Records {
		q := s.trackLocked(s.topicOf(r.Topic), r.Qid)
		if r.Offset < q.next {
			continue // already seen (a stream that re-opened)
		}
		q.buf = append(q.buf, r)
		q.pending.add(r.Offset)
		q.next = r.Offset + 1
		s.buffered++
	}
	s.notifyLocked()
}

// topicOf is the topic of a record or an assignment the stream named
// topic: itself, or the session's topic when a plugin left it out.
func (s *session) topicOf(topic string) string {
	if topic == "" {
		return s.topic
	}
	return topic
}

func (s *session) trackLocked(topic, qid string) *qtrack {
	k := qkey(topic, qid)
	q := s.qids[k]
	if q == nil {
		q = &qtrack{topic: topic, qid: qid, out: map[int64]*flight{}, next: -1, committed: -1}
		s.qids[k] = q
		s.order = append(s.order, k)
		s.svc.metrics.owned.WithLabelValues(s.group, topic).Inc()
	}
	return q
}

// dropLocked forgets the qid of key k (a qkey).
func (s *session) dropLocked(k string) {
	q := s.qids[k]
	if q == nil {
		return
	}
	s.buffered -= len(q.buf)
	delete(s.qids, k)
	if i := slices.Index(s.order, k); i >= 0 {
		s.order = slices.Delete(s.order, i, i+1)
	}
	s.svc.metrics.owned.WithLabelValues(s.group, q.topic).Dec()
	s.svc.metrics.inFlight.WithLabelValues(s.group, q.topic).Sub(float64(len(q.out)))
}

// revoke gives qids up: nothing more of them is handed out; messages
// handed out before are waited for (acked, failed or timed out) up to the
// ack timeout, so no message is handed to two members within its ack
// timeout; then what is acked is committed, in the one Commit the plugin
// waits for (see sdk.Consumer.Commit), and the qids are dropped.
func (s *session) revoke(revoked []sdk.Offset) {
	if r := s.svc.readerOf(s); r != nil && r.opts.OnRevoke != nil {
		qids := make([]string, len(revoked))
		for i, o := range revoked {
			qids[i] = o.Qid
		}
		r.opts.OnRevoke(qids)
	}
	s.mu.Lock()
	for _, o := range revoked {
		if q := s.qids[qkey(s.topicOf(o.Topic), o.Qid)]; q != nil {
			q.revoking = true
		}
	}
	s.mu.Unlock()
	deadline := time.Now().Add(min(s.set.AckTimeout, maxRevokeWait))
	for {
		s.mu.Lock()
		busy := false
		for _, o := range revoked {
			if q := s.qids[qkey(s.topicOf(o.Topic), o.Qid)]; q != nil && hasLive(q) {
				busy = true
			}
		}
		ch := s.changed
		s.mu.Unlock()
		if !busy || time.Now().After(deadline) {
			break
		}
		select {
		case <-ch:
		case <-s.ctx.Done():
			return
		case <-time.After(time.Until(deadline)):
		}
	}
	s.mu.Lock()
	var offs []sdk.Offset
	for _, o := range revoked {
		k := qkey(s.topicOf(o.Topic), o.Qid)
		if q := s.qids[k]; q != nil {
			// Every revoked qid with a known position, moved or not: a
			// plugin may release the qid to its next owner on this commit.
			if p := q.commitPoint(); p >= 0 {
				offs = append(offs, sdk.Offset{Topic: q.topic, Qid: q.qid, Offset: p, Release: true})
			}
			s.dropLocked(k)
		}
	}
	s.notifyLocked()
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	if err := s.c.Commit(ctx, offs); err != nil && s.ctx.Err() == nil {
		s.svc.logger.Log(ctx, streamLossLevel(err), "commit on revoke", "group", s.group, "topic", s.topic, "error", err)
	}
}

// maxRevokeWait bounds how long a revoke waits for handed-out messages; it
// stays under the Kafka plugin's bound on a held rebalance.
const maxRevokeWait = 50 * time.Second

// hasLive reports whether q has handed-out messages that are neither acked
// nor failed.
func hasLive(q *qtrack) bool {
	for _, f := range q.out {
		if f.redoAt.IsZero() && !f.dead {
			return true
		}
	}
	return false
}

// take hands out up to max messages of one qid, or none. hold marks them
// exempt from the ack timeout (the batch-id cursor holds batches until
// acked).
func (s *session) takeLocked(max int, hold bool, now time.Time) Batch {
	b := Batch{Group: s.group, Topic: s.topic}
	n := len(s.order)
	for i := range n {
		q := s.qids[s.order[(s.rr+i)%n]]
		if q.revoking {
			continue
		}
		var msgs []Message
		// Redeliveries first: failed or timed-out messages whose backoff
		// is over.
		var redo []int64
		if s.failing > 0 {
			for off, f := range q.out {
				if !f.dead && !f.redoAt.IsZero() && !f.redoAt.After(now) {
					redo = append(redo, off)
				}
			}
			slices.Sort(redo)
		}
		if len(redo) == 0 && len(q.buf) > 0 && len(q.out) < s.set.MaxInFlight {
			msgs = make([]Message, 0, min(max, len(q.buf), s.set.MaxInFlight-len(q.out)))
		}
		for _, off := range redo {
			if len(msgs) >= max {
				break
			}
			f := q.out[off]
			f.attempt++
			f.redoAt = time.Time{}
			f.deadline = deadline(now, s.set.AckTimeout, hold)
			msgs = append(msgs, toMessage(f.rec, f.attempt))
		}
		if len(msgs) > 0 {
			s.svc.metrics.redeliveries.WithLabelValues(s.group, q.topic).Add(float64(len(msgs)))
		}
		fresh := 0
		for len(msgs) < max && len(q.buf) > 0 && len(q.out) < s.set.MaxInFlight {
			r := q.buf[0]
			q.buf = q.buf[1:]
			s.buffered--
			q.out[r.Offset] = &flight{rec: r, attempt: 1, deadline: deadline(now, s.set.AckTimeout, hold)}
			fresh++
			msgs = append(msgs, toMessage(r, 1))
		}
		if fresh > 0 {
			s.svc.metrics.inFlight.WithLabelValues(s.group, q.topic).Add(float64(fresh))
		}
		if len(msgs) > 0 {
			// In offset order already, as a rule (redeliveries are
			// older than what is buffered): sorting a pull of 100 in
			// order anyway was 1.5% of a pulling gateway.
			if byOffset := func(a, b Message) int { return cmp.Compare(a.Offset, b.Offset) }; !slices.IsSortedFunc(msgs, byOffset) {
				slices.SortFunc(msgs, byOffset)
			}
			s.rr = (s.rr + i + 1) % n
			b.Topic, b.Qid, b.Messages = q.topic, q.qid, msgs
			s.notifyLocked() // the pump may have buffer room again
			if s.pollCancel != nil && s.set.Buffer-s.buffered-s.pollFree >= s.set.Buffer/4 {
				// A quarter of the buffer is free beyond what the
				// waiting Poll asked for: poll again, for more.
				s.pollCancel()
				s.pollCancel = nil
			}
			return b
		}
	}
	return b
}

func deadline(now time.Time, timeout time.Duration, hold bool) time.Time {
	if hold {
		return time.Time{}
	}
	return now.Add(timeout)
}

// nextRedoLocked is when the earliest failed message may go out again.
// It recounts s.failing on the way.
func (s *session) nextRedoLocked() time.Time {
	if s.failing == 0 {
		return time.Time{}
	}
	var t time.Time
	failing := 0
	for _, q := range s.qids {
		for _, f := range q.out {
			if !f.dead && !f.redoAt.IsZero() {
				failing++
				if t.IsZero() || f.redoAt.Before(t) {
					t = f.redoAt
				}
			}
		}
	}
	s.failing = failing
	return t
}

func toMessage(r sdk.Record, attempt int) Message {
	return Message{Topic: r.Topic, Qid: r.Qid, Offset: r.Offset, Key: r.Key, Value: r.Value,
		Headers: r.Headers, Tags: r.Tags, Timestamp: r.Timestamp, Attempt: attempt}
}

// pull waits for messages until wait passes, or until stop (which may be
// nil) is closed.
func (s *session) pull(ctx context.Context, max int, wait time.Duration, hold bool, stop <-chan struct{}) (Batch, error) {
	deadline := time.Now().Add(wait) // real time: the client's wait
	s.waiting(1)
	defer s.waiting(-1)
	for {
		now := s.svc.opts.Now()
		b, ch, redo, err := s.poll(max, hold, now)
		if err != nil {
			return Batch{}, err
		}
		if len(b.Messages) > 0 || !time.Now().Before(deadline) || closed(stop) {
			return b, nil
		}
		wake := time.Until(deadline)
		if !redo.IsZero() && redo.Sub(now) < wake {
			wake = redo.Sub(now) // redo is on the session clock
		}
		t := time.NewTimer(wake)
		select {
		case <-ch:
		case <-t.C:
		case <-stop:
		case <-ctx.Done():
			t.Stop()
			return Batch{Group: s.group, Topic: s.topic}, nil
		}
		t.Stop()
	}
}

// waiting counts a pull that starts (1) or stops (-1) waiting on s.
func (s *session) waiting(n int) {
	s.mu.Lock()
	s.pulls += n
	s.mu.Unlock()
}

// poll hands out what is ready now, without waiting: up to max messages of
// one qid, or none. It also returns what to wait on for more: a channel
// closed on the next change, and when the earliest failed message may go
// out again (zero: none). A closed session answers errSessionClosed, a
// failed one code 17.
func (s *session) poll(max int, hold bool, now time.Time) (b Batch, changed <-chan struct{}, redo time.Time, err error) {
	s.mu.Lock()
	s.lastUse = now
	if s.closed || s.failure != nil {
		err := s.failure
		s.mu.Unlock()
		if err == nil {
			return Batch{}, nil, time.Time{}, errSessionClosed
		}
		return Batch{}, nil, time.Time{}, sdk.Errorf(sdk.CodeUnavailable, "consuming %s for group %s: %v", s.topic, s.group, err)
	}
	b = s.takeLocked(max, hold, now)
	changed = s.changed
	redo = s.nextRedoLocked()
	s.mu.Unlock()
	if len(b.Messages) > 0 {
		s.usedNow()
	}
	return b, changed, redo, nil
}

// closed reports whether ch is closed; a nil ch never is.
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// errSessionClosed is what pull answers on a session that closed; Pull
// opens a new one.
var errSessionClosed = &sdk.Error{Code: sdk.CodeUnavailable, Msg: "the consume session closed; pull again"}

// ack applies one Ack: every offset must be handed out and not acked.
func (s *session) ack(a Ack, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.usedNow()
	s.lastUse = now
	q := s.qids[qkey(s.topicOf(a.Topic), a.Qid)]
	if q == nil {
		return sdk.Errorf(sdk.CodeNotFound, "qid %s of topic %s is not assigned to this gateway's member of group %s (it may have moved to another gateway, which redelivers what was not acked)", a.Qid, s.topicOf(a.Topic), s.group)
	}
	for _, list := range [][]int64{a.Success, a.Fail} {
		for _, off := range list {
			if f := q.out[off]; f == nil || f.dead || !f.redoAt.IsZero() {
				return sdk.Errorf(sdk.CodeIllegal, "offset %d of qid %s was not handed out, or is already acked or failed", off, a.Qid)
			}
		}
	}
	// An offset named twice counts once, and an offset both acked and
	// failed is acked, as DDMQ's cproxy takes it.
	acked := 0
	for _, off := range a.Success {
		if q.out[off] == nil {
			continue // named before in this list
		}
		delete(q.out, off)
		q.removePending(off)
		acked++
	}
	if acked > 0 { // the metrics once per ack, not per offset: a label lookup hashes both labels
		s.svc.metrics.inFlight.WithLabelValues(s.group, q.topic).Sub(float64(acked))
		s.svc.metrics.acked.WithLabelValues(s.group, q.topic).Add(float64(acked))
	}
	for _, off := range a.Fail {
		if f := q.out[off]; f != nil && f.redoAt.IsZero() && !f.dead {
			s.failLocked(f, now, "failed by the consumer")
		}
	}
	s.notifyLocked()
	return nil
}

// failLocked schedules a redelivery with growing backoff, or marks the
// message for the dead-letter topic once its retries are spent.
func (s *session) failLocked(f *flight, now time.Time, why string) {
	f.lastErr = why
	f.deadline = time.Time{}
	if f.attempt > s.set.MaxRetries {
		f.dead = true
		return
	}
	backoff := s.set.RetryBackoff << (f.attempt - 1)
	f.redoAt = now.Add(min(backoff, s.set.RetryBackoffMax))
	s.failing++
}

// maintain times out unacked messages, dead-letters spent ones, commits
// what moved, and closes an idle session. It runs every maintainInterval
// while messages are out or acked offsets wait to be committed; otherwise
// it sleeps until the session would be idle, or a pull hands out messages
// or an ack comes: a session nobody uses does not wake the process.
func (s *session) maintain() {
	t := time.NewTimer(maintainInterval)
	defer t.Stop()
	sleeping := false // t is set for the idle wait, not the next tick
	for {
		select {
		case <-s.ctx.Done():
			s.commit(context.Background())
			return
		case <-s.used:
			// Work may have come: tick again, at the usual pace (a tick
			// per ack would be a commit per ack).
			if sleeping {
				sleeping = false
				t.Reset(maintainInterval)
			}
			continue
		case <-t.C:
		}
		now := s.svc.opts.Now()
		s.mu.Lock()
		var dead []deadLetter
		busy := false
		for _, q := range s.qids {
			busy = busy || len(q.out) > 0 || q.dirty
			for off, f := range q.out {
				if !f.deadline.IsZero() && now.After(f.deadline) {
					s.svc.metrics.timeouts.WithLabelValues(s.group, q.topic).Inc()
					s.failLocked(f, now, "not acked within the ack timeout")
				}
				if f.dead {
					dead = append(dead, deadLetter{q.topic, q.qid, off, f})
				}
			}
		}
		idleAt := s.lastUse.Add(s.set.SessionIdle)
		idle := !s.lastUse.IsZero() && now.After(idleAt) && s.svc.readerOf(s) == nil
		if len(dead) > 0 {
			s.notifyLocked()
		}
		due := now.Sub(s.lastCommit) >= s.set.CommitInterval
		s.mu.Unlock()
		if len(dead) > 0 {
			s.deadLetter(dead)
		}
		if due {
			s.commit(s.ctx)
		}
		if idle {
			s.svc.closeSession(s, "idle")
			return
		}
		next := maintainInterval
		if !busy && s.svc.realClock {
			// Nothing to time out or commit: wake when the session turns
			// idle (past that, while a batch-id reader holds it, a
			// SessionIdle later).
			next = idleAt.Sub(now)
			if next <= 0 {
				next = s.set.SessionIdle
			}
			next = max(next, maintainInterval)
		}
		sleeping = next > maintainInterval
		t.Reset(next)
	}
}

// usedNow wakes maintain after a pull or an ack.
func (s *session) usedNow() {
	select {
	case s.used <- struct{}{}:
	default:
	}
}

const maintainInterval = 50 * time.Millisecond

// trickleInterval is how often a session whose buffer is full polls one
// record to see assignment changes.
const trickleInterval = 250 * time.Millisecond

type deadLetter struct {
	topic  string
	qid    string
	offset int64
	f      *flight
}

// deadLetter produces spent messages to the group's dead-letter topic with
// headers naming their origin, then counts them as acked.
func (s *session) deadLetter(dead []deadLetter) {
	topic := s.set.DeadLetterTopicOf(s.group)
	cluster, err := s.svc.opts.Route(topic)
	if err != nil {
		s.svc.logger.Error("dead-letter topic", "group", s.group, "topic", topic, "error", err)
		return
	}
	recs := make([]sdk.Record, len(dead))
	for i, d := range dead {
		r := d.f.rec
		hs := append(append([]sdk.Header(nil), r.Headers...),
			sdk.Header{Key: HeaderOriginTopic, Value: []byte(d.topic)},
			sdk.Header{Key: HeaderOriginQid, Value: []byte(d.qid)},
			sdk.Header{Key: HeaderOriginOffset, Value: []byte(strconv.FormatInt(d.offset, 10))},
			sdk.Header{Key: HeaderAttempts, Value: []byte(strconv.Itoa(d.f.attempt))},
			sdk.Header{Key: HeaderLastError, Value: []byte(d.f.lastErr)},
		)
		recs[i] = sdk.Record{Topic: topic, Partition: sdk.PartitionHash, Hash: hashBytes(r.Key, d.offset), Key: r.Key, Value: r.Value, Tags: r.Tags, Headers: hs}
	}
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	res, err := s.svc.opts.Producer.SendRecords(ctx, cluster, recs)
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, d := range dead {
		rerr := err
		if rerr == nil {
			rerr = res[i].Err
		}
		if rerr != nil {
			s.svc.logger.Warn("dead-lettering; will retry", "group", s.group, "topic", s.topic, "dlq", topic, "error", rerr)
			return // still dead: tried again on the next tick
		}
		q := s.qids[qkey(d.topic, d.qid)]
		if q == nil || q.out[d.offset] != d.f {
			continue
		}
		delete(q.out, d.offset)
		q.removePending(d.offset)
		s.svc.metrics.inFlight.WithLabelValues(s.group, d.topic).Dec()
		s.svc.metrics.deadLettered.WithLabelValues(s.group, d.topic).Inc()
	}
	s.notifyLocked()
}

func hashBytes(b []byte, n int64) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	if b == nil {
		h ^= uint64(n)
		h *= 1099511628211
	}
	return h
}

// commit commits every qid whose commit point moved.
func (s *session) commit(ctx context.Context) {
	s.mu.Lock()
	var offs []sdk.Offset
	for _, q := range s.qids {
		if p := q.commitPoint(); q.dirty && p >= 0 && p != q.committed && !q.revoking {
			offs = append(offs, sdk.Offset{Topic: q.topic, Qid: q.qid, Offset: p})
		}
	}
	s.mu.Unlock()
	if len(offs) == 0 {
		// Never a commit of nothing: a plugin takes that for the
		// release commit of a revocation (sdk.Consumer.Commit).
		return
	}
	s.mu.Lock()
	s.lastCommit = s.svc.opts.Now()
	s.mu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.c.Commit(cctx, offs); err != nil {
		if sdk.CodeOf(err) != sdk.CodeNotFound {
			s.svc.logger.Log(ctx, streamLossLevel(err), "consume commit", "group", s.group, "topic", s.topic, "error", err)
		}
		return
	}
	s.mu.Lock()
	for _, o := range offs {
		if q := s.qids[qkey(o.Topic, o.Qid)]; q != nil {
			q.committed = o.Offset
			q.dirty = q.commitPoint() != o.Offset
		}
	}
	s.mu.Unlock()
}

func (s *session) String() string { return fmt.Sprintf("%s/%s/%s", s.cluster, s.group, s.topic) }
