package sdk

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	pb "github.com/mqgate/mqgate/sdk/proto"
)

// The plugin connection is a second way for produce calls and consume
// streams to reach a backend plugin, beside its gRPC service: a connected
// Unix socket the gateway creates with socketpair(2) and hands to the
// plugin process as an inherited descriptor, so no one else can reach it
// and nothing listens. Over gRPC every message went through HTTP/2
// framing, TLS and two goroutine handoffs on each end (gRPC's writer and
// reader); here the sender writes its message and one reader per end hands
// messages out.
//
// It carries frames: the payload's length (4 bytes, big-endian), a kind
// (1 byte) and a stream id (8 bytes), then the payload, a protobuf message
// of plugin.proto:
//
//	kind                 from     id         payload
//	frameProduce         gateway  0          ProduceBatch
//	frameProduceResult   plugin   0          ProduceBatchResult
//	frameConsumeOpen     gateway  stream     none: a Consume stream opens
//	frameConsumeData     both     stream     ConsumeRequest / ConsumeResponse
//	frameConsumeClose    gateway  stream     none: the gateway sends no more
//	frameConsumeCancel   gateway  stream     none: the gateway gave up the stream
//	frameConsumeEnd      plugin   stream     google.rpc.Status: how it ended
//
// A produce batch and its result are ProduceStream's messages; a consume
// stream's messages are those of the Consume call, in the same order.
//
// The plugin writes PluginConnHello first, once it serves the connection.
// Until then, and for a plugin built with an SDK that does not know the
// connection (which never writes it), produce calls and consume streams
// take gRPC; after the connection fails, they do again.

// EnvPluginConnFD names the environment variable that gives a backend
// plugin the descriptor of its plugin connection.
const EnvPluginConnFD = "MQGATE_PLUGIN_CONN_FD"

// PluginConnHello is what a plugin writes first on its plugin connection,
// to say it serves it.
const PluginConnHello = "mqgate plugin conn 1\n"

// Frame kinds of the plugin connection.
const (
	frameProduce byte = iota + 1
	frameProduceResult
	frameConsumeOpen
	frameConsumeData
	frameConsumeClose
	frameConsumeCancel
	frameConsumeEnd
)

// frameHeader is the length of a frame's header.
const frameHeader = 4 + 1 + 8

// servePluginConnFromEnv serves the plugin connection the gateway gave
// this process, if it gave one, until it closes.
func servePluginConnFromEnv(s *backendServer) {
	v := os.Getenv(EnvPluginConnFD)
	if v == "" {
		return
	}
	os.Unsetenv(EnvPluginConnFD) // not for the plugin's own children
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		Logger().Error("ignoring the plugin connection", "error", fmt.Sprintf("%s=%q is not a descriptor", EnvPluginConnFD, v))
		return
	}
	f := os.NewFile(uintptr(fd), "plugin-conn")
	conn, err := net.FileConn(f) // a duplicate, close-on-exec
	f.Close()
	if err != nil {
		Logger().Error("ignoring the plugin connection", "error", err)
		return
	}
	go func() {
		if err := servePluginConn(context.Background(), conn, s); err != nil {
			Logger().Debug("plugin connection ended", "error", err)
		}
	}()
}

// servePluginConn serves conn until it fails or ctx ends: produce
// batches as ProduceStream serves them (each in a goroutine of its own, at
// most maxStreamBatches at once, answered when done in any order), and
// consume streams as Consume serves them.
func servePluginConn(ctx context.Context, conn net.Conn, s *backendServer) error {
	ctx, cancel := context.WithCancel(ctx)
	batches := newBatchRunner(s)
	w := &frameWriter{conn: conn}
	streams := map[uint64]*connServerStream{}
	var (
		streamsMu sync.Mutex
		handlers  sync.WaitGroup
	)
	defer func() {
		cancel()
		conn.Close()
		batches.wait()
		handlers.Wait()
	}()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if _, err := io.WriteString(conn, PluginConnHello); err != nil {
		return err
	}
	stream := func(id uint64) *connServerStream {
		streamsMu.Lock()
		defer streamsMu.Unlock()
		return streams[id]
	}
	r := bufio.NewReaderSize(conn, 64<<10)
	for {
		kind, id, size, err := readFrameHeader(r)
		if err != nil {
			return err
		}
		switch kind {
		case frameProduce:
			batch, err := readBatch(r, size, batches.release)
			if err != nil {
				return err
			}
			err = batches.run(ctx, batch, func(res *pb.ProduceBatchResult) {
				if err := w.write(frameProduceResult, 0, res); err != nil {
					cancel() // the gateway is gone, or the connection broken
				}
			})
			if err != nil {
				return err
			}
		case frameConsumeOpen:
			if err := readPayload(r, size, nil); err != nil {
				return err
			}
			st := newConnServerStream(ctx, id, w)
			streamsMu.Lock()
			streams[id] = st
			streamsMu.Unlock()
			handlers.Add(1)
			go func() {
				defer handlers.Done()
				err := s.Consume(st)
				st.cancel()
				streamsMu.Lock()
				delete(streams, id)
				streamsMu.Unlock()
				if err := w.write(frameConsumeEnd, id, statusMessage(err)); err != nil {
					cancel()
				}
			}()
		case frameConsumeData:
			m := &pb.ConsumeRequest{}
			if err := readPayload(r, size, m); err != nil {
				return err
			}
			if st := stream(id); st != nil {
				st.push(m)
			}
		case frameConsumeClose, frameConsumeCancel:
			if err := readPayload(r, size, nil); err != nil {
				return err
			}
			if st := stream(id); st != nil {
				if kind == frameConsumeClose {
					st.closeSend()
				} else {
					st.cancel()
				}
			}
		default:
			return fmt.Errorf("plugin connection: a frame of unknown kind %d", kind)
		}
	}
}

