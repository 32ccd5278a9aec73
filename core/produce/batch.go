package produce

import (
	"context"
	"sync"
	"time"

	"github.com/mqgate/mqgate/sdk"
)

// batcher coalesces concurrent sends to one cluster into shared plugin
// calls. A request to an idle cluster goes at once; while a call is in
// flight, requests gather for at most linger, or until a batch holds
// maxMessages or maxBytes, and go together. So a lone request is never
// slowed, and under load the plugin sees few large calls.
type batcher struct {
	backend     sdk.Backend
	linger      time.Duration
	maxMessages int
	maxBytes    int
	observe     func(batchRecords int) // metrics hook

	mu       sync.Mutex
	pending  []*batchRequest
	records  int // in pending
	bytes    int // in pending
	inflight int // plugin calls under way
	timer    *time.Timer
}

// batchRequest is one caller's records waiting for a shared call.
type batchRequest struct {
	ctx     context.Context
	records []sdk.Record
	done    chan batchResult // buffered: the flusher never blocks on it

	// Guarded by the batcher's mu: the call that carries the records,
	// once it has started with more than one request, and whether the
	// caller gave up before that.
	call   *sharedCall
	gaveUp bool

	// held is set, before the records go again alone, when a shared call
	// that carried them was refused whole: its backend may still hold
	// them.
	held bool
}

// sharedCall is a plugin call made for more than one request. It lasts
// until the latest of their deadlines, and ends early only once every
// caller has given up: the callers say so (giveUp), which costs nothing
// while they wait, where a context.AfterFunc on each caller's context
// cost four allocations a request.
type sharedCall struct {
	waiting int // callers still waiting; guarded by the batcher's mu
	cancel  context.CancelFunc
}

type batchResult struct {
	results []sdk.ProduceResult
	err     error
	// held is set when a call that carried the records failed whole
	// before the one these results come from: that call's backend may
	// still hold them (see Producer.SendReleasing).
	held bool
}

func newBatcher(b sdk.Backend, linger time.Duration, maxMessages, maxBytes int, observe func(int)) *batcher {
	return &batcher{backend: b, linger: linger, maxMessages: maxMessages, maxBytes: maxBytes, observe: observe}
}

// send produces records, sharing a plugin call with concurrent senders.
// It returns when the call that carried them answers or ctx ends; in the
// latter case the records may still be produced. released says that every
// call that carried them returned without failing whole (see
// Producer.SendReleasing). A call made in the
// caller's own goroutine (a lone or big request) relies on the backend to
// honour ctx, as the plugin host and the plugin client do.
func (b *batcher) send(ctx context.Context, records []sdk.Record) (results []sdk.ProduceResult, released bool, err error) {
	size := recordsBytes(records)
	req := &batchRequest{ctx: ctx, records: records, done: make(chan batchResult, 1)}

	b.mu.Lock()
	switch {
	case len(records) >= b.maxMessages || size >= b.maxBytes, b.inflight == 0 && len(b.pending) == 0:
		// Big enough alone (it would only push others out of a batch),
		// or the cluster is idle: the caller makes the call itself,
		// which spares a goroutine and a hand-over each way.
		b.inflight++
		b.mu.Unlock()
		b.call([]*batchRequest{req})
	default:
		if b.records+len(records) > b.maxMessages || b.bytes+size > b.maxBytes {
			b.flushLocked() // the batch is full without this one
		}
		b.pending = append(b.pending, req)
		b.records += len(records)
		b.bytes += size
		if b.timer == nil {
			b.timer = time.AfterFunc(b.linger, b.flushOnTimer)
		}
		b.mu.Unlock()
	}

	select {
	case r := <-req.done:
		return r.results, r.err == nil && !r.held, r.err
	case <-ctx.Done():
		b.giveUp(req)
		return nil, false, ctx.Err()
	}
}

