package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	pb "github.com/mqgate/mqgate/sdk/proto"
)

// NewBackendClient returns a Backend that calls a plugin over conn's client.
// Errors come back as *Error with the plugin's codes; a plugin that is gone
// gives CodeUnavailable.
func NewBackendClient(c pb.BackendClient) Backend {
	return &backendClient{c: c, stream: newProduceStream(c)}
}

type backendClient struct {
	c      pb.BackendClient
	stream *produceStream
	conn   atomic.Pointer[pluginConn] // nil unless the host gave the plugin one
}

// AttachPluginConn gives b, a Backend NewBackendClient returned, the
// gateway's end of its plugin's connection (see EnvPluginConnFD): once the
// plugin says it serves it, produce calls and consume streams go over it.
// b closes conn when the plugin closes its end, and logs to log if it
// gives the connection up. It reports whether b takes it; if not, the
// caller still owns conn.
func AttachPluginConn(b Backend, conn net.Conn, log *slog.Logger) bool {
	c, ok := b.(*backendClient)
	if !ok || c.conn.Load() != nil {
		return false
	}
	c.conn.Store(newPluginConn(conn, log))
	return true
}

var _ Backend = (*backendClient)(nil)

// UsesPluginConn reports whether b, a Backend NewBackendClient returned,
// sends its produce calls and opens its consume streams over a plugin
// connection: one was attached and the plugin serves it.
func UsesPluginConn(b Backend) bool {
	c, ok := b.(*backendClient)
	if !ok {
		return false
	}
	conn := c.conn.Load()
	return conn != nil && conn.isServing()
}

func (b *backendClient) Configure(ctx context.Context, config []byte) error {
	_, err := b.c.Configure(ctx, &pb.ConfigureRequest{ConfigJson: config})
	return fromStatus(err)
}

func (b *backendClient) EnsureTopics(ctx context.Context, topics []TopicSpec) error {
	req := &pb.EnsureTopicsRequest{Topics: make([]*pb.TopicSpec, len(topics))}
	for i, t := range topics {
		req.Topics[i] = &pb.TopicSpec{Name: t.Name, Partitions: t.Partitions, Configs: t.Configs}
	}
	_, err := b.c.EnsureTopics(ctx, req)
	return fromStatus(err)
}

func (b *backendClient) Produce(ctx context.Context, records []Record) ([]ProduceResult, error) {
	var (
		results []*pb.ProduceResult
		ok      bool
		err     error
	)
	if conn := b.conn.Load(); conn != nil {
		results, ok, err = conn.produce(ctx, records)
	}
	var pbRecords []*pb.Record
	if !ok {
		pbRecords = recordsToPB(records)
		results, ok, err = b.stream.produce(ctx, pbRecords)
	}
	if !ok {
		var resp *pb.ProduceResponse
		if resp, err = b.c.Produce(ctx, &pb.ProduceRequest{Records: pbRecords}); err == nil {
			results = resp.Results
		}
		err = fromStatus(err)
	}
	if err != nil {
		return nil, err
	}
	if len(results) != len(records) {
		return nil, Errorf(CodeInternal, "plugin returned %d results for %d records", len(results), len(records))
	}
	out := make([]ProduceResult, len(results))
	for i, r := range results {
		out[i] = ProduceResult{Qid: r.Qid, Partition: r.Partition, Offset: r.Offset, MessageID: r.MessageId, Err: errorFromPB(r.Error)}
	}
	return out, nil
}

func (b *backendClient) Commit(ctx context.Context, group string, offsets []Offset) error {
	_, err := b.c.Commit(ctx, &pb.CommitRequest{Group: group, Offsets: offsetsToPB(offsets)})
	return fromStatus(err)
}

func (b *backendClient) Fetch(ctx context.Context, req FetchRequest) ([]FetchResult, error) {
	preq := &pb.FetchRequest{MaxRecords: req.MaxRecords, MaxWaitMs: req.MaxWait.Milliseconds()}
	for _, p := range req.Positions {
		preq.Positions = append(preq.Positions, &pb.Offset{Topic: p.Topic, Qid: p.Qid, Offset: p.Offset})
	}
	resp, err := b.c.Fetch(ctx, preq)
	if err != nil {
		return nil, fromStatus(err)
	}
	out := make([]FetchResult, len(resp.Results))
	for i, r := range resp.Results {
		out[i] = FetchResult{Topic: r.Topic, Qid: r.Qid, Records: recordsFromPB(r.Records), NextOffset: r.NextOffset, Err: errorFromPB(r.Error)}
	}
	return out, nil
}

