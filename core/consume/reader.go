package consume

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/mqgate/mqgate/sdk"
)

// ReaderOptions tune a Reader.
type ReaderOptions struct {
	// Cluster to consume from; "" for the cluster the topic is routed to.
	Cluster string
	// CommitInterval overrides the group's commit timing for the session
	// the reader opens (see Settings.CommitInterval).
	CommitInterval time.Duration
	// OnRevoke, when set, is told which qids the session is giving up,
	// before it waits for their handed-out messages to be settled. It runs
	// on the session's goroutine and must not block.
	OnRevoke func(qids []string)
}

// Reader is an in-process client of one (cluster, group, topic) session,
// for HTTP push and sinks. What it pulls is held: exempt from the ack
// timeout, because the reader retries on its own, and settled by Ack,
// DeadLetter or Release. While a Reader is open its session does not close
// for idleness.
type Reader struct {
	svc  *Service
	key  sessionKey
	opts ReaderOptions
}

// OpenReader opens the reader of group on topic. Only one reader may be
// open per (cluster, group, topic); a second is code 11.
func (s *Service) OpenReader(group, topic string, opts ReaderOptions) (*Reader, error) {
	key, err := s.keyOf(group, topic)
	if err != nil {
		return nil, err
	}
	if opts.Cluster != "" {
		if _, ok := s.opts.Backends[opts.Cluster]; !ok {
			return nil, sdk.Errorf(sdk.CodeIllegal, "no cluster %q", opts.Cluster)
		}
		key.cluster = opts.Cluster
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.readers[key] != nil {
		return nil, sdk.Errorf(sdk.CodeIllegal, "group %s on topic %s of cluster %s already has a reader", group, topic, key.cluster)
	}
	r := &Reader{svc: s, key: key, opts: opts}
	s.readers[key] = r
	return r, nil
}

// readerOf returns the reader of ss's key, if one is open.
func (s *Service) readerOf(ss *session) *Reader {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.readers[sessionKey{ss.cluster, ss.group, ss.topic}]
}

// Close closes the reader; its session stays until it idles out or the
// service closes, so what was acked is still committed.
func (r *Reader) Close() {
	r.svc.mu.Lock()
	defer r.svc.mu.Unlock()
	if r.svc.readers[r.key] == r {
		delete(r.svc.readers, r.key)
	}
}

// Pull waits up to wait for up to max messages of one qid, in offset order.
func (r *Reader) Pull(ctx context.Context, max int, wait time.Duration) (Batch, error) {
	max, err := r.svc.capBatch(max)
	if err != nil {
		return Batch{}, err
	}
	for range 2 {
		ss, err := r.svc.sessionOf(ctx, r.key, false)
		if err != nil {
			return Batch{}, err
		}
		b, err := ss.pull(ctx, max, wait, true, nil)
		if errors.Is(err, errSessionClosed) {
			continue // closed as this pull came: open a new one
		}
		if err == nil {
			r.svc.metrics.delivered.WithLabelValues(r.key.group, r.key.topic).Add(float64(len(b.Messages)))
		}
		return b, err
	}
	return Batch{}, errSessionClosed
}

// live returns the open session, or code 19 when there is none.
func (r *Reader) live() (*session, error) {
	r.svc.mu.Lock()
	ss := r.svc.sessions[r.key]
	r.svc.mu.Unlock()
	if ss == nil {
		return nil, sdk.Errorf(sdk.CodeNotFound, "group %s has no session on topic %s", r.key.group, r.key.topic)
	}
	return ss, nil
}

// Ack settles offsets of qid as done.
func (r *Reader) Ack(qid string, offsets ...int64) error {
	ss, err := r.live()
	if err != nil {
		return err
	}
	return ss.ack(Ack{Group: r.key.group, Topic: r.key.topic, Qid: qid, Success: offsets}, r.svc.opts.Now())
}

// DeadLetter settles one message by sending it to the group's dead-letter
// topic, with attempts and reason in its mqgate-dlq-* headers. It is
// counted as acked once the dead-letter topic has it.
func (r *Reader) DeadLetter(qid string, offset int64, attempts int, reason string) error {
	ss, err := r.live()
	if err != nil {
		return err
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	f, err := ss.flightLocked(qid, offset)
	if err != nil {
		return err
	}
	f.dead, f.attempt, f.lastErr, f.deadline = true, attempts, reason, time.Time{}
	ss.notifyLocked()
	return nil
}

// Release gives handed-out messages back unsettled: they are handed out
// again (first, in offset order), or, when their qid is being revoked, left
// for its next owner.
func (r *Reader) Release(qid string, offsets ...int64) error {
	ss, err := r.live()
	if err != nil {
		return err
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	q := ss.qids[qkey(ss.topic, qid)]
	for _, off := range offsets {
		f, err := ss.flightLocked(qid, off)
		if err != nil {
			return err
		}
		delete(q.out, off)
		i, _ := slices.BinarySearchFunc(q.buf, off, func(r sdk.Record, off int64) int { return int(r.Offset - off) })
		q.buf = slices.Insert(q.buf, i, f.rec)
		ss.buffered++
		ss.svc.metrics.inFlight.WithLabelValues(ss.group, ss.topic).Dec()
	}
	ss.notifyLocked()
	return nil
}

// Committed returns the offset last committed per qid the session owns.
func (r *Reader) Committed() map[string]int64 {
	out := map[string]int64{}
	ss, err := r.live()
	if err != nil {
		return out
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for _, q := range ss.qids {
		if q.committed >= 0 {
			out[q.qid] = q.committed
		}
	}
	return out
}

// flightLocked finds a handed-out, unsettled message.
func (s *session) flightLocked(qid string, off int64) (*flight, error) {
	q := s.qids[qkey(s.topic, qid)]
	if q == nil {
		return nil, sdk.Errorf(sdk.CodeNotFound, "qid %s of topic %s is not assigned to this gateway's member of group %s", qid, s.topic, s.group)
	}
	f := q.out[off]
	if f == nil || f.dead || !f.redoAt.IsZero() {
		return nil, sdk.Errorf(sdk.CodeIllegal, "offset %d of qid %s was not handed out, or is already settled", off, qid)
	}
	return f, nil
}
