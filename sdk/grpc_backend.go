package sdk

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	pb "github.com/mqgate/mqgate/sdk/proto"
)

// maxBatchMessageBytes bounds the record bytes of one batch message on a
// Consume stream, well under MaxMessageBytes: a Poll that returns more is
// sent as several messages, so a plugin need not size its answers.
var maxBatchMessageBytes = 64 << 20

// splitBatch returns the longest prefix of rs whose records hold at most
// limit bytes (always at least one record), and the rest.
func splitBatch(rs []Record, limit int) (head, rest []Record) {
	size := 0
	for i := range rs {
		size += recordBytes(&rs[i])
		if i > 0 && size > limit {
			return rs[:i], rs[i:]
		}
	}
	return rs, nil
}

// recordBytes is what a record weighs on the wire, near enough.
func recordBytes(r *Record) int {
	n := len(r.Topic) + len(r.Qid) + len(r.Key) + len(r.Value) + len(r.Tags) + 32
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value) + 4
	}
	return n
}

// maxPollRecords bounds one Poll the plugin side makes for a stream, however
// many credits the gateway granted, so one batch message stays reasonable.
const maxPollRecords = 10000

// backendServer serves a Backend implementation over gRPC, in the plugin.
type backendServer struct {
	pb.UnimplementedBackendServer
	impl Backend
}

func (s *backendServer) Configure(ctx context.Context, req *pb.ConfigureRequest) (*pb.ConfigureResponse, error) {
	return &pb.ConfigureResponse{}, statusError(s.impl.Configure(ctx, req.ConfigJson))
}

func (s *backendServer) ValidateConfig(_ context.Context, req *pb.ConfigureRequest) (*pb.ValidateConfigResponse, error) {
	return serveValidateConfig(s.impl, req.ConfigJson)
}

func (s *backendServer) Health(ctx context.Context, _ *pb.HealthRequest) (*pb.HealthResponse, error) {
	return serveHealth(ctx, s.impl)
}

func (s *backendServer) EnsureTopics(ctx context.Context, req *pb.EnsureTopicsRequest) (*pb.EnsureTopicsResponse, error) {
	specs := make([]TopicSpec, len(req.Topics))
	for i, t := range req.Topics {
		specs[i] = TopicSpec{Name: t.Name, Partitions: t.Partitions, Configs: t.Configs}
	}
	return &pb.EnsureTopicsResponse{}, statusError(s.impl.EnsureTopics(ctx, specs))
}

func (s *backendServer) Produce(ctx context.Context, req *pb.ProduceRequest) (*pb.ProduceResponse, error) {
	results, err := s.produce(ctx, recordsFromPB(req.Records))
	if err != nil {
		return nil, statusError(err)
	}
	return &pb.ProduceResponse{Results: results}, nil
}

// produce is Produce and each batch of ProduceStream.
func (s *backendServer) produce(ctx context.Context, records []Record) ([]*pb.ProduceResult, error) {
	results, err := s.impl.Produce(ctx, records)
	if err != nil {
		return nil, err
	}
	if len(results) != len(records) {
		return nil, Errorf(CodeInternal, "plugin returned %d results for %d records", len(results), len(records))
	}
	out := make([]*pb.ProduceResult, len(results))
	for i, r := range results {
		out[i] = &pb.ProduceResult{Qid: r.Qid, Partition: r.Partition, Offset: r.Offset, MessageId: r.MessageID, Error: errorToPB(r.Err)}
	}
	return out, nil
}

func (s *backendServer) Commit(ctx context.Context, req *pb.CommitRequest) (*pb.CommitResponse, error) {
	return &pb.CommitResponse{}, statusError(s.impl.Commit(ctx, req.Group, offsetsFromPB(req.Offsets)))
}

