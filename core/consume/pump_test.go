package consume_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mqgate/mqgate/core/consume"
	"github.com/mqgate/mqgate/internal/brokertest"
	"github.com/mqgate/mqgate/sdk"
)

// A poll whose deadline passes as its records come (the full session's
// poll of one record now and then) hands them to the session all the
// same: every message is delivered once, in order, none skipped.
func TestPollEndingWithRecordsLosesNone(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		set := fast()
		set.Buffer = 4
		late := &lateBackend{Backend: b, returned: make(chan struct{})}
		e := newEnv(t, late, set)
		e.produce("late", 1, 10, "m")
		first := pull(t, e.svc, "g", "late", 1)
		// The buffer is full; the session's next poll has a deadline,
		// and answers its record once that deadline has passed.
		select {
		case <-late.returned:
		case <-time.After(30 * time.Second):
			t.Fatal("the session made no poll with a deadline while its buffer was full")
		}
		got := offsets(first)
		ack := first
		for {
			if err := e.svc.Ack(context.Background(), []consume.Ack{{Group: "g", Topic: "late", Qid: ack.Qid, Success: offsets(ack)}}); err != nil {
				t.Fatal(err)
			}
			if len(got) >= 10 {
				break
			}
			batch, err := e.svc.Pull(context.Background(), "g", "late", 10, 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if len(batch.Messages) == 0 {
				break
			}
			got = append(got, offsets(batch)...)
			ack = batch
		}
		if want := []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}; !slices.Equal(got, want) {
			t.Fatalf("pulled offsets %v; want %v", got, want)
		}
	})
}

// lateBackend's consumers answer their first poll with a deadline that
// finds records only once the deadline has passed, records and all, as a
// plugin's answer can cross the end of the wait.
type lateBackend struct {
	sdk.Backend
	once     sync.Once
	returned chan struct{} // closed once that poll has answered
}

func (b *lateBackend) Consume(ctx context.Context, sub sdk.Subscription) (sdk.Consumer, error) {
	c, err := b.Backend.Consume(ctx, sub)
	if err != nil {
		return nil, err
	}
	return &lateConsumer{Consumer: c, b: b}, nil
}

type lateConsumer struct {
	sdk.Consumer
	b    *lateBackend
	done bool
}

func (c *lateConsumer) Poll(ctx context.Context, max int) (sdk.ConsumeEvent, error) {
	if _, ok := ctx.Deadline(); !ok || c.done {
		return c.Consumer.Poll(ctx, max)
	}
	ev, err := c.Consumer.Poll(context.WithoutCancel(ctx), max)
	if err != nil || len(ev.Records) == 0 {
		return ev, err
	}
	<-ctx.Done()
	c.done = true
	defer c.b.once.Do(func() { close(c.b.returned) })
	return ev, nil
}

// A session that nobody pulls from holds no more than its buffer (and the
// quarter it may overflow by polling now and then for assignment changes),
// however far ahead it grants the backend credits.
func TestUnpulledSessionHoldsItsBuffer(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		set := fast()
		set.Buffer = 8
		counting := &countingBackend{Backend: b, deadlinePolls: make(chan struct{}, 100)}
		e := newEnv(t, counting, set)
		e.produce("held", 2, 100, "m")
		first := pull(t, e.svc, "g", "held", 1)
		// Two polls with a deadline: the session's buffer was full twice
		// over, and it polled for assignment changes only.
		for range 2 {
			select {
			case <-counting.deadlinePolls:
			case <-time.After(30 * time.Second):
				t.Fatal("the session made no poll with a deadline while its buffer was full")
			}
		}
		counting.mu.Lock()
		received := counting.records
		counting.mu.Unlock()
		if limit := len(first.Messages) + set.Buffer + set.Buffer/4; received > limit {
			t.Fatalf("the session took %d records from the backend with %d pulled and a buffer of %d; want at most %d", received, len(first.Messages), set.Buffer, limit)
		}
	})
}

// countingBackend counts the records its consumers' polls return, and
// signals each poll with a deadline.
type countingBackend struct {
	sdk.Backend
	mu            sync.Mutex
	records       int
	deadlinePolls chan struct{}
}

func (b *countingBackend) Consume(ctx context.Context, sub sdk.Subscription) (sdk.Consumer, error) {
	c, err := b.Backend.Consume(ctx, sub)
	if err != nil {
		return nil, err
	}
	return &countingConsumer{Consumer: c, b: b}, nil
}

type countingConsumer struct {
	sdk.Consumer
	b *countingBackend
}

func (c *countingConsumer) Poll(ctx context.Context, max int) (sdk.ConsumeEvent, error) {
	ev, err := c.Consumer.Poll(ctx, max)
	c.b.mu.Lock()
	c.b.records += len(ev.Records)
	c.b.mu.Unlock()
	if _, ok := ctx.Deadline(); ok {
		select {
		case c.b.deadlinePolls <- struct{}{}:
		default:
		}
	}
	return ev, err
}