func (b *backendClient) ListOffsets(ctx context.Context, topics []string, group string) ([]QidOffsets, error) {
	resp, err := b.c.ListOffsets(ctx, &pb.ListOffsetsRequest{Topics: topics, Group: group})
	if err != nil {
		return nil, fromStatus(err)
	}
	out := make([]QidOffsets, len(resp.Offsets))
	for i, o := range resp.Offsets {
		out[i] = QidOffsets{Topic: o.Topic, Qid: o.Qid, Partition: o.Partition, Start: o.Start, End: o.End, Committed: o.Committed}
	}
	return out, nil
}

// Close does nothing: the process that serves the plugin owns its life.
func (b *backendClient) Close() error { return nil }

// Consume opens a Consume stream. The returned Consumer grants the plugin
// credits only for what Poll asks, so the stream never buffers more than one
// Poll's worth of records.
func (b *backendClient) Consume(ctx context.Context, sub Subscription) (Consumer, error) {
	sctx, cancel := context.WithCancel(ctx)
	var (
		stream pb.Backend_ConsumeClient
		ok     bool
		err    error
	)
	if conn := b.conn.Load(); conn != nil {
		stream, ok, err = conn.openConsume(sctx)
	}
	if !ok {
		stream, err = b.c.Consume(sctx)
	}
	if err != nil {
		cancel()
		return nil, fromStatus(err)
	}
	subMsg := &pb.ConsumeRequest{Kind: &pb.ConsumeRequest_Subscribe{Subscribe: &pb.Subscription{
		Group: sub.Group, Topics: sub.Topics, Start: int32(sub.Start)}}}
	if err := stream.Send(subMsg); err != nil {
		cancel()
		return nil, fromStatus(err)
	}
	c := &streamConsumer{
		stream:  stream,
		recv:    recvOf(stream),
		cancel:  cancel,
		notify:  make(chan struct{}, 1),
		done:    make(chan struct{}),
		pending: make(map[uint64]chan error),
	}
	go c.receive()
	return c, nil
}

// streamConsumer is the gateway's end of a Consume stream. Poll is meant for
// one goroutine at a time; Commit and Close may be called from any.
//
// Its receiving goroutine never blocks: events wait in a queue, which the
// credits bound (a batch never exceeds what Poll granted), so a commit
// result is never stuck behind records nobody is polling.
type streamConsumer struct {
	stream pb.Backend_ConsumeClient
	recv   func() (consumeMsg, error) // the stream's next message
	cancel context.CancelFunc
	notify chan struct{} // a token when the queue grows
	done   chan struct{} // closed when receive ends, after err is set

	sendMu sync.Mutex // serializes stream.Send

	mu      sync.Mutex
	queue   []consumeMsg // batches, assignments, poll errors
	nextID  uint64
	pending map[uint64]chan error
	err     error // why the stream ended; set once, under mu

	// Owned by the polling goroutine.
	granted  int      // credits sent and not yet used by the plugin
	leftover []Record // records received beyond what the last Poll asked
}

func (c *streamConsumer) send(m *pb.ConsumeRequest) error {
	c.sendMu.Lock()
	err := c.stream.Send(m)
	c.sendMu.Unlock()
	if err == nil {
		return nil
	}
	// Send reports only that the stream is gone; why is known once the
	// receiving side has ended, which it does promptly after.
	<-c.done
	return c.streamErr()
}

// recvOf is how a consumer takes stream's messages, a batch as records:
// over the plugin connection decoded straight from its frame, over gRPC
// converted from the message.
func recvOf(stream pb.Backend_ConsumeClient) func() (consumeMsg, error) {
	if cs, ok := stream.(*connClientStream); ok {
		return cs.recvMsg
	}
	return func() (consumeMsg, error) {
		m, err := stream.Recv()
		if b := m.GetBatch(); b != nil {
			return consumeMsg{records: recordsFromPB(b.Records), batch: true}, nil
		}
		return consumeMsg{m: m}, err
	}
}

