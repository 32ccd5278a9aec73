package httpapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/mqgate/mqgate/internal/bufpool"
	"github.com/mqgate/mqgate/internal/bytebudget"
	"github.com/mqgate/mqgate/sdk"
)

// Request bodies are read into memory whole before they are decoded, so
// what they hold is bounded twice: one body by Options.MaxBodyBytes
// (http.max_body_bytes), all bodies being read or served at once by
// Options.MaxBodyBytesInFlight (http.max_body_bytes_in_flight).
//
// A body's buffer grows as its bytes arrive, never from what
// Content-Length declares alone: it starts at no more than
// initialBodyBytes and at most doubles, so it never holds more than
// twice what the client has sent plus initialBodyBytes. Every growth is
// charged to the shared budget before the memory is allocated, and the
// charge is returned when the request has been answered.
//
// Charging as bytes arrive, rather than reserving the declared length up
// front, makes the budget cost a client what it costs the gateway: a
// client declaring 64 MiB and sending 10 bytes holds initialBodyBytes
// (256 KiB) of it, not 64 MiB, so a few idle connections cannot lock every other
// client out. Many slow clients could still each hold part of the budget
// and wait for more; that never deadlocks, because a request waits for
// budget at most bodyBudgetWait and then fails, returning what it held.

// initialBodyBytes is the most a body's buffer starts with, when
// Content-Length declares at least that much. Bodies up to this size are
// read into one buffer, as before the budget existed: a produce batch of
// 100 messages of 1 KiB (about 110 KiB of JSON) is, into one of 128 KiB
// from bodyPool, where a 64 KiB start allocated 180 KB for it in two
// steps, with a copy. The price: a request whose head has arrived holds up
// to this much of the budget until its body does or http.request_timeout
// passes, so 1024 such requests fill the default 256 MiB.
const initialBodyBytes = 256 << 10

// bodyBudgetWait is the longest a request waits for room in
// http.max_body_bytes_in_flight before it is answered code 17: long
// enough for requests being produced to finish and return theirs, short
// enough that a client can retry against another gateway.
const bodyBudgetWait = time.Second

// Reasons a body is refused, as the label of
// mqgate_http_request_bodies_refused_total: the configuration key of the
// limit.
const (
	refusedTooLarge = "max_body_bytes"
	refusedInFlight = "max_body_bytes_in_flight"
)

// chargeError is the client's error for a body's charge that found no
// room in http.max_body_bytes_in_flight (code 17 naming it), or whose
// request ran out of time waiting (code 12).
func (s *Server) chargeError(err error) error {
	if errors.Is(err, bytebudget.ErrFull) {
		return sdk.Errorf(sdk.CodeUnavailable,
			"the gateway is holding its limit of request bodies in memory, http.max_body_bytes_in_flight (%d bytes); send again, here or to another gateway",
			s.bodies.Limit())
	}
	return sdk.Errorf(sdk.CodeTimeout, "waiting for room to read the request body")
}

// bodyOrAbort reads the request body as readBody does; on failure it
// answers with the error and reports false. On success the caller must
// release the charge once the body is no longer used.
func (s *Server) bodyOrAbort(ctx context.Context, c *gin.Context) ([]byte, bytebudget.Charge, bool) {
	body, charge, err := s.readBody(ctx, c)
	if err != nil {
		s.abortWithError(c, err)
		return nil, charge, false
	}
	return body, charge, true
}

// readBody reads the request body, bounded by Options.MaxBodyBytes, by
// Options.MaxBodyBytesInFlight and by ctx's deadline. On success the
// caller must release the charge once the body is no longer used; on
// failure nothing is held.
func (s *Server) readBody(ctx context.Context, c *gin.Context) ([]byte, bytebudget.Charge, error) {
	charge := bytebudget.Charge{Budget: s.bodies}
	r := c.Request
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		return nil, charge, nil
	}
	if r.ContentLength > s.opts.MaxBodyBytes {
		// Refused before a byte is read; the rest of the body is not
		// worth reading to keep the connection.
		c.Header("Connection", "close")
		s.metrics.bodiesRefused.WithLabelValues(refusedTooLarge).Inc()
		return nil, charge, s.errBodyTooLarge()
	}
	if deadline, ok := ctx.Deadline(); ok {
		// Recorders in tests do not support deadlines; a real connection does.
		if err := http.NewResponseController(c.Writer).SetReadDeadline(deadline); err != nil && !errors.Is(err, http.ErrNotSupported) {
			s.log.Debug("setting body read deadline", "err", err)
		}
	}
	body, err := readBounded(http.MaxBytesReader(c.Writer, r.Body, s.opts.MaxBodyBytes), r.ContentLength, s.opts.MaxBodyBytes,
		s.growCharge(ctx, &charge))
	if err == nil {
		return body, charge, nil
	}
	charge.Release()
	var tooLarge *http.MaxBytesError
	var coded *sdk.Error
	switch {
	case errors.As(err, &tooLarge):
		s.metrics.bodiesRefused.WithLabelValues(refusedTooLarge).Inc()
		return nil, charge, s.errBodyTooLarge()
	case errors.As(err, &coded):
		return nil, charge, err // from the budget
	case errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		return nil, charge, sdk.Errorf(sdk.CodeTimeout, "reading the request body timed out after %s (http.request_timeout)", s.opts.RequestTimeout)
	default:
		return nil, charge, sdk.Errorf(sdk.CodeIllegal, "reading the request body: %v", err)
	}
}

