// Package tail follows a topic of the gateway's own from its start: the
// delay cancels and the group subscriptions live in topics every gateway
// reads whole and then follows, and a gateway that writes to one waits
// until it has read its record back.
package tail

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/mqgate/mqgate/sdk"
)

// Tail is a reader's position in one topic, qid by qid. It is safe for
// concurrent use: one goroutine reads (ReadOnce), any number wait (Sync,
// WaitRead).
type Tail struct {
	b     sdk.Backend
	topic string
	// wait is how long one read waits at the broker for news; a record
	// ends the wait at once.
	wait time.Duration

	mu    sync.Mutex
	pos   map[string]int64 // qid -> next offset to read
	moved chan struct{}    // closed and replaced whenever pos moves
}

// New returns a tail of topic on b, at no position yet: the first ReadOnce
// starts at the topic's oldest records.
func New(b sdk.Backend, topic string, wait time.Duration) *Tail {
	return &Tail{b: b, topic: topic, wait: wait, pos: map[string]int64{}, moved: make(chan struct{})}
}

// ReadOnce reads every qid once, waiting up to the tail's wait for news,
// and hands what it read to apply, in offset order per qid, before it
// moves the position: whoever Sync let go finds it applied. The first call
// lists the topic's start. A qid the retention passed by (code 11) is
// listed again on the next call, which goes on from the oldest record kept.
func (t *Tail) ReadOnce(ctx context.Context, apply func([]sdk.Record)) error {
	t.mu.Lock()
	known := len(t.pos) > 0
	t.mu.Unlock()
	if !known {
		offs, err := t.b.ListOffsets(ctx, []string{t.topic}, "")
		if err != nil {
			return err
		}
		t.mu.Lock()
		for _, o := range offs {
			t.pos[o.Qid] = o.Start
		}
		// Tell the waits the positions now, not when the first read
		// answers: on an empty topic there is nothing to wait for, and
		// that read may wait at the broker.
		t.movedLocked()
		t.mu.Unlock()
	}
	t.mu.Lock()
	req := sdk.FetchRequest{MaxRecords: 1000, MaxWait: t.wait}
	for _, qid := range slices.Sorted(maps.Keys(t.pos)) {
		req.Positions = append(req.Positions, sdk.FetchPosition{Topic: t.topic, Qid: qid, Offset: t.pos[qid]})
	}
	t.mu.Unlock()
	res, err := t.b.Fetch(ctx, req)
	if err != nil {
		return err
	}
	relist := false
	next := map[string]int64{}
	for _, r := range res {
		if r.Err != nil {
			relist = relist || sdk.CodeOf(r.Err) == sdk.CodeIllegal
			err = r.Err
			continue
		}
		apply(r.Records)
		next[r.Qid] = r.NextOffset
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	maps.Copy(t.pos, next)
	if relist {
		clear(t.pos)
	}
	t.movedLocked()
	return err
}

func (t *Tail) movedLocked() {
	close(t.moved)
	t.moved = make(chan struct{})
}

// Sync returns once everything written to the topic before the call has
// been read, or ctx's error.
func (t *Tail) Sync(ctx context.Context) error {
	end, err := t.b.ListOffsets(ctx, []string{t.topic}, "")
	if err != nil {
		return err
	}
	return t.WaitRead(ctx, end)
}

// WaitRead returns once the reader has passed end, or ctx's error.
func (t *Tail) WaitRead(ctx context.Context, end []sdk.QidOffsets) error {
	for {
		t.mu.Lock()
		behind := false
		for _, o := range end {
			if p, ok := t.pos[o.Qid]; !ok || p < o.End {
				behind = true
			}
		}
		moved := t.moved
		t.mu.Unlock()
		if !behind {
			return nil
		}
		select {
		case <-moved:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