// frameWriter writes frames to conn, one at a time.
type frameWriter struct {
	mu   sync.Mutex
	conn net.Conn
}

func (w *frameWriter) write(kind byte, id uint64, m frameMessage) error {
	buf, err := marshalFrame(kind, id, m)
	if err != nil {
		return err
	}
	w.mu.Lock()
	_, err = w.conn.Write(*buf)
	w.mu.Unlock()
	pool.Put(buf)
	return err
}

// frameMessage is what a frame carries: a message of plugin.proto, or a
// recordBatch.
type frameMessage interface {
	SizeVT() int
	MarshalToSizedBufferVT([]byte) (int, error)
}

// marshalFrame marshals m, which may be nil for no payload, into a frame,
// in a buffer from pool.
func marshalFrame(kind byte, id uint64, m frameMessage) (*[]byte, error) {
	size := 0
	if m != nil {
		size = m.SizeVT()
	}
	if size > MaxMessageBytes {
		return nil, Errorf(CodeTooLarge, "message of %d bytes, more than the plugin protocol's %d", size, MaxMessageBytes)
	}
	buf := pool.Get(frameHeader + size)
	binary.BigEndian.PutUint32(*buf, uint32(size))
	(*buf)[4] = kind
	binary.BigEndian.PutUint64((*buf)[5:], id)
	if m == nil {
		return buf, nil
	}
	n, err := m.MarshalToSizedBufferVT((*buf)[frameHeader:])
	if err == nil && n != size {
		err = fmt.Errorf("proto: message of %d bytes marshalled to %d (changed concurrently?)", size, n)
	}
	if err != nil {
		pool.Put(buf)
		return nil, err
	}
	return buf, nil
}

// readFrameHeader reads the header of the next frame from r.
func readFrameHeader(r *bufio.Reader) (kind byte, id uint64, size int, err error) {
	var head [frameHeader]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return 0, 0, 0, err
	}
	size = int(binary.BigEndian.Uint32(head[:]))
	if size > MaxMessageBytes {
		return 0, 0, 0, fmt.Errorf("plugin connection: a message of %d bytes, more than the plugin protocol's %d", size, MaxMessageBytes)
	}
	return head[4], binary.BigEndian.Uint64(head[5:]), size, nil
}

// readPayload reads a frame's payload of size bytes from r into m, or
// skips it if m is nil.
func readPayload(r *bufio.Reader, size int, m vtMessage) error {
	if m == nil {
		_, err := r.Discard(size)
		return err
	}
	buf := pool.Get(size)
	defer pool.Put(buf)
	if _, err := io.ReadFull(r, *buf); err != nil {
		return err
	}
	return m.UnmarshalVT(*buf) // copies bytes and strings out of buf
}

// readConsumeMsg reads a ConsumeResponse of size bytes from r: a batch
// straight into Records (decodeBatch), anything else as a message.
func readConsumeMsg(r *bufio.Reader, size int) (consumeMsg, error) {
	buf := pool.Get(size)
	defer pool.Put(buf)
	if _, err := io.ReadFull(r, *buf); err != nil {
		return consumeMsg{}, err
	}
	if b, ok := batchOf(*buf); ok {
		recs, err := decodeBatch(b) // copies bytes and strings out of buf
		return consumeMsg{records: recs, batch: true}, err
	}
	m := &pb.ConsumeResponse{}
	return consumeMsg{m: m}, m.UnmarshalVT(*buf)
}

