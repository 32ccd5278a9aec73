package produce

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqgate/mqgate/core/quota"
	"github.com/mqgate/mqgate/sdk"
)

// scriptedBackend is a Backend whose Produce can be held in flight and
// whose per-record outcome a test scripts.
type scriptedBackend struct {
	sdk.Backend // only Produce is called

	mu    sync.Mutex
	calls [][]sdk.Record
	hold  chan struct{} // when set, each call waits for a token
	// fail returns the error for a record on a given attempt (1-based per
	// record value), or nil.
	fail      func(r sdk.Record, attempt int) error
	callErr   func(call int) error // an error for the whole call, or nil
	attempts  map[string]int
	nextOff   int64
	callsSeen chan int // the size of each call as it starts
}

func newScripted() *scriptedBackend {
	return &scriptedBackend{attempts: map[string]int{}, callsSeen: make(chan int, 100)}
}

func (b *scriptedBackend) Produce(ctx context.Context, rs []sdk.Record) ([]sdk.ProduceResult, error) {
	b.mu.Lock()
	b.calls = append(b.calls, rs)
	n := len(b.calls)
	hold := b.hold
	b.mu.Unlock()
	b.callsSeen <- len(rs)
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if b.callErr != nil {
		if err := b.callErr(n); err != nil {
			return nil, err
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]sdk.ProduceResult, len(rs))
	for i, r := range rs {
		b.attempts[string(r.Value)]++
		if b.fail != nil {
			if err := b.fail(r, b.attempts[string(r.Value)]); err != nil {
				out[i].Err = err
				continue
			}
		}
		out[i] = sdk.ProduceResult{Qid: "0", Offset: b.nextOff}
		b.nextOff++
	}
	return out, nil
}

func (b *scriptedBackend) callCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.calls)
}

func msg(v string) []Message { return []Message{{Value: []byte(v), Partition: sdk.PartitionRandom}} }

