package thriftapi

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/mqgate/mqgate/frontends/thrift/gen-go/consumer"
	"github.com/mqgate/mqgate/internal/bytebudget"
)

// minContainerLimit is the fewest list, set or map elements a request may
// declare whatever MaxBatchMessages says; properties maps need room too.
const minContainerLimit = 1 << 16

// serverConn is one client connection.
type serverConn struct {
	s    *server
	conn net.Conn
	// inFlight is true from the moment a call's message header has been
	// read until its answer has been written. Guarded by s.mu.
	inFlight bool
}

// serve answers the connection's calls one after the other until the
// client leaves, sends something that is not a valid call, or the server
// stops.
func (c *serverConn) serve() {
	defer c.conn.Close()
	s := c.s
	ctx := s.base
	var state *tls.ConnectionState
	if tc, ok := c.conn.(*tls.Conn); ok {
		st, err := c.handshake(tc)
		if err != nil {
			return
		}
		state = &st
		ctx = context.WithValue(ctx, connectionStateKey{}, state)
	}
	ctx, err := s.authenticate(ctx, c.conn, state)
	if err != nil {
		// A refused principal is in the audit log already.
		s.log.Debug("thrift connection refused", "remote", c.conn.RemoteAddr(), "err", err)
		return
	}
	rc := &requestConn{Conn: c.conn, timeout: s.opts.ReadTimeout, idle: s.opts.IdleTimeout, charge: bytebudget.Charge{Budget: s.budget}}
	defer rc.charge.Release()
	sock := thrift.NewTSocketFromConnConf(checkable(rc), s.cfg)
	// One transport reads and writes: its read and write buffers are
	// separate, and calls on a connection never overlap.
	trans, err := s.transport.GetTransport(sock)
	if err != nil {
		c.closing(err)
		return
	}
	iprot := &guardedProtocol{
		TProtocol: s.protocol.GetProtocol(trans),
		c:         c,
		maxElems:  max(s.opts.MaxBatchMessages, minContainerLimit),
		rc:        rc,
		compact:   s.opts.Protocol == ProtocolCompact,
		maxBytes:  s.opts.MaxRequestBytes,
	}
	oprot := s.protocol.GetProtocol(trans)
	for {
		rc.waitNext()
		ok, err := c.process(ctx, iprot, oprot)
		// Answered: the request's bytes are no longer held.
		rc.charge.Release()
		stopping := c.end()
		if err != nil && ok && isDeclaredException(err) {
			// The processor has answered with an exception the IDL
			// declares (PullException): a reply like any other.
			err = nil
		}
		var ae thrift.TApplicationException
		if err != nil && errors.As(err, &ae) && ae.TypeId() == thrift.UNKNOWN_METHOD && !stopping {
			// The processor has skipped the call and answered with an
			// exception; the connection is still in step.
			s.log.Debug("thrift call of an unknown method", "remote", c.conn.RemoteAddr(), "err", err)
			continue
		}
		if err != nil {
			c.closing(err)
			return
		}
		if !ok || stopping {
			return
		}
	}
}

// process reads one call and answers it. A request nested past
// maxStructDepth ends here at once: the generated code would otherwise
// prefix the error with its type at every level on the way out, text
// quadratic in the depth (188 KB and tens of MB of garbage for 4,000
// levels), and answer with all of it.
func (c *serverConn) process(ctx context.Context, iprot, oprot thrift.TProtocol) (ok bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			switch r := r.(type) {
			case errTooDeep:
				ok, err = false, thrift.NewTProtocolExceptionWithType(thrift.DEPTH_LIMIT, r)
			case readAbort:
				ok, err = false, r.err
			default:
				panic(r)
			}
		}
	}()
	return c.s.processor.Process(ctx, iprot, oprot)
}

// connectionStateKey is the context key of a TLS connection's state.
type connectionStateKey struct{}

// ConnectionState returns the TLS state of the connection a call came on,
// nil for plaintext: what http.Request.TLS is to an HTTP handler. With
// thrift.tls.client_ca_file set, its PeerCertificates and VerifiedChains
// hold the client's verified certificate, leaf first.
func ConnectionState(ctx context.Context) *tls.ConnectionState {
	st, _ := ctx.Value(connectionStateKey{}).(*tls.ConnectionState)
	return st
}

