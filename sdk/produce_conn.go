package sdk

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	pb "github.com/mqgate/mqgate/sdk/proto"
)

// The produce connection is a second way for produce calls to reach a
// backend plugin, beside its gRPC service: a connected Unix socket the
// gateway creates with socketpair(2) and hands to the plugin process as an
// inherited descriptor, so no one else can reach it and nothing listens.
// It carries the messages of ProduceStream (a ProduceBatch each way in,
// a ProduceBatchResult each way out), each after its length as 4 bytes,
// big-endian. Over gRPC every batch went through HTTP/2 framing, TLS and
// two goroutine handoffs on each end (gRPC's writer and reader); here the
// caller writes its batch and one reader per end hands results out.
//
// The plugin writes ProduceConnHello first, once it serves the
// connection. Until then, and for a plugin built with an SDK that does not
// know the connection (which never writes it), produce calls take the
// gRPC ProduceStream; after the connection fails, they do again.

// EnvProduceConnFD names the environment variable that gives a backend
// plugin the descriptor of its produce connection.
const EnvProduceConnFD = "MQGATE_PRODUCE_CONN_FD"

// ProduceConnHello is what a plugin writes first on its produce
// connection, to say it serves it.
const ProduceConnHello = "mqgate produce conn 1\n"

// serveProduceConnFromEnv serves the produce connection the gateway gave
// this process, if it gave one, until it closes. s produces.
func serveProduceConnFromEnv(s *backendServer) {
	v := os.Getenv(EnvProduceConnFD)
	if v == "" {
		return
	}
	os.Unsetenv(EnvProduceConnFD) // not for the plugin's own children
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		Logger().Error("ignoring the produce connection", "error", fmt.Sprintf("%s=%q is not a descriptor", EnvProduceConnFD, v))
		return
	}
	f := os.NewFile(uintptr(fd), "produce-conn")
	conn, err := net.FileConn(f) // a duplicate, close-on-exec
	f.Close()
	if err != nil {
		Logger().Error("ignoring the produce connection", "error", err)
		return
	}
	go func() {
		if err := serveProduceConn(context.Background(), conn, s); err != nil {
			Logger().Debug("produce connection ended", "error", err)
		}
	}()
}

// serveProduceConn serves produce batches read from conn until it fails
// or ctx ends, as ProduceStream serves them: each in a goroutine of its
// own, at most maxStreamBatches at once, answered when done in any order.
func serveProduceConn(ctx context.Context, conn net.Conn, s *backendServer) error {
	ctx, cancel := context.WithCancel(ctx)
	batches := newBatchRunner(s)
	w := &frameWriter{conn: conn}
	defer func() {
		cancel()
		conn.Close()
		batches.wait()
	}()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if _, err := io.WriteString(conn, ProduceConnHello); err != nil {
		return err
	}
	r := bufio.NewReaderSize(conn, 64<<10)
	for {
		batch, err := readBatch(r)
		if err != nil {
			return err
		}
		err = batches.run(ctx, batch, func(res *pb.ProduceBatchResult) {
			if err := w.write(res); err != nil {
				cancel() // the gateway is gone, or the connection broken
			}
		})
		if err != nil {
			return err
		}
	}
}

// frameWriter writes length-prefixed messages to conn, one at a time.
type frameWriter struct {
	mu   sync.Mutex
	conn net.Conn
}

func (w *frameWriter) write(m vtMessage) error {
	buf, err := marshalFrame(m)
	if err != nil {
		return err
	}
	w.mu.Lock()
	_, err = w.conn.Write(*buf)
	w.mu.Unlock()
	pool.Put(buf)
	return err
}

