package sdk

import (
	"context"
	"io"
	"sync"
	"time"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/mqgate/mqgate/sdk/proto"
)

// Consume streams over the plugin connection: each end offers what the
// sdk's code on it uses of a gRPC Consume stream, so the same code serves
// both ways.

// msgQueue is a stream's messages received and not yet taken. It never
// blocks the connection's reader: the Consume protocol bounds it (records
// come only for credits granted; credits and commits only as Poll and
// Commit send them).
type msgQueue[M any] struct {
	mu     sync.Mutex
	queue  []M
	err    error         // set once: why no more messages come
	notify chan struct{} // a token when the queue grows or err is set
}

func newMsgQueue[M any]() msgQueue[M] { return msgQueue[M]{notify: make(chan struct{}, 1)} }

func (q *msgQueue[M]) push(m M) {
	q.mu.Lock()
	q.queue = append(q.queue, m)
	q.mu.Unlock()
	q.wake()
}

// end makes take return err once the queue is empty; the first err stays.
func (q *msgQueue[M]) end(err error) {
	q.mu.Lock()
	if q.err == nil {
		q.err = err
	}
	q.mu.Unlock()
	q.wake()
}

func (q *msgQueue[M]) wake() {
	select {
	case q.notify <- struct{}{}:
	default: // a token is already there
	}
}

func (q *msgQueue[M]) ended() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.err != nil
}

// take waits for the oldest message; it is for one goroutine at a time.
func (q *msgQueue[M]) take() (M, error) {
	for {
		q.mu.Lock()
		if len(q.queue) > 0 {
			m := q.queue[0]
			var zero M
			q.queue[0] = zero
			q.queue = q.queue[1:]
			q.mu.Unlock()
			return m, nil
		}
		err := q.err
		q.mu.Unlock()
		if err != nil {
			var zero M
			return zero, err
		}
		<-q.notify
	}
}

// connClientStream is the gateway's end of a Consume stream over the
// plugin connection.
type connClientStream struct {
	grpc.ClientStream // not used: only the methods below are called
	p                 *pluginConn
	id                uint64
	ctx               context.Context
	msgQueue[consumeMsg]
}

var _ pb.Backend_ConsumeClient = (*connClientStream)(nil)

// openConsume opens a Consume stream on the connection, which lasts as
// long as ctx; ok is false when the connection is not served.
func (p *pluginConn) openConsume(ctx context.Context) (stream pb.Backend_ConsumeClient, ok bool, err error) {
	p.mu.Lock()
	if !p.serving {
		p.mu.Unlock()
		return nil, false, nil
	}
	p.nextID++
	st := &connClientStream{p: p, id: p.nextID, ctx: ctx, msgQueue: newMsgQueue[consumeMsg]()}
	p.streams[st.id] = st
	p.mu.Unlock()
	if err := p.write(ctx, frameConsumeOpen, st.id, nil); err != nil {
		p.stream(st.id, true)
		if err == errConnBroken {
			return nil, false, nil
		}
		return nil, true, err
	}
	// As with gRPC, a stream whose context ends is over for both ends:
	// Recv says so, and the plugin is told.
	context.AfterFunc(ctx, func() {
		st.end(status.FromContextError(ctx.Err()).Err())
		if p.stream(st.id, true) != nil {
			wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = p.write(wctx, frameConsumeCancel, st.id, nil)
		}
	})
	return st, true, nil
}

func (s *connClientStream) Send(m *pb.ConsumeRequest) error {
	if s.ended() {
		return io.EOF // as gRPC's Send: Recv says why
	}
	if err := s.p.write(s.ctx, frameConsumeData, s.id, m); err != nil {
		return io.EOF
	}
	return nil
}

// Recv is the next message as gRPC would give it; the sdk's own consumer
// takes batches as records instead (recvMsg).
func (s *connClientStream) Recv() (*pb.ConsumeResponse, error) {
	m, err := s.take()
	if err != nil || !m.batch {
		return m.m, err
	}
	return &pb.ConsumeResponse{Kind: &pb.ConsumeResponse_Batch_{Batch: &pb.ConsumeResponse_Batch{Records: recordsToPB(m.records)}}}, nil
}

// recvMsg is the next message, a batch as records.
func (s *connClientStream) recvMsg() (consumeMsg, error) { return s.take() }

func (s *connClientStream) CloseSend() error {
	if s.ctx.Err() == nil && !s.ended() {
		_ = s.p.write(s.ctx, frameConsumeClose, s.id, nil)
	}
	return nil
}

func (s *connClientStream) Context() context.Context { return s.ctx }

// connServerStream is a plugin's end of a Consume stream over the plugin
// connection.
type connServerStream struct {
	grpc.ServerStream // not used: only the methods below are called
	id                uint64
	w                 *frameWriter
	ctx               context.Context
	cancel            context.CancelFunc
	msgQueue[*pb.ConsumeRequest]
}

var _ pb.Backend_ConsumeServer = (*connServerStream)(nil)

func newConnServerStream(ctx context.Context, id uint64, w *frameWriter) *connServerStream {
	ctx, cancel := context.WithCancel(ctx)
	st := &connServerStream{id: id, w: w, ctx: ctx, cancel: cancel, msgQueue: newMsgQueue[*pb.ConsumeRequest]()}
	context.AfterFunc(ctx, func() { st.end(status.FromContextError(ctx.Err()).Err()) })
	return st
}

// closeSend is the gateway's saying it sends no more: Recv gives io.EOF.
func (s *connServerStream) closeSend() { s.end(io.EOF) }

func (s *connServerStream) Recv() (*pb.ConsumeRequest, error) { return s.take() }

func (s *connServerStream) Send(m *pb.ConsumeResponse) error {
	if s.ctx.Err() != nil {
		return status.FromContextError(s.ctx.Err()).Err()
	}
	return s.w.write(frameConsumeData, s.id, m)
}

func (s *connServerStream) Context() context.Context { return s.ctx }

func (s *connServerStream) SetHeader(metadata.MD) error  { return nil }
func (s *connServerStream) SendHeader(metadata.MD) error { return nil }
func (s *connServerStream) SetTrailer(metadata.MD)       {}

// rawMessage is a message already marshalled.
type rawMessage []byte

func (m rawMessage) SizeVT() int { return len(m) }
func (m rawMessage) MarshalToSizedBufferVT(b []byte) (int, error) {
	return copy(b[len(b)-len(m):], m), nil
}
func (m rawMessage) UnmarshalVT([]byte) error { panic("rawMessage is only written") }

// statusMessage is how a Consume handler's err ends its stream, as gRPC
// would send it: a status, with context errors as their codes and other
// errors as Unknown.
func statusMessage(err error) vtMessage {
	st, ok := status.FromError(err)
	if !ok {
		st = status.FromContextError(err)
	}
	b, mErr := proto.Marshal(st.Proto())
	if mErr != nil {
		b, _ = proto.Marshal(status.New(codes.Internal, mErr.Error()).Proto())
	}
	return rawMessage(b)
}

// statusFromMessage is what Recv gives once a stream ended as b says:
// io.EOF when it ended well, else its status.
func statusFromMessage(b []byte) error {
	var m spb.Status
	if err := proto.Unmarshal(b, &m); err != nil {
		return status.Errorf(codes.Internal, "plugin connection: a stream's end status: %v", err)
	}
	if st := status.FromProto(&m); st.Code() != codes.OK {
		return st.Err()
	}
	return io.EOF
}