// handshake runs the TLS handshake, bounded by the request timeout as a
// request's arrival is: a client that connects and stalls cannot hold a
// connection. A failure is logged: a client without a valid certificate
// shows here.
func (c *serverConn) handshake(tc *tls.Conn) (tls.ConnectionState, error) {
	s := c.s
	ctx, cancel := context.WithTimeout(s.base, s.opts.DefaultTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		if isClosed(err) || s.isStopping() {
			s.log.Debug("thrift connection closed during its TLS handshake", "remote", c.conn.RemoteAddr(), "err", err)
		} else {
			s.log.Warn("thrift TLS handshake failed", "remote", c.conn.RemoteAddr(), "err", err)
		}
		return tls.ConnectionState{}, err
	}
	return tc.ConnectionState(), nil
}

// errTooDeep is what ReadStructBegin panics with past maxStructDepth, for
// process to recover: not an error the generated code sees.
type errTooDeep struct{}

func (errTooDeep) Error() string {
	return fmt.Sprintf("structs nested more than %d deep", maxStructDepth)
}

// readAbort carries a read error out of a nested struct by panic, for
// process to recover (see abortNested).
type readAbort struct{ err error }

// begin marks a call in flight, unless the server is stopping.
func (c *serverConn) begin() bool {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if c.s.stopping {
		return false
	}
	c.inFlight = true
	return true
}

// end marks the connection idle and reports whether the server is
// stopping.
func (c *serverConn) end() bool {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	c.inFlight = false
	return c.s.stopping
}

// closing logs why the connection ends: quietly for a client that left or
// a server that stops, as a warning for input that is not a valid call.
func (c *serverConn) closing(err error) {
	s := c.s
	if errors.Is(err, errBudgetFull) {
		s.log.Warn("closing a thrift connection: its request found no room in thrift.max_request_bytes_in_flight; the client may send again",
			"remote", c.conn.RemoteAddr(), "limit", s.opts.MaxRequestBytesInFlight)
		return
	}
	if errors.Is(err, errIdle) {
		s.log.Debug("closing an idle thrift connection", "remote", c.conn.RemoteAddr(), "idle_timeout", s.opts.IdleTimeout)
		return
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// A framed request read by a buffered server looks like one that
		// never ends, so this is also how a client on another transport
		// shows: name what the server expects.
		s.log.Warn("closing a thrift connection: a request did not arrive in full within the request timeout; if every call of a client ends so, check that it uses the same transport and protocol",
			"remote", c.conn.RemoteAddr(), "timeout", s.opts.ReadTimeout, "transport", s.opts.Transport, "protocol", s.opts.Protocol)
		return
	}
	if isClosed(err) || s.isStopping() {
		s.log.Debug("thrift connection closed", "remote", c.conn.RemoteAddr(), "err", err)
		return
	}
	s.log.Warn("closing thrift connection after a bad request; check that the client uses the same transport and protocol",
		"remote", c.conn.RemoteAddr(), "transport", s.opts.Transport, "protocol", s.opts.Protocol, "err", err)
}

// isClosed reports whether err means the peer closed the connection or it
// was closed under the reader.
func isClosed(err error) bool {
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, context.Canceled) {
		return true
	}
	var te thrift.TTransportException
	if errors.As(err, &te) && (te.TypeId() == thrift.END_OF_FILE || te.TypeId() == thrift.NOT_OPEN) {
		return true
	}
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// isDeclaredException reports whether err is an exception a method
// declares in the IDL, which the processor has written as the answer.
func isDeclaredException(err error) bool {
	var pe *consumer.PullException
	return errors.As(err, &pe)
}

// maxStructDepth bounds how deeply structs may nest in a request. The
// generated code reads nested structs by recursion, and ConsumeResult
// nests itself (nextResult): without a bound, a small frame of nested
// headers would grow the stack without limit. It leaves room for chains
// longer than maxAckChain, so that those are answered with code 11.
const maxStructDepth = 4 * maxAckChain