// readBatch reads a ProduceBatch of size bytes from r, straight into
// records whose bytes share one buffer (decodeProduceBatch): from the
// pool when the backend gives it back (pooled, see ProduceReleaser),
// else allocated for this batch alone.
func readBatch(r *bufio.Reader, size int, pooled bool) (*produceBatch, error) {
	var p *[]byte
	if pooled {
		p = pool.Get(size)
	} else {
		buf := make([]byte, size)
		p = &buf
	}
	if _, err := io.ReadFull(r, *p); err != nil {
		return nil, err
	}
	batch, err := decodeProduceBatch(*p)
	if err != nil {
		return nil, err
	}
	if pooled {
		batch.buf = p
	}
	return batch, nil
}

// pluginConn is the gateway's end of a plugin's connection.
type pluginConn struct {
	conn net.Conn

	// sendSlot, of capacity 1, is the right to write: a caller waits for
	// it as long as its context lasts, never longer.
	sendSlot chan struct{}

	mu      sync.Mutex
	serving bool // the plugin said hello and the connection has not failed
	nextID  uint64
	log     *slog.Logger
	pending map[uint64]chan streamAnswer // produce batches by id
	streams map[uint64]*connClientStream // consume streams by id
	// stalled is set when a write outlasted its caller's context: the
	// plugin stopped reading, and the connection was closed for it.
	stalled bool
}

// newPluginConn starts reading conn, the gateway's end of a plugin's
// connection, and returns it. It closes conn once the plugin closes its
// end or the connection fails.
func newPluginConn(conn net.Conn, log *slog.Logger) *pluginConn {
	p := &pluginConn{
		conn:     conn,
		log:      log,
		sendSlot: make(chan struct{}, 1),
		pending:  map[uint64]chan streamAnswer{},
		streams:  map[uint64]*connClientStream{},
	}
	go p.receive()
	return p
}

func (p *pluginConn) isServing() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.serving
}

// produce sends records as one batch on the connection and waits for its
// result; ok is false when the connection is not served (yet, or any
// more), and the call must take another way.
func (p *pluginConn) produce(ctx context.Context, records []Record) (results []*pb.ProduceResult, ok bool, err error) {
	p.mu.Lock()
	if !p.serving {
		p.mu.Unlock()
		return nil, false, nil
	}
	if len(p.pending) >= maxStreamBatches {
		// The plugin's reader would wait for a slot, holding up every
		// stream on the connection: this one takes ProduceStream.
		p.mu.Unlock()
		return nil, false, nil
	}
	p.nextID++
	batch := &recordBatch{records: records, id: p.nextID, timeoutMs: math.MaxInt64}
	ch := make(chan streamAnswer, 1)
	p.pending[batch.id] = ch
	p.mu.Unlock()
	if batch.SizeVT() > MaxMessageBytes { // sized with the largest time limit
		// Too large for one message: a unary call refuses it with the
		// code of a batch too large.
		p.forget(batch.id)
		return nil, false, nil
	}
	batch.timeoutMs = 0
	if d, has := ctx.Deadline(); has {
		batch.timeoutMs = max(1, time.Until(d).Milliseconds())
	}
	if err := p.write(ctx, frameProduce, 0, batch); err != nil && !errors.Is(err, errConnBroken) {
		p.forget(batch.id)
		return nil, true, err
	}
	// A broken connection answers every pending batch, this one included.
	select {
	case a := <-ch:
		results, err := a.results()
		return results, true, err
	case <-ctx.Done():
		p.forget(batch.id)
		return nil, true, ctxError(ctx)
	}
}

// errConnBroken is a write that failed: the connection is closed, and its
// receiving goroutine answers what waits on it.
var errConnBroken = errors.New("plugin connection broken")

// connStallTimeout is how long the rest of a frame may take to write
// once its caller has given up on it: past it, the plugin has stopped
// reading its connection.
var connStallTimeout = 10 * time.Second

