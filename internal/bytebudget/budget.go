// Package bytebudget bounds the bytes that requests of a server hold in
// memory together. A request is charged as its bytes arrive, never for a
// size it declares, waits a bounded time for room, and gives back what it
// holds once it has been answered. The HTTP and Thrift frontends each
// keep one.
package bytebudget

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"
)

// Budget is a server's bound on request bytes in memory.
type Budget struct {
	sem   *semaphore.Weighted
	limit int64
	wait  time.Duration
	// held follows the bytes charged; refused counts the charges that
	// found no room.
	held    prometheus.Gauge
	refused prometheus.Counter
}

// New returns a budget of limit bytes whose charges wait at most wait for
// room. held and refused are the server's metrics for it.
func New(limit int64, wait time.Duration, held prometheus.Gauge, refused prometheus.Counter) *Budget {
	return &Budget{sem: semaphore.NewWeighted(limit), limit: limit, wait: wait, held: held, refused: refused}
}

// Limit is the budget's size in bytes.
func (b *Budget) Limit() int64 { return b.limit }

// Charge is what one request holds of a budget. Its zero value with Budget
// set holds nothing; it is not safe for concurrent use.
type Charge struct {
	Budget *Budget
	n      int64
}

// Grow charges n more bytes, waiting for room at most the budget's wait
// and no longer than ctx. It returns ctx's error when ctx ended first,
// and ErrFull when the wait passed; either way nothing more is held.
func (c *Charge) Grow(ctx context.Context, n int64) error {
	b := c.Budget
	if !b.sem.TryAcquire(n) {
		wctx, cancel := context.WithTimeout(ctx, b.wait)
		err := b.sem.Acquire(wctx, n)
		cancel()
		if err != nil {
			b.refused.Inc()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return ErrFull
		}
	}
	c.n += n
	b.held.Add(float64(n))
	return nil
}

// TryGrow charges n more bytes if there is room for them now, without
// waiting, and reports whether it did. A refusal is not counted: it is
// for bytes a request can do without (a buffer's spare capacity, say).
func (c *Charge) TryGrow(n int64) bool {
	if !c.Budget.sem.TryAcquire(n) {
		return false
	}
	c.n += n
	c.Budget.held.Add(float64(n))
	return true
}

// Release gives back everything c holds.
func (c *Charge) Release() {
	if c.n == 0 {
		return
	}
	c.Budget.sem.Release(c.n)
	c.Budget.held.Sub(float64(c.n))
	c.n = 0
}

// ErrFull is Grow's error when no room came within the budget's wait.
var ErrFull = errFull{}

type errFull struct{}

func (errFull) Error() string { return "the request byte budget is full" }