// guardedProtocol wraps the input protocol of a connection: it marks calls
// in flight as their header arrives, refuses containers that declare
// more elements than the request can hold, before the generated code
// allocates room for them, and structs nested deeper than maxStructDepth.
type guardedProtocol struct {
	thrift.TProtocol
	c        *serverConn
	maxElems int
	depth    int // structs open in the request being read
	rc       *requestConn
	// compact says which protocol the connection speaks: ReadBinary and
	// ReadString read the length prefix themselves (see readBytes).
	compact  bool
	maxBytes int
}

func (p *guardedProtocol) ReadMessageBegin(ctx context.Context) (string, thrift.TMessageType, int32, error) {
	name, typ, seq, err := p.TProtocol.ReadMessageBegin(ctx)
	p.depth = 0
	if err == nil && !p.c.begin() {
		err = thrift.NewTTransportException(thrift.NOT_OPEN, "mqgate is stopping")
	}
	return name, typ, seq, err
}

func (p *guardedProtocol) ReadStructBegin(ctx context.Context) (string, error) {
	p.depth++
	if p.depth > maxStructDepth {
		panic(errTooDeep{}) // see serverConn.process
	}
	return p.TProtocol.ReadStructBegin(ctx)
}

func (p *guardedProtocol) ReadStructEnd(ctx context.Context) error {
	p.depth--
	return p.abortNested(p.TProtocol.ReadStructEnd(ctx))
}

// abortNested passes err on, unless it comes from inside a nested struct:
// the generated code would prefix it with a type name at every level on
// its way out (text quadratic in the depth), so it goes to process by
// panic instead, and the connection closes without an answer. An error at
// the top level of the arguments is returned as it is.
func (p *guardedProtocol) abortNested(err error) error {
	if err != nil && p.depth > 1 {
		panic(readAbort{err})
	}
	return err
}

// The reads below only route their errors through abortNested. (ReadByte
// is left to the embedded protocol: the IDL has no byte fields, and vet
// holds the name to io.ByteReader's signature.)

func (p *guardedProtocol) ReadFieldBegin(ctx context.Context) (string, thrift.TType, int16, error) {
	name, typ, id, err := p.TProtocol.ReadFieldBegin(ctx)
	return name, typ, id, p.abortNested(err)
}

func (p *guardedProtocol) ReadFieldEnd(ctx context.Context) error {
	return p.abortNested(p.TProtocol.ReadFieldEnd(ctx))
}

func (p *guardedProtocol) ReadListEnd(ctx context.Context) error {
	return p.abortNested(p.TProtocol.ReadListEnd(ctx))
}

func (p *guardedProtocol) ReadSetEnd(ctx context.Context) error {
	return p.abortNested(p.TProtocol.ReadSetEnd(ctx))
}

func (p *guardedProtocol) ReadMapEnd(ctx context.Context) error {
	return p.abortNested(p.TProtocol.ReadMapEnd(ctx))
}

func (p *guardedProtocol) ReadBool(ctx context.Context) (bool, error) {
	v, err := p.TProtocol.ReadBool(ctx)
	return v, p.abortNested(err)
}

func (p *guardedProtocol) ReadI16(ctx context.Context) (int16, error) {
	v, err := p.TProtocol.ReadI16(ctx)
	return v, p.abortNested(err)
}

func (p *guardedProtocol) ReadI32(ctx context.Context) (int32, error) {
	v, err := p.TProtocol.ReadI32(ctx)
	return v, p.abortNested(err)
}

func (p *guardedProtocol) ReadI64(ctx context.Context) (int64, error) {
	v, err := p.TProtocol.ReadI64(ctx)
	return v, p.abortNested(err)
}

func (p *guardedProtocol) ReadDouble(ctx context.Context) (float64, error) {
	v, err := p.TProtocol.ReadDouble(ctx)
	return v, p.abortNested(err)
}

func (p *guardedProtocol) ReadUUID(ctx context.Context) (thrift.Tuuid, error) {
	v, err := p.TProtocol.ReadUUID(ctx)
	return v, p.abortNested(err)
}

func (p *guardedProtocol) Skip(ctx context.Context, fieldType thrift.TType) error {
	return p.abortNested(p.TProtocol.Skip(ctx, fieldType))
}

