package sdk

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	pb "github.com/mqgate/mqgate/sdk/proto"
)

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

func (s *backendServer) EnsureTopics(ctx context.Context, req *pb.EnsureTopicsRequest) (*pb.EnsureTopicsResponse, error) {
	specs := make([]TopicSpec, len(req.Topics))
	for i, t := range req.Topics {
		specs[i] = TopicSpec{Name: t.Name, Partitions: t.Partitions, Configs: t.Configs}
	}
	return &pb.EnsureTopicsResponse{}, statusError(s.impl.EnsureTopics(ctx, specs))
}

func (s *backendServer) Produce(ctx context.Context, req *pb.ProduceRequest) (*pb.ProduceResponse, error) {
	results, err := s.impl.Produce(ctx, recordsFromPB(req.Records))
	if err != nil {
		return nil, statusError(err)
	}
	if len(results) != len(req.Records) {
		return nil, statusError(Errorf(CodeInternal, "plugin returned %d results for %d records", len(results), len(req.Records)))
	}
	out := make([]*pb.ProduceResult, len(results))
	for i, r := range results {
		out[i] = &pb.ProduceResult{Qid: r.Qid, Partition: r.Partition, Offset: r.Offset, MessageId: r.MessageID, Error: errorToPB(r.Err)}
	}
	return &pb.ProduceResponse{Results: out}, nil
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

// Consume runs one subscription: it polls the implementation only while the
// gateway has granted credits, so records never pile up on the stream, and
// applies commits in the order they arrive.
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
	defer cancel()
	consumer, err := s.impl.Consume(ctx, Subscription{Group: sub.Group, Topics: sub.Topics, Start: StartPosition(sub.Start)})
	if err != nil {
		return statusError(err)
	}
	defer consumer.Close()

	var sendMu sync.Mutex
	send := func(m *pb.ConsumeResponse) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		return stream.Send(m)
	}
	credits := newCreditGate()
	recvErr := make(chan error, 1)
	go func() {
		recvErr <- s.serveConsumeRequests(ctx, stream, consumer, credits, send)
		cancel()
	}()

	for {
		n, err := credits.take(ctx, maxPollRecords)
		if err != nil {
			break
		}
		ev, err := consumer.Poll(ctx, n)
		credits.giveBack(n - len(ev.Records))
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			return statusError(err)
		}
		var m *pb.ConsumeResponse
		switch {
		case len(ev.Records) > 0:
			m = &pb.ConsumeResponse{Kind: &pb.ConsumeResponse_Batch_{Batch: &pb.ConsumeResponse_Batch{Records: recordsToPB(ev.Records)}}}
		case len(ev.Assigned) > 0 || len(ev.Revoked) > 0:
			m = &pb.ConsumeResponse{Kind: &pb.ConsumeResponse_Assignment_{Assignment: &pb.ConsumeResponse_Assignment{
				Assigned: offsetsToPB(ev.Assigned), Revoked: offsetsToPB(ev.Revoked)}}}
		default:
			continue
		}
		if err := send(m); err != nil {
			return err
		}
	}
	if err := <-recvErr; err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

func (s *backendServer) serveConsumeRequests(ctx context.Context, stream pb.Backend_ConsumeServer, consumer Consumer, credits *creditGate, send func(*pb.ConsumeResponse) error) error {
	for {
		req, err := stream.Recv()
		if err != nil {
			return err
		}
		switch k := req.Kind.(type) {
		case *pb.ConsumeRequest_Credit_:
			credits.giveBack(int(k.Credit.Records))
		case *pb.ConsumeRequest_Commit_:
			cerr := consumer.Commit(ctx, offsetsFromPB(k.Commit.Offsets))
			res := &pb.ConsumeResponse{Kind: &pb.ConsumeResponse_CommitResult_{CommitResult: &pb.ConsumeResponse_CommitResult{Id: k.Commit.Id, Error: errorToPB(cerr)}}}
			if err := send(res); err != nil {
				return err
			}
		default:
			return statusError(Errorf(CodeIllegal, "unexpected message on a Consume stream after subscribe"))
		}
	}
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