func newTestProducer(b sdk.Backend, o Options) *Producer {
	if o.RetryBackoff == 0 {
		o.RetryBackoff = time.Millisecond
	}
	return NewProducer(map[string]sdk.Backend{"c": b}, o)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// With a linger of an hour, a lone request that waited for it would hang
// the test: it must go at once.
func TestLoneRequestIsNotLingered(t *testing.T) {
	b := newScripted()
	p := newTestProducer(b, Options{Linger: time.Hour})
	res, err := p.Send(ctxT(t), "c", "t", msg("only"))
	if err != nil || len(res) != 1 || res[0].Err != nil {
		t.Fatalf("Send = %+v, %v", res, err)
	}
}

// While a call is in flight, concurrent sends gather into one call, and
// each caller gets its own results back.
func TestConcurrentSendsShareACall(t *testing.T) {
	b := newScripted()
	b.hold = make(chan struct{})
	p := newTestProducer(b, Options{Linger: time.Hour})
	ctx := ctxT(t)

	first := make(chan error, 1)
	go func() { _, err := p.Send(ctx, "c", "t", msg("first")); first <- err }()
	<-b.callsSeen // the first call is in flight and held

	const n = 10
	type out struct {
		v   string
		res []sdk.ProduceResult
		err error
	}
	outs := make(chan out, n)
	for i := range n {
		v := string(rune('a' + i))
		go func() {
			res, err := p.Send(ctx, "c", "t", []Message{{Value: []byte(v)}, {Value: []byte(v + v)}})
			outs <- out{v, res, err}
		}()
	}
	// Wait until all ten are pending behind the held call.
	for {
		p.batchers["c"].mu.Lock()
		pending := len(p.batchers["c"].pending)
		p.batchers["c"].mu.Unlock()
		if pending == n {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("only %d of %d requests queued", pending, n)
		}
		time.Sleep(time.Millisecond)
	}
	close(b.hold) // the first call answers; the cluster is idle: the batch goes
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if size := <-b.callsSeen; size != 2*n {
		t.Fatalf("the second call carried %d records, want all %d pending ones", size, 2*n)
	}
	// Each caller's two records were produced in order in that call.
	b.mu.Lock()
	batch := b.calls[1]
	b.mu.Unlock()
	pos := map[string]int64{}
	for i, r := range batch {
		pos[string(r.Value)] = int64(i)
	}
	for range n {
		o := <-outs
		if o.err != nil || len(o.res) != 2 {
			t.Fatalf("caller %s: %+v, %v", o.v, o.res, o.err)
		}
		if o.res[0].Offset != 1+pos[o.v] || o.res[1].Offset != 1+pos[o.v+o.v] {
			t.Fatalf("caller %s got offsets %d,%d; its records were at %d,%d of the shared call",
				o.v, o.res[0].Offset, o.res[1].Offset, pos[o.v], pos[o.v+o.v])
		}
	}
	if b.callCount() != 2 {
		t.Fatalf("%d plugin calls for 11 requests, want 2", b.callCount())
	}
}

// heldBackend holds each Produce call until its context ends, and hands
// the test that context.
type heldBackend struct {
	sdk.Backend // only Produce is called
	calls       chan context.Context
}

func (b *heldBackend) Produce(ctx context.Context, rs []sdk.Record) ([]sdk.ProduceResult, error) {
	b.calls <- ctx
	<-ctx.Done()
	return nil, ctx.Err()
}

// A call shared by several callers lasts until the latest of their
// deadlines, goes on when one of them gives up, and ends once all have.
func TestSharedCallEndsWhenEveryCallerGivesUp(t *testing.T) {
	b := &heldBackend{calls: make(chan context.Context, 10)}
	bt := newBatcher(b, time.Hour, 100, 1<<20, func(int) {})
	rec := []sdk.Record{{Topic: "t", Value: []byte("v")}}

	firstCtx, endFirst := context.WithCancel(ctxT(t))
	first := make(chan error, 1)
	go func() { _, _, err := bt.send(firstCtx, rec); first <- err }()
	<-b.calls // in flight: what comes next waits for it

	now := time.Now()
	deadlines := []time.Time{now.Add(time.Hour), now.Add(2 * time.Hour)}
	cancels := make([]context.CancelFunc, len(deadlines))
	errs := make([]chan error, len(deadlines))
	for i, d := range deadlines {
		ctx, cancel := context.WithDeadline(context.Background(), d)
		t.Cleanup(cancel)
		cancels[i], errs[i] = cancel, make(chan error, 1)
		go func() { _, _, err := bt.send(ctx, rec); errs[i] <- err }()
	}
	for {
		bt.mu.Lock()
		pending := len(bt.pending)
		bt.mu.Unlock()
		if pending == len(deadlines) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	endFirst() // the cluster is idle: the two go in one call
	if err := <-first; err == nil {
		t.Fatal("the first call answered though its caller gave up")
	}
	shared := <-b.calls
	if d, ok := shared.Deadline(); !ok || !d.Equal(deadlines[1]) {
		t.Fatalf("the shared call's deadline is %v (%v); want the latest caller's, %v", d, ok, deadlines[1])
	}

	cancels[0]()
	if err := <-errs[0]; err != context.Canceled {
		t.Fatalf("the caller who gave up got %v; want %v", err, context.Canceled)
	}
	if err := shared.Err(); err != nil {
		t.Fatalf("the shared call ended (%v) though one of its callers still waits", err)
	}
	cancels[1]()
	if err := <-errs[1]; err != context.Canceled {
		t.Fatalf("the second caller got %v; want %v", err, context.Canceled)
	}
	select {
	case <-shared.Done():
	case <-ctxT(t).Done():
		t.Fatal("the shared call goes on after every caller gave up")
	}
}

// A batch that reaches max_batch_messages goes without waiting for the
// linger or the call in flight.
func TestFullBatchGoesAtOnce(t *testing.T) {
	b := newScripted()
	b.hold = make(chan struct{})
	p := newTestProducer(b, Options{Linger: time.Hour, MaxBatchMessages: 4})
	ctx := ctxT(t)
	go p.Send(ctx, "c", "t", msg("held"))
	<-b.callsSeen
	for i := range 5 {
		go p.Send(ctx, "c", "t", msg(string(rune('a'+i))))
	}
	// Four fit a batch; the fifth finds it full and sends it.
	if size := <-b.callsSeen; size != 4 {
		t.Fatalf("a full batch went with %d records, want 4", size)
	}
	close(b.hold)
}

func TestRetriesRetriableFailures(t *testing.T) {
	b := newScripted()
	b.fail = func(r sdk.Record, attempt int) error {
		if string(r.Value) == "flaky" && attempt <= 2 {
			return sdk.Errorf(sdk.CodeUnavailable, "leader moved")
		}
		return nil
	}
	p := newTestProducer(b, Options{})
	res, err := p.Send(ctxT(t), "c", "t", []Message{{Value: []byte("steady")}, {Value: []byte("flaky")}})
	if err != nil || res[0].Err != nil || res[1].Err != nil {
		t.Fatalf("Send = %+v, %v; want both produced after retries", res, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.calls) != 3 || len(b.calls[1]) != 1 || len(b.calls[2]) != 1 || b.attempts["steady"] != 1 {
		t.Fatalf("calls %d (sizes %d, ...), steady sent %d times: only the failed record may be resent", len(b.calls), len(b.calls[0]), b.attempts["steady"])
	}
}

func TestNoRetryOnErrorsThatCannotSucceed(t *testing.T) {
	for _, code := range []sdk.Code{sdk.CodeIllegal, sdk.CodeTopicNotExist, sdk.CodeTooLarge, sdk.CodeNotAllowed} {
		b := newScripted()
		b.fail = func(sdk.Record, int) error { return sdk.Errorf(code, "no") }
		p := newTestProducer(b, Options{})
		res, err := p.Send(ctxT(t), "c", "t", msg("x"))
		if err != nil || sdk.CodeOf(res[0].Err) != code || b.callCount() != 1 {
			t.Fatalf("code %d: result %v, err %v, %d calls; want the code after one call", code, res[0].Err, err, b.callCount())
		}
	}
}

// Retries stop when the request's deadline leaves no room; the answer is
// the last error's code, also when the deadline cuts a retry short.
func TestRetriesStopAtTheDeadline(t *testing.T) {
	b := &cutShort{}
	p := newTestProducer(b, Options{RetryBackoff: 5 * time.Millisecond, RetryBackoffMax: 5 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	res, err := p.Send(ctx, "c", "t", msg("x"))
	if err != nil || sdk.CodeOf(res[0].Err) != sdk.CodeUnavailable || !strings.Contains(res[0].Err.Error(), "restarting") {
		t.Fatalf("Send = %v, %v; want the record to carry the last error (code 17)", res, err)
	}
	if n := b.calls.Load(); n != 3 {
		t.Fatalf("%d calls; want 2 failed ones and the retry the deadline cut", n)
	}
}

// cutShort is a backend whose first two Produce calls fail as a restarting
// plugin does, and whose third waits for the caller to give up.
type cutShort struct {
	sdk.Backend // only Produce is called
	calls       atomic.Int32
}

func (b *cutShort) Produce(ctx context.Context, _ []sdk.Record) ([]sdk.ProduceResult, error) {
	if b.calls.Add(1) <= 2 {
		return nil, sdk.Errorf(sdk.CodeUnavailable, "plugin restarting")
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestRateLimit(t *testing.T) {
	b := newScripted()
	p := newTestProducer(b, Options{Limits: map[string]RateLimit{"limited": {PerSecond: 1, Burst: 10}}})
	ctx := ctxT(t)
	if _, err := p.Send(ctx, "c", "limited", make([]Message, 10)); err != nil {
		t.Fatalf("the burst was refused: %v", err)
	}
	// The bucket refills a message a second: however slow this machine,
	// requests sent one after the other soon outrun it.
	accepted := 1
	var err error
	for {
		if _, err = p.Send(ctx, "c", "limited", make([]Message, 2)); err != nil {
			break
		}
		accepted++
	}
	if sdk.CodeOf(err) != sdk.CodeRateLimited || !strings.Contains(err.Error(), "topics.limited.rate_limit") {
		t.Fatalf("over the limit: %v, want code 15 naming topics.limited.rate_limit", err)
	}
	// Two messages at one a second: a client may try again within 2 s.
	if secs, ok := quota.RetryAfterSeconds(err); !ok || secs < 1 || secs > 2 {
		t.Fatalf("over the limit: Retry-After %d s (%v); want 1 or 2", secs, ok)
	}
	_, err = p.Send(ctx, "c", "limited", make([]Message, 11))
	if sdk.CodeOf(err) != sdk.CodeRateLimited || !strings.Contains(err.Error(), "burst of 10") {
		t.Fatalf("more than the burst: %v, want code 15 naming the burst", err)
	}
	if _, err := p.Send(ctx, "c", "free", make([]Message, 100)); err != nil {
		t.Fatalf("a topic without a limit was limited: %v", err)
	}
	if b.callCount() != accepted+1 {
		t.Fatalf("%d plugin calls for %d accepted requests; refused requests must not reach the backend", b.callCount(), accepted+1)
	}
}

// What was acknowledged stays acknowledged when a retry of the rest fails
// whole: reporting it failed would make the client send it again.
func TestAcknowledgedRecordsSurviveAFailedRetry(t *testing.T) {
	b := newScripted()
	b.fail = func(r sdk.Record, attempt int) error {
		if string(r.Value) == "b" {
			return sdk.Errorf(sdk.CodeUnavailable, "leader moved")
		}
		return nil
	}
	b.callErr = func(call int) error {
		if call >= 2 {
			return sdk.Errorf(sdk.CodeTopicNotExist, "topic t was deleted")
		}
		return nil
	}
	p := newTestProducer(b, Options{})
	res, err := p.Send(ctxT(t), "c", "t", []Message{{Value: []byte("a")}, {Value: []byte("b")}})
	if err != nil {
		t.Fatalf("Send = %v; want per-record results", err)
	}
	if res[0].Err != nil || res[0].Offset != 0 {
		t.Fatalf("record a was acknowledged on the first attempt, but reads %+v", res[0])
	}
	if sdk.CodeOf(res[1].Err) != sdk.CodeTopicNotExist {
		t.Fatalf("record b = %+v, want the retry's error (code 14)", res[1])
	}
}

// A shared call refused whole for one caller's records is retried per
// caller, so the other callers get their own results.
func TestWholeCallRefusalIsNotSharedWithNeighbours(t *testing.T) {
	b := newScripted()
	b.hold = make(chan struct{})
	b.callErr = func(int) error { return nil }
	p := newTestProducer(b, Options{Linger: time.Hour})
	b.callErr = func(call int) error {
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, r := range b.calls[call-1] {
			if string(r.Value) == "poison" {
				return sdk.Errorf(sdk.CodeIllegal, "record refused")
			}
		}
		return nil
	}
	ctx := ctxT(t)
	go p.Send(ctx, "c", "t", msg("first")) // holds the cluster busy
	<-b.callsSeen
	type out struct {
		res []sdk.ProduceResult
		err error
	}
	good, bad := make(chan out, 1), make(chan out, 1)
	released := make(chan bool, 1)
	go func() {
		r, rel, err := p.SendReleasing(ctx, "c", "t", msg("fine"))
		released <- rel
		good <- out{r, err}
	}()
	go func() { r, err := p.Send(ctx, "c", "t", msg("poison")); bad <- out{r, err} }()
	for {
		p.batchers["c"].mu.Lock()
		n := len(p.batchers["c"].pending)
		p.batchers["c"].mu.Unlock()
		if n == 2 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(b.hold) // both go in one shared call, which is refused whole
	g, x := <-good, <-bad
	if g.err != nil || g.res[0].Err != nil {
		t.Fatalf("the good request got %+v, %v: its neighbour's refusal", g.res, g.err)
	}
	if sdk.CodeOf(x.err) != sdk.CodeIllegal {
		t.Fatalf("the poisoned request got %+v, %v; want code 11", x.res, x.err)
	}
	// The call refused whole may have left the good request's records
	// with a backend in the gateway's process: they are not released.
	if <-released {
		t.Error("the good request's messages were released after a call that carried them was refused whole")
	}
}

// SendReleasing says the messages' bytes are free to reuse only when every
// call that carried them returned without failing whole: a backend in the
// gateway's process may still hold them after a call that failed whole,
// even when a retry then got every record through.
func TestSendReleasingSaysWhenNothingHoldsTheMessages(t *testing.T) {
	for _, tc := range []struct {
		name     string
		backend  func() sdk.Backend
		released bool
	}{
		{"produced", func() sdk.Backend { return newScripted() }, true},
		{"a record refused", func() sdk.Backend {
			b := newScripted()
			b.fail = func(sdk.Record, int) error { return sdk.Errorf(sdk.CodeIllegal, "no") }
			return b
		}, true},
		{"a record retried", func() sdk.Backend {
			b := newScripted()
			b.fail = func(_ sdk.Record, attempt int) error {
				if attempt == 1 {
					return sdk.Errorf(sdk.CodeUnavailable, "leader moved")
				}
				return nil
			}
			return b
		}, true},
		{"a whole call failed, then a retry got through", func() sdk.Backend {
			b := newScripted()
			b.callErr = func(call int) error {
				if call == 1 {
					return sdk.Errorf(sdk.CodeUnavailable, "plugin restarting")
				}
				return nil
			}
			return b
		}, false},
		{"the whole call refused", func() sdk.Backend {
			b := newScripted()
			b.callErr = func(int) error { return sdk.Errorf(sdk.CodeIllegal, "no") }
			return b
		}, false},
		{"the deadline cut a retry short", func() sdk.Backend { return &cutShort{} }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestProducer(tc.backend(), Options{})
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_, released, _ := p.SendReleasing(ctx, "c", "t", msg("x"))
			if released != tc.released {
				t.Errorf("released %t; want %t", released, tc.released)
			}
		})
	}
}

// A caller that gives up while its call is under way leaves its messages
// with the backend: they are not released.
func TestSendReleasingNotWhenTheCallerGaveUp(t *testing.T) {
	b := &heldBackend{calls: make(chan context.Context, 1)}
	p := newTestProducer(b, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-b.calls
		cancel()
	}()
	if _, released, err := p.SendReleasing(ctx, "c", "t", msg("x")); err == nil || released {
		t.Fatalf("SendReleasing = released %t, %v; want an error and the messages held", released, err)
	}
}