func (s *backendServer) Fetch(ctx context.Context, req *pb.FetchRequest) (*pb.FetchResponse, error) {
	fr := FetchRequest{MaxRecords: req.MaxRecords, MaxWait: time.Duration(req.MaxWaitMs) * time.Millisecond}
	for _, p := range req.Positions {
		fr.Positions = append(fr.Positions, FetchPosition{Topic: p.Topic, Qid: p.Qid, Offset: p.Offset})
	}
	results, err := s.impl.Fetch(ctx, fr)
	if err != nil {
		return nil, statusError(err)
	}
	out := make([]*pb.FetchResult, len(results))
	for i, r := range results {
		out[i] = &pb.FetchResult{Topic: r.Topic, Qid: r.Qid, Records: recordsToPB(r.Records), NextOffset: r.NextOffset, Error: errorToPB(r.Err)}
	}
	return &pb.FetchResponse{Results: out}, nil
}

func (s *backendServer) ListOffsets(ctx context.Context, req *pb.ListOffsetsRequest) (*pb.ListOffsetsResponse, error) {
	offs, err := s.impl.ListOffsets(ctx, req.Topics, req.Group)
	if err != nil {
		return nil, statusError(err)
	}
	out := make([]*pb.QidOffsets, len(offs))
	for i, o := range offs {
		out[i] = &pb.QidOffsets{Topic: o.Topic, Qid: o.Qid, Partition: o.Partition, Start: o.Start, End: o.End, Committed: o.Committed}
	}
	return &pb.ListOffsetsResponse{Offsets: out}, nil
}

// Consume runs one subscription. It polls the implementation only while
// the gateway has granted credits, so records never pile up on the stream;
// applies commits in the order they arrive, each within its timeout, on a
// goroutine of their own so a slow commit never holds up credits; and
// reports a failed Poll without ending the subscription.
func (s *backendServer) Consume(stream pb.Backend_ConsumeServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	sub := first.GetSubscribe()
	if sub == nil {
		return statusError(Errorf(CodeIllegal, "the first message of a Consume stream must be a subscribe"))
	}
	ctx, cancel := context.WithCancel(stream.Context())
	consumer, err := s.impl.Consume(ctx, Subscription{Group: sub.Group, Topics: sub.Topics, Start: StartPosition(sub.Start)})
	if err != nil {
		cancel()
		return statusError(err)
	}
	guard := &guardedConsumer{c: consumer}
	out := &streamSender{stream: stream}
	// Deferred calls run last first: stop everything, forbid Send (gRPC
	// forbids it once the handler has returned), then leave the group.
	defer guard.close()
	defer out.finish()
	defer cancel()

	credits := newCreditGate()
	commits := make(chan *pb.ConsumeRequest_Commit, 64)
	readErr := make(chan error, 1) // why the gateway's side ended
	go func() {
		readErr <- serveConsumeRequests(stream, credits, commits)
		cancel()
	}()
	go runCommits(ctx, guard, commits, out)

	for {
		n, err := credits.take(ctx, maxPollRecords)
		if err != nil {
			break
		}
		ev, err := consumer.Poll(ctx, n)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			// The failed poll uses up the grant: the gateway's next Poll
			// grants again, which paces retries of a persistent error.
			credits.drain()
			if err := out.send(&pb.ConsumeResponse{Kind: &pb.ConsumeResponse_PollError{PollError: errorToPB(err)}}); err != nil {
				return err
			}
			continue
		}
		if len(ev.Records) > n {
			return statusError(Errorf(CodeInternal, "plugin returned %d records for %d credits", len(ev.Records), n))
		}
		credits.giveBack(n - len(ev.Records))
		if len(ev.Assigned) > 0 || len(ev.Revoked) > 0 {
			m := &pb.ConsumeResponse{Kind: &pb.ConsumeResponse_Assignment_{Assignment: &pb.ConsumeResponse_Assignment{
				Assigned: offsetsToPB(ev.Assigned), Revoked: offsetsToPB(ev.Revoked)}}}
			if err := out.send(m); err != nil {
				return err
			}
		}
		for rest := ev.Records; len(rest) > 0; {
			var chunk []Record
			chunk, rest = splitBatch(rest, maxBatchMessageBytes)
			m := &pb.ConsumeResponse{Kind: &pb.ConsumeResponse_Batch_{Batch: &pb.ConsumeResponse_Batch{Records: recordsToPB(chunk)}}}
			if err := out.send(m); err != nil {
				return err
			}
		}
	}
	// The loop ends when ctx does: the gateway closed the stream, or broke
	// the protocol, which it is told.
	select {
	case err := <-readErr:
		var e *Error
		if errors.As(err, &e) {
			return statusError(e)
		}
	default:
	}
	return nil
}