// ReadMessageEnd comes once a call's arguments are read, before its handler
// runs: the request has arrived, and its clock stops.
func (p *guardedProtocol) ReadMessageEnd(ctx context.Context) error {
	p.rc.arrived()
	return p.TProtocol.ReadMessageEnd(ctx)
}

// ReadBinary reads a binary field into a buffer of exactly its size.
func (p *guardedProtocol) ReadBinary(context.Context) ([]byte, error) {
	b, err := p.readBytes()
	return b, p.abortNested(err)
}

// ReadString reads a string field as ReadBinary does.
func (p *guardedProtocol) ReadString(context.Context) (string, error) {
	b, err := p.readBytes()
	return string(b), p.abortNested(err)
}

// readBytes reads a length-prefixed byte string: the compact protocol's
// varint length or the binary protocol's int32, then the bytes. The
// library reads fields of any size through a buffer that grows as it goes
// (a quarter of the gateway's time on batches of 1 KiB messages); the
// frame's remaining size is known here, so one exact allocation is safe.
// Neither protocol reads ahead of the transport, so reading it directly
// keeps them in step.
func (p *guardedProtocol) readBytes() ([]byte, error) {
	t := p.Transport()
	var n int64
	if p.compact {
		var v uint64
		for shift := uint(0); ; shift += 7 {
			if shift >= 64 {
				return nil, thrift.NewTProtocolExceptionWithType(thrift.INVALID_DATA, errors.New("varint length too long"))
			}
			b, err := readByte(t)
			if err != nil {
				return nil, thrift.NewTProtocolException(err)
			}
			v |= uint64(b&0x7f) << shift
			if b&0x80 == 0 {
				break
			}
		}
		n = int64(int32(v)) // the compact protocol writes an int32 as an unsigned varint
	} else {
		var b [4]byte
		if _, err := io.ReadFull(t, b[:]); err != nil {
			return nil, thrift.NewTProtocolException(err)
		}
		n = int64(int32(binary.BigEndian.Uint32(b[:])))
	}
	switch {
	case n < 0:
		return nil, thrift.NewTProtocolExceptionWithType(thrift.NEGATIVE_SIZE, errors.New("negative length"))
	case n == 0:
		return []byte{}, nil
	case n > int64(p.maxBytes) || uint64(n) > t.RemainingBytes():
		return nil, thrift.NewTProtocolExceptionWithType(thrift.SIZE_LIMIT, errors.New("field longer than the request"))
	}
	if n <= initialFieldBytes || t.RemainingBytes() != unknownRemaining {
		// The frame holds the bytes already: one exact allocation.
		buf := make([]byte, n)
		if _, err := io.ReadFull(t, buf); err != nil {
			return nil, thrift.NewTProtocolException(err)
		}
		return buf, nil
	}
	buf, err := readGrowing(t, int(n))
	if err != nil {
		return nil, thrift.NewTProtocolException(err)
	}
	return buf, nil
}

// unknownRemaining is what RemainingBytes says on an unframed transport.
const unknownRemaining = ^uint64(0)

// initialFieldBytes is the most readGrowing allocates before bytes
// arrive, and the largest field of an unframed request read with one
// exact allocation.
const initialFieldBytes = 64 << 10

