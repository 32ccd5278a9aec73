package thriftapi

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sync/semaphore"
)

// A Thrift request is read whole before its handler runs: a frame into a
// buffer that grows as it arrives, or, unframed, field by field. What one
// request holds is bounded by MaxRequestBytes; what all requests of a
// server hold at once by MaxRequestBytesInFlight. A connection is charged
// for the bytes it reads from its socket as they arrive, never for a
// declared size, and the charge is returned once the call is answered.
// Thrift has no way to answer a call that has not been read, so a read
// that finds no room within requestBudgetWait ends the connection; the
// client reconnects and sends again, as after any broken connection.

// requestBudgetWait is the longest a read waits for room in
// MaxRequestBytesInFlight before its connection is closed.
const requestBudgetWait = time.Second

// errBudgetFull ends a connection whose request found no room.
var errBudgetFull = errors.New("requests in flight hold thrift.max_request_bytes_in_flight")

// requestBudget is a server's bound on request bytes in memory.
type requestBudget struct {
	sem   *semaphore.Weighted
	limit int64
	m     *thriftMetrics
}

func newRequestBudget(limit int64, m *thriftMetrics) *requestBudget {
	return &requestBudget{sem: semaphore.NewWeighted(limit), limit: limit, m: m}
}

// requestCharge is what one connection's current request holds.
type requestCharge struct {
	budget *requestBudget
	n      int64
}

// grow charges n more bytes, waiting at most requestBudgetWait for room.
func (ch *requestCharge) grow(n int64) error {
	b := ch.budget
	if !b.sem.TryAcquire(n) {
		ctx, cancel := context.WithTimeout(context.Background(), requestBudgetWait)
		err := b.sem.Acquire(ctx, n)
		cancel()
		if err != nil {
			b.m.requestsRefused.Inc()
			return fmt.Errorf("%w (%d bytes)", errBudgetFull, b.limit)
		}
	}
	ch.n += n
	b.m.requestBytesInFlight.Add(float64(n))
	return nil
}

// release returns everything ch holds.
func (ch *requestCharge) release() {
	if ch.n == 0 {
		return
	}
	ch.budget.sem.Release(ch.n)
	ch.budget.m.requestBytesInFlight.Sub(float64(ch.n))
	ch.n = 0
}