// giveUp records that req's caller stopped waiting: a request not yet in
// a call will not be sent, and a shared call whose callers have all gone
// is cancelled.
func (b *batcher) giveUp(req *batchRequest) {
	b.mu.Lock()
	c := req.call
	req.gaveUp = true
	last := false
	if c != nil {
		c.waiting--
		last = c.waiting == 0
	}
	b.mu.Unlock()
	if last {
		c.cancel()
	}
}

func (b *batcher) flushOnTimer() {
	b.mu.Lock()
	b.flushLocked()
	b.mu.Unlock()
}

// flushLocked sends what is pending as one call. b.mu must be held.
func (b *batcher) flushLocked() {
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	if len(b.pending) == 0 {
		return
	}
	reqs := b.pending
	b.pending, b.records, b.bytes = nil, 0, 0
	b.inflight++
	go b.call(reqs)
}

// call makes one plugin call for reqs and hands each its results.
func (b *batcher) call(reqs []*batchRequest) {
	defer func() {
		b.mu.Lock()
		b.inflight--
		if b.inflight == 0 {
			b.flushLocked() // the cluster is idle: what waits goes now
		}
		b.mu.Unlock()
	}()
	// Requests whose callers gave up before the call started are dropped.
	ctx, cancel, live := b.callContext(reqs)
	defer cancel()
	if len(live) == 0 {
		return
	}
	records := live[0].records
	if len(live) > 1 {
		n := 0
		for _, r := range live {
			n += len(r.records)
		}
		records = make([]sdk.Record, 0, n)
		for _, r := range live {
			records = append(records, r.records...)
		}
	}
	b.observe(len(records))
	results, err := b.backend.Produce(ctx, records)
	if err == nil && len(results) != len(records) {
		err = sdk.Errorf(sdk.CodeInternal, "backend returned %d results for %d records", len(results), len(records))
	}
	if err != nil && len(live) > 1 && !sdk.CodeOf(err).Retriable() {
		// A refusal of the whole call may be caused by one caller's
		// records; each request goes again alone so it gets its own
		// verdict, not its neighbour's.
		b.mu.Lock()
		b.inflight += len(live)
		b.mu.Unlock()
		for _, r := range live {
			r.held = true
			go b.call([]*batchRequest{r})
		}
		return
	}
	at := 0
	for _, r := range live {
		if err != nil {
			r.done <- batchResult{err: err}
			continue
		}
		r.done <- batchResult{results: results[at : at+len(r.records) : at+len(r.records)], held: r.held}
		at += len(r.records)
	}
}

// callContext picks the requests of reqs whose callers still wait, live,
// and makes the context of their call: a lone request's own, or for a
// shared call one that lasts until the latest of their deadlines and ends
// early once every caller has given up (giveUp).
func (b *batcher) callContext(reqs []*batchRequest) (ctx context.Context, cancel context.CancelFunc, live []*batchRequest) {
	b.mu.Lock()
	defer b.mu.Unlock()
	live = reqs[:0]
	for _, r := range reqs {
		if !r.gaveUp && r.ctx.Err() == nil {
			live = append(live, r)
		}
	}
	switch len(live) {
	case 0:
		return nil, func() {}, nil
	case 1:
		live[0].call = nil // sent again alone after a shared call was refused
		return live[0].ctx, func() {}, live
	}
	var latest time.Time
	for _, r := range live {
		d, ok := r.ctx.Deadline()
		if !ok {
			latest = time.Time{}
			break
		}
		if d.After(latest) {
			latest = d
		}
	}
	if latest.IsZero() {
		ctx, cancel = context.WithCancel(context.Background())
	} else {
		ctx, cancel = context.WithDeadline(context.Background(), latest)
	}
	c := &sharedCall{waiting: len(live), cancel: cancel}
	for _, r := range live {
		r.call = c
	}
	return ctx, cancel, live
}

// recordsBytes is the payload size of records, as batch limits count it.
func recordsBytes(rs []sdk.Record) int {
	n := 0
	for i := range rs {
		n += len(rs[i].Key) + len(rs[i].Value) + len(rs[i].Tags)
		for _, h := range rs[i].Headers {
			n += len(h.Key) + len(h.Value)
		}
	}
	return n
}
