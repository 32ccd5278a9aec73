package consume

import (
	"context"
	"time"

	"github.com/mqgate/mqgate/sdk"
)

// A cursor is seed 004's batch-id API over a session: every fetch_new is a
// new batch with the next id (1, 2, ...; info says 0 and 0 before the
// first); its messages are held, exempt from the ack timeout, until a
// batch at or after it is acked; fetch_old serves an unacked batch again,
// the same messages.
//
// A cursor belongs to its session and ends with it: a session that closes
// gives its messages back to the group, so its batches mean nothing after
// it, and the next fetch_new opens a new session with a cursor that counts
// from 1 again. Only fetch_new opens a session (and so a cursor); info,
// fetch_old and ack on a group and topic with no session here answer as a
// cursor before its first batch, and keep nothing. So cursors are bounded
// as sessions are: consume.max_sessions, and the principals' quotas.
type cursor struct {
	mu           chanMutex
	acked, sent  int64
	batches      map[int64][]Message
	group, topic string
}

// chanMutex is a mutex a waiting caller can give up on with its context.
type chanMutex chan struct{}

func (m chanMutex) lock(ctx context.Context) error {
	select {
	case m <- struct{}{}:
		return nil
	case <-ctx.Done():
		return sdk.Errorf(sdk.CodeTimeout, "waiting for another call on the same batch cursor: %v", ctx.Err())
	}
}

func (m chanMutex) unlock() { <-m }

// firstWait is how long fetch_new waits for a first message; what else is
// ready then joins the batch without waiting.
const firstWait = 100 * time.Millisecond

func newCursor(group, topic string) *cursor {
	return &cursor{mu: make(chanMutex, 1), batches: map[int64][]Message{}, group: group, topic: topic}
}

// batchCursor returns the session's cursor, making it on first use.
func (ss *session) batchCursor() *cursor {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.cursor == nil {
		ss.cursor = newCursor(ss.group, ss.topic)
	}
	return ss.cursor
}

// cursor returns the cursor of (group, topic)'s session on this gateway,
// or, when it has none, a new cursor that is not kept.
func (s *Service) cursor(group, topic string) (*cursor, error) {
	ss, err := s.existing(group, topic)
	if err != nil {
		return nil, err
	}
	if ss == nil {
		return newCursor(group, topic), nil
	}
	return ss.batchCursor(), nil
}

// BatchInfo reports the cursor's acked and sent batch ids.
func (s *Service) BatchInfo(ctx context.Context, group, topic string) (BatchInfo, error) {
	c, err := s.cursor(group, topic)
	if err != nil {
		return BatchInfo{}, err
	}
	if err := c.mu.lock(ctx); err != nil {
		return BatchInfo{}, err
	}
	defer c.mu.unlock()
	return BatchInfo{AckedBatchID: c.acked, SentBatchID: c.sent}, nil
}

// FetchNew acks ackID first (when given), then returns the next batch.
func (s *Service) FetchNew(ctx context.Context, group, topic string, size int, ackID *int64) (int64, []Message, error) {
	if size < 1 {
		return 0, nil, sdk.Errorf(sdk.CodeIllegal, "batch_size must be at least 1, got %d", size)
	}
	size = min(size, s.opts.MaxBatch)
	ss, err := s.session(ctx, group, topic)
	if err != nil {
		return 0, nil, err
	}
	c := ss.batchCursor()
	if err := c.mu.lock(ctx); err != nil {
		return 0, nil, err
	}
	defer c.mu.unlock()
	if ackID != nil {
		if err := s.ackUpTo(ctx, c, *ackID, "ack_batch_id"); err != nil {
			return 0, nil, err
		}
	}
	var msgs []Message
	wait := firstWait
	for len(msgs) < size {
		b, err := ss.pull(ctx, size-len(msgs), wait, true, s.stopWaiting)
		if err != nil {
			return 0, nil, err
		}
		if len(b.Messages) == 0 {
			break
		}
		msgs = append(msgs, b.Messages...)
		wait = 0
	}
	c.sent++
	c.batches[c.sent] = msgs
	s.metrics.delivered.WithLabelValues(group, topic).Add(float64(len(msgs)))
	return c.sent, msgs, nil
}

// FetchOld returns an unacked batch again.
func (s *Service) FetchOld(ctx context.Context, group, topic string, id int64) ([]Message, error) {
	c, err := s.cursor(group, topic)
	if err != nil {
		return nil, err
	}
	if err := c.mu.lock(ctx); err != nil {
		return nil, err
	}
	defer c.mu.unlock()
	if id <= c.acked || id > c.sent {
		return nil, sdk.Errorf(sdk.CodeIllegal, "old_batch_id %d is out of range: it must be greater than acked_batch_id %d and at most sent_batch_id %d", id, c.acked, c.sent)
	}
	return c.batches[id], nil
}

// AckBatch acks every batch up to id.
func (s *Service) AckBatch(ctx context.Context, group, topic string, id int64) (int64, error) {
	c, err := s.cursor(group, topic)
	if err != nil {
		return 0, err
	}
	if err := c.mu.lock(ctx); err != nil {
		return 0, err
	}
	defer c.mu.unlock()
	if err := s.ackUpTo(ctx, c, id, "ack_batch_id"); err != nil {
		return 0, err
	}
	return c.acked, nil
}

// ackUpTo acks batches acked+1..id; c.mu is held.
func (s *Service) ackUpTo(ctx context.Context, c *cursor, id int64, field string) error {
	if id < c.acked || id > c.sent {
		return sdk.Errorf(sdk.CodeIllegal, "%s %d is out of range: it must be at least acked_batch_id %d and at most sent_batch_id %d", field, id, c.acked, c.sent)
	}
	byQid := map[string][]int64{}
	var order []string
	for b := c.acked + 1; b <= id; b++ {
		for _, m := range c.batches[b] {
			if _, ok := byQid[m.Qid]; !ok {
				order = append(order, m.Qid)
			}
			byQid[m.Qid] = append(byQid[m.Qid], m.Offset)
		}
	}
	for _, qid := range order {
		err := s.Ack(ctx, []Ack{{Group: c.group, Topic: c.topic, Qid: qid, Success: byQid[qid]}})
		if err != nil && sdk.CodeOf(err) != sdk.CodeNotFound && sdk.CodeOf(err) != sdk.CodeIllegal {
			return err
		}
		// A qid that moved to another gateway (19), or messages already
		// given up (11): the new owner delivers them again, nothing is lost.
	}
	for b := c.acked + 1; b <= id; b++ {
		delete(c.batches, b)
	}
	c.acked = id
	return nil
}