// write writes a frame once it may, with the time ctx leaves. A caller
// whose context ends first does not write it (ctxError). If the plugin
// reads slowly, the write blocks once the socket's buffer is full; a
// caller whose context ends then gets ctxError at once, and a frame
// written in part is finished in the background (it cannot be taken back),
// holding up other writes. Only if that takes connStallTimeout has the
// plugin stopped reading: the connection is closed, which fails what waits
// on it with code 17, and later calls take gRPC. A write that fails
// otherwise has closed the connection too (errConnBroken).
func (p *pluginConn) write(ctx context.Context, kind byte, id uint64, m frameMessage) error {
	select {
	case p.sendSlot <- struct{}{}:
	case <-ctx.Done():
		return ctxError(ctx)
	}
	if ctx.Err() != nil {
		<-p.sendSlot
		return ctxError(ctx)
	}
	buf, err := marshalFrame(kind, id, m)
	if err != nil {
		<-p.sendSlot
		return err
	}
	// Once ctx ends, a write under way is made to return at once (the
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
	n, err := p.conn.Write(*buf)
	stop()
	mu.Lock()
	writing = false
	mu.Unlock()
	switch {
	case err != nil && deadline && n < len(*buf):
		// The caller gave up. The rest of a frame begun is written in the
		// background, still holding the right to write.
		go p.finish(buf, n)
		return ctxError(ctx)
	case err != nil:
		p.conn.Close()
		pool.Put(buf)
		<-p.sendSlot
		return errConnBroken
	case deadline:
		p.conn.SetWriteDeadline(time.Time{})
	}
	pool.Put(buf)
	<-p.sendSlot
	return nil
}

// finish writes what is left of a frame from its byte n, within
// connStallTimeout, then gives up the right to write that write held.
// Nothing of it written (n == 0) leaves nothing to finish.
func (p *pluginConn) finish(buf *[]byte, n int) {
	defer func() { <-p.sendSlot }()
	defer pool.Put(buf)
	if n > 0 {
		p.conn.SetWriteDeadline(time.Now().Add(connStallTimeout))
		if _, err := p.conn.Write((*buf)[n:]); err != nil {
			p.mu.Lock()
			p.stalled = errors.Is(err, os.ErrDeadlineExceeded) // else the plugin is gone
			p.mu.Unlock()
			p.conn.Close()
			return
		}
	}
	p.conn.SetWriteDeadline(time.Time{})
}

func (p *pluginConn) forget(id uint64) {
	p.mu.Lock()
	delete(p.pending, id)
	p.mu.Unlock()
}

// receive waits for the plugin's hello, then hands each message to its
// caller or stream until the connection fails.
func (p *pluginConn) receive() {
	defer p.conn.Close()
	r := bufio.NewReaderSize(p.conn, 64<<10)
	hello := make([]byte, len(PluginConnHello))
	if _, err := io.ReadFull(r, hello); err != nil || string(hello) != PluginConnHello {
		return // a plugin that does not serve it, or one that is gone
	}
	p.mu.Lock()
	p.serving = true
	p.mu.Unlock()
	p.ended(p.receiveFrames(r))
}

func (p *pluginConn) receiveFrames(r *bufio.Reader) error {
	for {
		kind, id, size, err := readFrameHeader(r)
		if err != nil {
			return err
		}
		switch kind {
		case frameProduceResult:
			res := &pb.ProduceBatchResult{}
			if err := readPayload(r, size, res); err != nil {
				return err
			}
			answer(&p.mu, &p.pending, res)
		case frameConsumeData:
			m, err := readConsumeMsg(r, size)
			if err != nil {
				return err
			}
			if st := p.stream(id, false); st != nil {
				st.push(m)
			}
		case frameConsumeEnd:
			buf := make([]byte, size)
			if _, err := io.ReadFull(r, buf); err != nil {
				return err
			}
			if st := p.stream(id, true); st != nil {
				st.end(statusFromMessage(buf))
			}
		default:
			return fmt.Errorf("plugin connection: a frame of unknown kind %d", kind)
		}
	}
}

// stream is the consume stream id, forgotten if forget.
func (p *pluginConn) stream(id uint64, forget bool) *connClientStream {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.streams[id]
	if forget {
		delete(p.streams, id)
	}
	return st
}

// ended stops the connection's use and answers every batch and stream
// waiting on it with what gRPC gives for a plugin that is gone: code 17.
func (p *pluginConn) ended(err error) {
	p.mu.Lock()
	pending, streams := p.pending, p.streams
	p.serving, p.pending, p.streams = false, nil, nil
	switch {
	case p.stalled:
		err = Errorf(CodeUnavailable, "backend unavailable: the plugin stopped reading its connection")
		p.log.Warn("the plugin stopped reading its connection; produce calls and consume streams go over gRPC from now on", "stalled_for", connStallTimeout)
	case errors.Is(err, io.EOF):
		err = Errorf(CodeUnavailable, "backend unavailable: connection closed by the plugin")
	default:
		err = Errorf(CodeUnavailable, "backend unavailable: plugin connection: %v", err)
	}
	p.mu.Unlock()
	for _, ch := range pending {
		ch <- streamAnswer{err: err}
	}
	for _, st := range streams {
		st.end(statusError(err))
	}
}