// growCharge is a function that adds n bytes to charge, within ctx,
// answering the client's error when there is no room.
func (s *Server) growCharge(ctx context.Context, charge *bytebudget.Charge) func(n int64) error {
	return func(n int64) error {
		if err := charge.Grow(ctx, n); err != nil {
			return s.chargeError(err)
		}
		return nil
	}
}

func (s *Server) errBodyTooLarge() error {
	return sdk.Errorf(sdk.CodeTooLarge, "request body exceeds http.max_body_bytes (%d bytes)", s.opts.MaxBodyBytes)
}

// readBounded reads r to its end. declared is the length the client
// announced, or -1 when unknown; it only sizes the buffer, which starts at
// no more than initialBodyBytes and at most doubles as bytes arrive,
// capped at declared (while the body keeps to it) and at maxBytes. grow is
// called with every increase of the buffer's capacity before it is
// allocated; its error ends the read. More than maxBytes bytes end it with
// an *http.MaxBytesError.
func readBounded(r io.Reader, declared, maxBytes int64, grow func(n int64) error) ([]byte, error) {
	size := int64(bytes512)
	if declared > 0 {
		size = min(declared, initialBodyBytes)
	}
	size = min(size, maxBytes)
	var buf []byte
	if declared > 0 && 1<<bufpool.Class(int(size)) <= maxBytes {
		// A buffer of the pool, which a produce gives back once nothing
		// holds its messages (recycleBody). Its capacity is a power of
		// two, less than twice size; all of it is charged.
		p := bodyPool.Get(int(size))
		if err := grow(int64(cap(*p))); err != nil {
			bodyPool.Put(p)
			return nil, err
		}
		buf = (*p)[:0]
	} else {
		if err := grow(size); err != nil {
			return nil, err
		}
		buf = make([]byte, 0, size)
	}
	for {
		if len(buf) == cap(buf) {
			n := int64(len(buf))
			if n >= maxBytes || n == declared {
				// Full at the limit or at what was declared: the body
				// should end here. Look for one more byte.
				b, err := readOne(r)
				switch {
				case err == io.EOF:
					return buf, nil
				case err != nil:
					return nil, err
				case b < 0:
					continue // nothing read, no error: try again
				case n >= maxBytes:
					return nil, &http.MaxBytesError{Limit: maxBytes}
				}
				declared = -1 // longer than declared: grow as if unknown
				if buf, err = growBuffer(buf, declared, maxBytes, grow); err != nil {
					return nil, err
				}
				buf = append(buf, byte(b))
				continue
			}
			var err error
			if buf, err = growBuffer(buf, declared, maxBytes, grow); err != nil {
				return nil, err
			}
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// bodyPool holds the buffers of request bodies whose handler said nothing
// holds them any more (recycleBody): making a buffer of 100 KiB afresh
// costs its clearing, a tenth of the CPU of a produce of 100 messages
// with the backend in the gateway's process.
var bodyPool bufpool.Pool

// recycleBody gives body's buffer back for another request's body. Only
// a handler that knows nothing holds body's bytes any more may call it: a
// produce whose messages the backend said it let go of, for one. Only
// buffers of the sizes readBounded takes from the pool go back (a power
// of two up to initialBodyBytes); others, grown while the body was read,
// are left to the collector rather than kept idle out of the budget.
func recycleBody(body []byte) {
	if cap(body) > initialBodyBytes {
		return
	}
	b := body[:0]
	bodyPool.Put(&b)
}

// bytes512 is the first buffer of a body of unknown length.
const bytes512 = 512

// growBuffer returns buf with its capacity doubled, capped at declared
// (when buf is below it) and at maxBytes, after charging the increase.
func growBuffer(buf []byte, declared, maxBytes int64, grow func(n int64) error) ([]byte, error) {
	old := int64(cap(buf))
	size := max(2*old, bytes512)
	if declared > old {
		size = min(size, declared)
	}
	size = min(size, maxBytes)
	if err := grow(size - old); err != nil {
		return nil, err
	}
	bigger := make([]byte, len(buf), size)
	copy(bigger, buf)
	return bigger, nil
}

// readOne reads a single byte: the byte, or -1 when the read returned
// nothing.
func readOne(r io.Reader) (int, error) {
	var b [1]byte
	n, err := r.Read(b[:])
	if n == 1 {
		return int(b[0]), nil // an error with the byte comes again on the next read
	}
	return -1, err
}