func (c *streamConsumer) receive() {
	var err error
	for {
		var m consumeMsg
		m, err = c.recv()
		if err != nil {
			break
		}
		c.mu.Lock()
		if cr := m.m.GetCommitResult(); cr != nil {
			ch := c.pending[cr.Id]
			delete(c.pending, cr.Id)
			c.mu.Unlock()
			if ch != nil {
				ch <- errorFromPB(cr.Error)
			}
			continue
		}
		c.queue = append(c.queue, m)
		c.mu.Unlock()
		select {
		case c.notify <- struct{}{}:
		default: // a token is already there
		}
	}
	if errors.Is(err, io.EOF) {
		err = Errorf(CodeUnavailable, "consume stream closed by the plugin")
	} else {
		err = fromStatus(err)
	}
	err = fmt.Errorf("%w: %w", ErrStreamEnded, err)
	c.mu.Lock()
	c.err = err
	for id, ch := range c.pending {
		ch <- err
		delete(c.pending, id)
	}
	c.mu.Unlock()
	close(c.done)
}

func (c *streamConsumer) streamErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// queued reports whether events wait in the queue.
func (c *streamConsumer) queued() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue) > 0
}

// pop takes the oldest queued event; ok is false when there is none.
func (c *streamConsumer) pop() (consumeMsg, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queue) == 0 {
		return consumeMsg{}, false
	}
	m := c.queue[0]
	c.queue[0] = consumeMsg{}
	c.queue = c.queue[1:]
	return m, true
}

func (c *streamConsumer) Poll(ctx context.Context, maxRecords int) (ConsumeEvent, error) {
	maxRecords = min(max(maxRecords, 1), math.MaxInt32)
	if len(c.leftover) > 0 {
		return ConsumeEvent{Records: c.takeLeftover(maxRecords)}, nil
	}
	if want := maxRecords - c.granted; want > 0 {
		if err := c.send(&pb.ConsumeRequest{Kind: &pb.ConsumeRequest_Credit_{Credit: &pb.ConsumeRequest_Credit{Records: int32(want)}}}); err != nil {
			return ConsumeEvent{}, err
		}
		c.granted = maxRecords
	}
	for {
		// Events received before the stream ended are delivered first.
		if m, ok := c.pop(); ok {
			if m.batch {
				c.granted -= len(m.records)
				c.leftover = m.records
				return ConsumeEvent{Records: c.takeLeftover(maxRecords)}, nil
			}
			switch k := m.m.Kind.(type) {
			case *pb.ConsumeResponse_Assignment_:
				return ConsumeEvent{Assigned: offsetsFromPB(k.Assignment.Assigned), Revoked: offsetsFromPB(k.Assignment.Revoked)}, nil
			case *pb.ConsumeResponse_PollError:
				c.granted = 0 // the plugin dropped the grant with the error
				return ConsumeEvent{}, errorFromPB(k.PollError)
			}
			continue
		}
		select {
		case <-c.notify:
		case <-c.done:
			if !c.queued() {
				return ConsumeEvent{}, c.streamErr()
			}
		case <-ctx.Done():
			return ConsumeEvent{}, ctx.Err()
		}
	}
}

func (c *streamConsumer) takeLeftover(n int) []Record {
	n = min(n, len(c.leftover))
	out := c.leftover[:n:n]
	c.leftover = c.leftover[n:]
	return out
}

func (c *streamConsumer) Commit(ctx context.Context, offsets []Offset) error {
	ch := make(chan error, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return err
	}
	c.nextID++
	id := c.nextID
	c.pending[id] = ch
	c.mu.Unlock()
	commit := &pb.ConsumeRequest_Commit{Id: id, Offsets: offsetsToPB(offsets)}
	if deadline, ok := ctx.Deadline(); ok {
		commit.TimeoutMs = max(time.Until(deadline).Milliseconds(), 1)
	}
	if err := c.send(&pb.ConsumeRequest{Kind: &pb.ConsumeRequest_Commit_{Commit: commit}}); err != nil {
		c.forget(id)
		return err
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		c.forget(id)
		return ctx.Err()
	}
}

func (c *streamConsumer) forget(id uint64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

// Close ends the stream; the plugin leaves the group. Cancelling first
// unblocks a Send stuck on flow control.
func (c *streamConsumer) Close() error {
	c.cancel()
	c.sendMu.Lock()
	_ = c.stream.CloseSend() // the stream is cancelled either way
	c.sendMu.Unlock()
	<-c.done
	return nil
}