// marshalFrame marshals m after its length, into a buffer from pool.
func marshalFrame(m vtMessage) (*[]byte, error) {
	size := m.SizeVT()
	if size > MaxMessageBytes {
		return nil, Errorf(CodeTooLarge, "message of %d bytes, more than the plugin protocol's %d", size, MaxMessageBytes)
	}
	buf := pool.Get(4 + size)
	binary.BigEndian.PutUint32(*buf, uint32(size))
	n, err := m.MarshalToSizedBufferVT((*buf)[4:])
	if err == nil && n != size {
		err = fmt.Errorf("proto: message of %d bytes marshalled to %d (changed concurrently?)", size, n)
	}
	if err != nil {
		pool.Put(buf)
		return nil, err
	}
	return buf, nil
}

// readFrameSize reads the length of the next message from r.
func readFrameSize(r *bufio.Reader) (int, error) {
	var head [4]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return 0, err
	}
	size := int(binary.BigEndian.Uint32(head[:]))
	if size > MaxMessageBytes {
		return 0, fmt.Errorf("produce connection: a message of %d bytes, more than the plugin protocol's %d", size, MaxMessageBytes)
	}
	return size, nil
}

// readBatch reads the next ProduceBatch from r. Its records' keys, values
// and header values are not copied out of the message: they share one
// buffer, allocated for this batch alone, so nothing else ever writes it.
// Their strings are copies, since a plugin may keep a topic name (in a
// map, say) far longer than the batch, and would keep all of it.
func readBatch(r *bufio.Reader) (*pb.ProduceBatch, error) {
	size, err := readFrameSize(r)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	batch := &pb.ProduceBatch{}
	if err := batch.UnmarshalVTUnsafe(buf); err != nil {
		return nil, err
	}
	var topic, own string
	for _, rec := range batch.Records {
		if rec.Topic != topic { // a batch is mostly of one topic
			topic, own = rec.Topic, strings.Clone(rec.Topic)
		}
		rec.Topic = own
		rec.Qid, rec.Tags = strings.Clone(rec.Qid), strings.Clone(rec.Tags)
		for _, h := range rec.Headers {
			h.Key = strings.Clone(h.Key)
		}
	}
	return batch, nil
}

// readFrame reads one length-prefixed message from r into m.
func readFrame(r *bufio.Reader, m vtMessage) error {
	size, err := readFrameSize(r)
	if err != nil {
		return err
	}
	buf := pool.Get(size)
	defer pool.Put(buf)
	if _, err := io.ReadFull(r, *buf); err != nil {
		return err
	}
	return m.UnmarshalVT(*buf) // copies bytes and strings out of buf
}

// produceConn is the gateway's end of a plugin's produce connection.
type produceConn struct {
	conn net.Conn

	// sendSlot, of capacity 1, is the right to write: a caller waits for
	// it as long as its context lasts, never longer.
	sendSlot chan struct{}

	mu      sync.Mutex
	serving bool // the plugin said hello and the connection has not failed
	pending map[uint64]chan streamAnswer
	nextID  uint64
	// stalled is set when a write outlasted its caller's context: the
	// plugin stopped reading, and the connection was closed for it.
	stalled bool
}

// newProduceConn starts reading conn, the gateway's end of a plugin's
// produce connection, and returns it. It closes conn once the plugin
// closes its end or the connection fails.
func newProduceConn(conn net.Conn) *produceConn {
	p := &produceConn{conn: conn, sendSlot: make(chan struct{}, 1), pending: make(map[uint64]chan streamAnswer)}
	go p.receive()
	return p
}

// produce sends records as one batch on the connection and waits for its
// result; ok is false when the connection is not served (yet, or any
// more), and the call must take another way.
func (p *produceConn) produce(ctx context.Context, records []*pb.Record) (results []*pb.ProduceResult, ok bool, err error) {
	p.mu.Lock()
	if !p.serving {
		p.mu.Unlock()
		return nil, false, nil
	}
	p.nextID++
	batch := &pb.ProduceBatch{Records: records, Id: p.nextID, TimeoutMs: math.MaxInt64}
	ch := make(chan streamAnswer, 1)
	p.pending[batch.Id] = ch
	p.mu.Unlock()
	if batch.SizeVT() > MaxMessageBytes { // sized with the largest time limit
		// Too large for one message: a unary call refuses it with the
		// code of a batch too large.
		p.forget(batch.Id)
		return nil, false, nil
	}
	if err := p.send(ctx, batch); err != nil {
		p.forget(batch.Id)
		return nil, true, err
	}
	select {
	case a := <-ch:
		results, err := a.results()
		return results, true, err
	case <-ctx.Done():
		p.forget(batch.Id)
		return nil, true, ctxError(ctx)
	}
}

