package thriftapi

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mqgate/mqgate/internal/bytebudget"
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

// chargeRead charges n bytes read to c; past the budget's wait the
// connection ends with errBudgetFull naming the limit.
func chargeRead(c *bytebudget.Charge, n int) error {
	if err := c.Grow(context.Background(), int64(n)); err != nil {
		return fmt.Errorf("%w (%d bytes)", errBudgetFull, c.Budget.Limit())
	}
	return nil
}