// serveConsumeRequests reads the gateway's side of a Consume stream until
// it ends: credits feed the gate, commits queue for runCommits.
func serveConsumeRequests(stream pb.Backend_ConsumeServer, credits *creditGate, commits chan<- *pb.ConsumeRequest_Commit) error {
	for {
		req, err := stream.Recv()
		if err != nil {
			return err
		}
		switch k := req.Kind.(type) {
		case *pb.ConsumeRequest_Credit_:
			credits.giveBack(int(k.Credit.Records))
		case *pb.ConsumeRequest_Commit_:
			select {
			case commits <- k.Commit:
			case <-stream.Context().Done():
				return stream.Context().Err()
			}
		default:
			return Errorf(CodeIllegal, "unexpected message on a Consume stream after subscribe")
		}
	}
}

// defaultCommitTimeout bounds a commit whose message carries no timeout.
const defaultCommitTimeout = 30 * time.Second

// runCommits applies commits in order and answers each.
func runCommits(ctx context.Context, guard *guardedConsumer, commits <-chan *pb.ConsumeRequest_Commit, out *streamSender) {
	for {
		var c *pb.ConsumeRequest_Commit
		select {
		case c = <-commits:
		case <-ctx.Done():
			return
		}
		timeout := defaultCommitTimeout
		if c.TimeoutMs > 0 {
			timeout = time.Duration(c.TimeoutMs) * time.Millisecond
		}
		cctx, cancel := context.WithTimeout(ctx, timeout)
		err := guard.commit(cctx, offsetsFromPB(c.Offsets))
		cancel()
		res := &pb.ConsumeResponse{Kind: &pb.ConsumeResponse_CommitResult_{CommitResult: &pb.ConsumeResponse_CommitResult{Id: c.Id, Error: errorToPB(err)}}}
		if out.send(res) != nil {
			return
		}
	}
}

// guardedConsumer keeps Commit and Close apart: no commit starts once the
// consumer is closed.
type guardedConsumer struct {
	mu     sync.Mutex
	c      Consumer
	closed bool
}

func (g *guardedConsumer) commit(ctx context.Context, offsets []Offset) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return Errorf(CodeUnavailable, "consumer closed")
	}
	return g.c.Commit(ctx, offsets)
}

func (g *guardedConsumer) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.closed {
		g.closed = true
		_ = g.c.Close() // the subscription is over; a leave error changes nothing for anyone
	}
}

// streamSender serializes Send and refuses it once the handler is done.
type streamSender struct {
	mu     sync.Mutex
	stream pb.Backend_ConsumeServer
	done   bool
}

func (o *streamSender) send(m *pb.ConsumeResponse) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.done {
		return io.EOF
	}
	return o.stream.Send(m)
}

func (o *streamSender) finish() {
	o.mu.Lock()
	o.done = true
	o.mu.Unlock()
}

// creditGate counts the records the gateway is willing to receive.
type creditGate struct {
	mu    sync.Mutex
	n     int
	ready chan struct{} // closed and replaced whenever n grows
}

func newCreditGate() *creditGate { return &creditGate{ready: make(chan struct{})} }

// take waits until there are credits and takes up to max of them.
func (g *creditGate) take(ctx context.Context, max int) (int, error) {
	for {
		g.mu.Lock()
		if g.n > 0 {
			n := min(g.n, max)
			g.n -= n
			g.mu.Unlock()
			return n, nil
		}
		ready := g.ready
		g.mu.Unlock()
		select {
		case <-ready:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// drain takes every credit left.
func (g *creditGate) drain() {
	g.mu.Lock()
	g.n = 0
	g.mu.Unlock()
}

func (g *creditGate) giveBack(n int) {
	if n <= 0 {
		return
	}
	g.mu.Lock()
	g.n += n
	close(g.ready)
	g.ready = make(chan struct{})
	g.mu.Unlock()
}