// readGrowing reads n bytes from r into a buffer that grows as they
// arrive: on an unframed transport a length prefix is all a client has to
// send to make a field of up to MaxRequestBytes, and allocating that much
// before the bytes come would let a few idle connections take gigabytes.
// The buffer holds at most twice what has arrived plus initialFieldBytes.
func readGrowing(r io.Reader, n int) ([]byte, error) {
	buf := make([]byte, 0, initialFieldBytes)
	for len(buf) < n {
		if len(buf) == cap(buf) {
			bigger := make([]byte, len(buf), min(2*cap(buf), n))
			copy(bigger, buf)
			buf = bigger
		}
		m, err := r.Read(buf[len(buf):min(cap(buf), n)])
		buf = buf[:len(buf)+m]
		if err != nil && len(buf) < n {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return buf, nil
}

func readByte(r io.Reader) (byte, error) {
	if br, ok := r.(io.ByteReader); ok {
		return br.ReadByte()
	}
	var b [1]byte
	_, err := io.ReadFull(r, b[:])
	return b[0], err
}

// requestConn bounds how long one request may take to arrive: the clock
// starts with the request's first byte and stops when its arguments are
// read, so a client stalled mid-request cannot hold a connection forever.
// Between requests a connection may idle for idle (DDMQ clients pool
// them; the default is long). A handler's own time is not counted. It is
// read by the connection's one goroutine only.
type requestConn struct {
	net.Conn
	timeout time.Duration
	idle    time.Duration
	started bool // a request's first byte has arrived
	// charge holds the bytes read since the last answer, in the server's
	// request budget.
	charge bytebudget.Charge
}

// socketRequestConn is a requestConn over a socket, which thrift's
// connectivity check peeks at through SyscallConn: the generated
// processors poll it (TSocket.IsOpen) while a call's handler runs, and
// cancel the call's context once the client has gone. Without it the
// check found every connection open, and a call whose client had gone
// ran on: a pull waited out its time, then took messages for no one, to
// be redelivered only after their ack timeout.
type socketRequestConn struct {
	*requestConn
	socket syscall.Conn
}

func (c socketRequestConn) SyscallConn() (syscall.RawConn, error) { return c.socket.SyscallConn() }

// checkable is rc as the connectivity check can see it: with its socket
// (under TLS, the socket under it) when it has one.
func checkable(rc *requestConn) net.Conn {
	conn := rc.Conn
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
	}
	if sc, ok := conn.(syscall.Conn); ok {
		return socketRequestConn{rc, sc}
	}
	return rc
}

// errIdle ends a connection that sent nothing for its idle timeout.
var errIdle = errors.New("connection idle past thrift.limits.idle_timeout")

func (c *requestConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n == 0 && !c.started && errors.Is(err, os.ErrDeadlineExceeded) {
		return 0, errIdle
	}
	if n > 0 && !c.started {
		c.started = true
		_ = c.Conn.SetReadDeadline(time.Now().Add(c.timeout)) // fails only on a closed conn, which Read reports
	}
	if n > 0 {
		if cerr := chargeRead(&c.charge, n); cerr != nil {
			return 0, cerr
		}
	}
	return n, err
}

// waitNext starts the idle clock, which the next request's first byte
// stops.
func (c *requestConn) waitNext() {
	if !c.started {
		_ = c.Conn.SetReadDeadline(time.Now().Add(c.idle)) // as in Read
	}
}

// arrived stops the current request's clock.
func (c *requestConn) arrived() {
	c.started = false
	_ = c.Conn.SetReadDeadline(time.Time{}) // as in Read
}

// SetReadDeadline ignores the socket layer, which would reset the
// request's clock before every read: the clock is requestConn's.
func (c *requestConn) SetReadDeadline(time.Time) error { return nil }

// SetDeadline passes the write half on; the read half is requestConn's.
func (c *requestConn) SetDeadline(t time.Time) error { return c.Conn.SetWriteDeadline(t) }

func (p *guardedProtocol) ReadListBegin(ctx context.Context) (thrift.TType, int, error) {
	typ, size, err := p.TProtocol.ReadListBegin(ctx)
	if err == nil {
		err = p.checkSize(size)
	}
	return typ, size, p.abortNested(err)
}

func (p *guardedProtocol) ReadSetBegin(ctx context.Context) (thrift.TType, int, error) {
	typ, size, err := p.TProtocol.ReadSetBegin(ctx)
	if err == nil {
		err = p.checkSize(size)
	}
	return typ, size, p.abortNested(err)
}

func (p *guardedProtocol) ReadMapBegin(ctx context.Context) (thrift.TType, thrift.TType, int, error) {
	kt, vt, size, err := p.TProtocol.ReadMapBegin(ctx)
	if err == nil {
		err = p.checkSize(size)
	}
	return kt, vt, size, p.abortNested(err)
}

// checkSize refuses a container of n elements when n exceeds maxElems, or
// the bytes left in the frame: every element takes at least one byte.
func (p *guardedProtocol) checkSize(n int) error {
	if n < 0 || n > p.maxElems || uint64(n) > p.Transport().RemainingBytes() {
		return thrift.NewTProtocolExceptionWithType(thrift.SIZE_LIMIT, errors.New("container size exceeds the request"))
	}
	return nil
}
