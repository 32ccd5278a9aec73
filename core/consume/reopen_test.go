package consume_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqgate/mqgate/core/consume"
	"github.com/mqgate/mqgate/internal/brokertest"
	"github.com/mqgate/mqgate/sdk"
)

// When a session's stream ends (a plugin restart), an idle session closes
// instead of re-opening, and its group's next pull opens a new one; a
// session with messages handed out, or used just now, re-opens and takes
// acks.
func TestIdleSessionIsNotReopenedAfterStreamEnd(t *testing.T) {
	for _, tc := range []struct {
		name     string
		ack      bool          // ack what was pulled before the stream ends
		idle     time.Duration // session time passing after the pull
		reopened bool
	}{
		{"idle: closed", true, 31 * time.Second, false},
		{"messages in flight: re-opened", false, 31 * time.Second, true},
		{"used just now: re-opened", true, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
				set := fast()
				set.SessionIdle = 5 * time.Minute
				clock := newHeldClock()
				rb := &restartingBackend{Backend: b}
				e := newEnvAt(t, rb, set, clock.Now)
				e.produce("restarted", 1, 3, "m")
				first := pull(t, e.svc, "g", "restarted", 1)
				if tc.ack {
					if err := e.svc.Ack(context.Background(), []consume.Ack{{Group: "g", Topic: "restarted", Qid: first.Qid, Success: offsets(first)}}); err != nil {
						t.Fatal(err)
					}
				}
				clock.Add(tc.idle)
				rb.last().endStream()
				if !tc.reopened {
					e.waitMetric("mqgate_consume_sessions", 0)
					if n := e.metric("mqgate_consume_sessions_not_reopened_total"); n != 1 {
						t.Errorf("mqgate_consume_sessions_not_reopened_total = %v; want 1", n)
					}
					next := pull(t, e.svc, "g", "restarted", 5)
					if len(next.Messages) == 0 || rb.opened.Load() != 2 {
						t.Fatalf("the next pull got %d messages on stream %d; want messages on a new stream (2)", len(next.Messages), rb.opened.Load())
					}
					return
				}
				rb.last().waitHandled(t)
				if n := e.metric("mqgate_consume_sessions"); n != 1 {
					t.Fatalf("%v sessions after the stream ended and re-opened; want 1", n)
				}
				if !tc.ack {
					if err := e.svc.Ack(context.Background(), []consume.Ack{{Group: "g", Topic: "restarted", Qid: first.Qid, Success: offsets(first)}}); err != nil {
						t.Fatalf("acking what was in flight across the re-open: %v", err)
					}
				}
				if rb.opened.Load() != 1 {
					t.Fatalf("%d streams opened; want the one, re-opened", rb.opened.Load())
				}
			})
		})
	}
}

// restartingBackend hands out consumers whose stream a test ends as a
// plugin restart does, re-opening it (here: going on with the same one)
// when the subscriber's ReopenIf says so, as the plugin host does.
type restartingBackend struct {
	sdk.Backend
	opened atomic.Int32
	mu     sync.Mutex
	latest *restartable
}

func (b *restartingBackend) Consume(ctx context.Context, sub sdk.Subscription) (sdk.Consumer, error) {
	c, err := b.Backend.Consume(ctx, sub)
	if err != nil {
		return nil, err
	}
	b.opened.Add(1)
	r := &restartable{Consumer: c, end: make(chan struct{}), handled: make(chan struct{})}
	b.mu.Lock()
	b.latest = r
	b.mu.Unlock()
	return r, nil
}

func (b *restartingBackend) last() *restartable {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.latest
}

type restartable struct {
	sdk.Consumer
	keep atomic.Pointer[func() bool]

	endOnce sync.Once
	end     chan struct{} // closed by endStream
	done    atomic.Bool   // the end was handled
	handled chan struct{} // closed once the end was handled
}

func (r *restartable) ReopenIf(keep func() bool) { r.keep.Store(&keep) }

// endStream ends the stream as a plugin's death does.
func (r *restartable) endStream() { r.endOnce.Do(func() { close(r.end) }) }

func (r *restartable) waitHandled(t *testing.T) {
	t.Helper()
	select {
	case <-r.handled:
	case <-time.After(30 * time.Second):
		t.Fatal("the ended stream was never polled")
	}
}

func (r *restartable) Poll(ctx context.Context, max int) (sdk.ConsumeEvent, error) {
	for {
		pctx, cancel := context.WithCancel(ctx)
		if !r.done.Load() {
			go func() {
				select {
				case <-r.end:
					cancel()
				case <-pctx.Done():
				}
			}()
		}
		ev, err := r.Consumer.Poll(pctx, max)
		cancel()
		if r.done.Load() || !closed(r.end) || ctx.Err() != nil {
			return ev, err
		}
		r.done.Store(true)
		keep := r.keep.Load()
		reopen := keep == nil || (*keep)()
		close(r.handled)
		if !reopen {
			return sdk.ConsumeEvent{}, fmt.Errorf("%w: %w", sdk.ErrStreamEnded, &sdk.Error{Code: sdk.CodeUnavailable, Msg: "plugin died; not re-opened"})
		}
		if len(ev.Records) > 0 || len(ev.Assigned) > 0 || len(ev.Revoked) > 0 {
			return ev, nil
		}
		// Re-opened: go on polling.
	}
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