// send writes batch once it may, with the time its caller has left. A
// caller whose context ends first does not write it. If the plugin stops
// reading, the write blocks once the socket's buffer is full; when its
// caller's context ends the connection is closed (a frame written in part
// cannot be taken back), which fails the batches pending on it with code
// 17, and later calls take the gRPC stream.
func (p *produceConn) send(ctx context.Context, batch *pb.ProduceBatch) error {
	select {
	case p.sendSlot <- struct{}{}:
	case <-ctx.Done():
		return ctxError(ctx)
	}
	defer func() { <-p.sendSlot }()
	if ctx.Err() != nil {
		return ctxError(ctx)
	}
	batch.TimeoutMs = 0
	if d, has := ctx.Deadline(); has {
		batch.TimeoutMs = max(1, time.Until(d).Milliseconds())
	}
	buf, err := marshalFrame(batch)
	if err != nil {
		return err
	}
	defer pool.Put(buf)
	// Once ctx ends, a write under way is made to fail at once (the
	// deadline is set, not the connection closed, so a write that got
	// through just then leaves the connection as it was).
	var (
		mu       sync.Mutex
		writing  = true
		deadline bool
	)
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if writing {
			deadline = true
			p.conn.SetWriteDeadline(time.Unix(1, 0))
		}
	})
	_, err = p.conn.Write(*buf)
	stop()
	mu.Lock()
	writing = false
	mu.Unlock()
	switch {
	case err != nil:
		// Part of the frame may be written: the connection cannot carry
		// another. Closing it makes the receiving goroutine answer every
		// pending batch, this one included.
		p.mu.Lock()
		p.stalled = deadline
		p.mu.Unlock()
		p.conn.Close()
	case deadline:
		p.conn.SetWriteDeadline(time.Time{})
	}
	return nil
}

func (p *produceConn) isServing() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.serving
}

func (p *produceConn) forget(id uint64) {
	p.mu.Lock()
	delete(p.pending, id)
	p.mu.Unlock()
}

// receive waits for the plugin's hello, then hands each result to its
// caller until the connection fails.
func (p *produceConn) receive() {
	defer p.conn.Close()
	r := bufio.NewReaderSize(p.conn, 16<<10)
	hello := make([]byte, len(ProduceConnHello))
	if _, err := io.ReadFull(r, hello); err != nil || string(hello) != ProduceConnHello {
		return // a plugin that does not serve it, or one that is gone
	}
	p.mu.Lock()
	p.serving = true
	p.mu.Unlock()
	for {
		res := &pb.ProduceBatchResult{}
		if err := readFrame(r, res); err != nil {
			p.ended(err)
			return
		}
		p.mu.Lock()
		ch := p.pending[res.Id]
		delete(p.pending, res.Id)
		p.mu.Unlock()
		if ch != nil {
			ch <- streamAnswer{res: res}
		}
	}
}

// ended stops the connection's use and answers every batch pending on it
// with what a unary call to a plugin that is gone gives.
func (p *produceConn) ended(err error) {
	p.mu.Lock()
	pending := p.pending
	p.serving, p.pending = false, nil
	switch {
	case p.stalled:
		err = Errorf(CodeUnavailable, "backend unavailable: the plugin stopped reading its produce connection")
	case errors.Is(err, io.EOF):
		err = Errorf(CodeUnavailable, "backend unavailable: produce connection closed by the plugin")
	default:
		err = Errorf(CodeUnavailable, "backend unavailable: produce connection: %v", err)
	}
	p.mu.Unlock()
	for _, ch := range pending {
		ch <- streamAnswer{err: err}
	}
}
