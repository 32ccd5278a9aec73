package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/mqgate/mqgate/sdk"
	pb "github.com/mqgate/mqgate/sdk/proto"
)

// echoBackend answers each record with its own key as the qid, so a
// caller can tell its results from another's.
type echoBackend struct {
	memBackend
	hold    chan struct{} // when set, Produce of topic "slow" waits for it
	holding atomic.Int32  // batches of topic "slow" that began waiting
}

func (e *echoBackend) Produce(ctx context.Context, rs []sdk.Record) ([]sdk.ProduceResult, error) {
	if len(rs) > 0 && rs[0].Topic == "slow" {
		e.holding.Add(1)
		select {
		case <-e.hold:
		case <-ctx.Done():
			return nil, sdk.Errorf(sdk.CodeTimeout, "slow: %v", ctx.Err())
		}
	}
	out := make([]sdk.ProduceResult, len(rs))
	for i, r := range rs {
		out[i] = sdk.ProduceResult{Qid: string(r.Key), Offset: int64(i)}
	}
	return out, nil
}

// streamPlugin is a plugin's Backend service whose ProduceStream can be
// taken away (a plugin built before it) or made to fail its first
// stream after one batch (a plugin restarting); it counts both kinds of
// call.
type streamPlugin struct {
	pb.BackendServer
	noStream   bool
	failFirst  bool
	neverRead  bool // its streams read nothing: a hung plugin
	streams    atomic.Int32
	unaryCalls atomic.Int32
	consumes   atomic.Int32 // Consume streams over gRPC
}

func (s *streamPlugin) Consume(stream pb.Backend_ConsumeServer) error {
	s.consumes.Add(1)
	return s.BackendServer.Consume(stream)
}

func (s *streamPlugin) Produce(ctx context.Context, req *pb.ProduceRequest) (*pb.ProduceResponse, error) {
	s.unaryCalls.Add(1)
	return s.BackendServer.Produce(ctx, req)
}

func (s *streamPlugin) ProduceStream(stream pb.Backend_ProduceStreamServer) error {
	n := s.streams.Add(1)
	if s.noStream {
		return status.Error(codes.Unimplemented, "method ProduceStream not implemented")
	}
	if s.neverRead {
		<-stream.Context().Done()
		return stream.Context().Err()
	}
	if s.failFirst && n == 1 {
		if _, err := stream.Recv(); err != nil {
			return err
		}
		return status.Error(codes.Unavailable, "plugin restarting")
	}
	return s.BackendServer.ProduceStream(stream)
}

func dialStreamPlugin(t *testing.T, s *streamPlugin) sdk.Backend {
	return dialServer(t, func(srv *grpc.Server) error {
		pb.RegisterBackendServer(srv, s)
		return nil
	})
}

func produceKeys(b sdk.Backend, ctx context.Context, topic string, keys ...string) ([]sdk.ProduceResult, error) {
	rs := make([]sdk.Record, len(keys))
	for i, k := range keys {
		rs[i] = sdk.Record{Topic: topic, Key: []byte(k), Value: []byte("v")}
	}
	return b.Produce(ctx, rs)
}

// produceConcurrently makes 640 calls of two records from 32 callers at
// once, and checks that each caller gets its own results.
func produceConcurrently(t *testing.T, b sdk.Backend) {
	t.Helper()
	var wg sync.WaitGroup
	for c := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				keys := []string{fmt.Sprintf("c%d-%d-a", c, i), fmt.Sprintf("c%d-%d-b", c, i)}
				res, err := produceKeys(b, context.Background(), "t", keys...)
				if err != nil {
					t.Error(err)
					return
				}
				if len(res) != 2 || res[0].Qid != keys[0] || res[1].Qid != keys[1] {
					t.Errorf("caller %d got %+v, want the results of %v", c, res, keys)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// Concurrent calls share one stream and each gets its own results.
func TestProduceStreamAnswersEachCaller(t *testing.T) {
	plugin := &streamPlugin{BackendServer: sdk.NewBackendServer(&echoBackend{})}
	b := dialStreamPlugin(t, plugin)
	produceConcurrently(t, b)
	if n := plugin.streams.Load(); n != 1 {
		t.Errorf("%d streams opened for 640 calls, want 1", n)
	}
	if n := plugin.unaryCalls.Load(); n != 0 {
		t.Errorf("%d unary calls, want none: every call goes on the stream", n)
	}
}

// A plugin built before ProduceStream gets unary calls, and is asked for
// the stream only once.
func TestProduceFallsBackToUnary(t *testing.T) {
	plugin := &streamPlugin{BackendServer: sdk.NewBackendServer(&echoBackend{}), noStream: true}
	b := dialStreamPlugin(t, plugin)
	for i := range 3 {
		key := fmt.Sprint("k", i)
		res, err := produceKeys(b, context.Background(), "t", key)
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if res[0].Qid != key {
			t.Fatalf("call %d got %+v", i, res)
		}
	}
	if n := plugin.unaryCalls.Load(); n != 3 {
		t.Errorf("%d unary calls, want 3", n)
	}
	if n := plugin.streams.Load(); n != 1 {
		t.Errorf("the stream was asked for %d times, want once", n)
	}
}

// A stream that ends fails the batches on it with code 17, as a unary call
// to a plugin going away would, and the next call opens a new one.
func TestProduceStreamEndsAndReopens(t *testing.T) {
	plugin := &streamPlugin{BackendServer: sdk.NewBackendServer(&echoBackend{}), failFirst: true}
	b := dialStreamPlugin(t, plugin)
	_, err := produceKeys(b, context.Background(), "t", "lost")
	if sdk.CodeOf(err) != sdk.CodeUnavailable {
		t.Fatalf("a batch on a stream that ended got %v (code %d), want code 17", err, sdk.CodeOf(err))
	}
	res, err := produceKeys(b, context.Background(), "t", "again")
	if err != nil || res[0].Qid != "again" {
		t.Fatalf("the call after the stream ended got %+v, %v", res, err)
	}
	if n := plugin.streams.Load(); n != 2 {
		t.Errorf("%d streams opened, want 2", n)
	}
}

// A caller that gives up gets a timeout; the stream goes on serving the
// others, and the abandoned batch's late answer is dropped.
func TestProduceStreamCallerGivesUp(t *testing.T) {
	be := &echoBackend{hold: make(chan struct{})}
	b := dialStreamPlugin(t, &streamPlugin{BackendServer: sdk.NewBackendServer(be)})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := produceKeys(b, ctx, "slow", "abandoned")
	if sdk.CodeOf(err) != sdk.CodeTimeout {
		t.Fatalf("a caller whose deadline passed got %v (code %d), want code 12", err, sdk.CodeOf(err))
	}
	res, err := produceKeys(b, context.Background(), "t", "next")
	if err != nil || res[0].Qid != "next" {
		t.Fatalf("the next call got %+v, %v", res, err)
	}
	close(be.hold)
	res, err = produceKeys(b, context.Background(), "t", "after")
	if err != nil || res[0].Qid != "after" {
		t.Fatalf("the call after the late answer got %+v, %v", res, err)
	}
}

// A plugin that stops reading its stream fills gRPC's flow-control window,
// and a Send then blocks. No caller waits past its own deadline for that:
// each gets a timeout or code 17, and the stream is given up, so the next
// call opens a new one.
func TestProduceStreamStalledPluginFreesCallers(t *testing.T) {
	plugin := &streamPlugin{BackendServer: sdk.NewBackendServer(&echoBackend{}), neverRead: true}
	b := dialStreamPlugin(t, plugin)
	produceIntoStall(t, b)
	// The window is full: the next small batch blocks in Send too, if
	// the stream was not given up already, and gives it up when its
	// caller does. Either way a later call opens a new stream.
	for i := 0; i < 5 && plugin.streams.Load() < 2; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		_, _ = produceKeys(b, ctx, "t", "after")
		cancel()
	}
	if n := plugin.streams.Load(); n < 2 {
		t.Errorf("%d streams opened, want a new one after the stalled one was given up", n)
	}
}

// produceIntoStall makes three calls of 5 MiB at once to a plugin that
// reads nothing (past a stream's 8 MiB window in two batches, and past any
// socket buffer), each with a deadline long enough for its batch to reach
// the write on a loaded machine: a caller that gave up before sending
// would leave no write blocked, and nothing to give up for. Each caller
// must get a timeout or code 17, soon after its deadline.
func produceIntoStall(t *testing.T, b sdk.Backend) {
	t.Helper()
	big := make([]byte, 5<<20) // past any socket buffer
	errs := make(chan error, 3)
	const deadline = 2 * time.Second
	for range 3 {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			_, err := b.Produce(ctx, []sdk.Record{{Topic: "t", Value: big}})
			errs <- err
		}()
	}
	for i := range 3 {
		select {
		case err := <-errs:
			if c := sdk.CodeOf(err); c != sdk.CodeTimeout && c != sdk.CodeUnavailable {
				t.Errorf("caller %d got %v (code %d), want code 12 or 17", i, err, c)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("caller %d is still blocked long after its %s deadline", i, deadline)
		}
	}
}

// A plugin built before ProduceStream gets unary calls, and their errors
// keep their codes and lastingness as the stream's do.
func TestUnaryProduceKeepsErrorCodes(t *testing.T) {
	for _, fail := range []error{
		sdk.Errorf(sdk.CodeTopicNotExist, "topic gone does not exist"),
		sdk.Lasting(sdk.Errorf(sdk.CodeUnavailable, "kafka SASL authentication failed")),
	} {
		plugin := &streamPlugin{BackendServer: sdk.NewBackendServer(&memBackend{failWith: fail}), noStream: true}
		b := dialStreamPlugin(t, plugin)
		_, err := b.Produce(context.Background(), []sdk.Record{{Topic: "gone"}})
		if sdk.CodeOf(err) != sdk.CodeOf(fail) || err.Error() != fail.Error() || errors.Is(err, sdk.ErrLasting) != errors.Is(fail, sdk.ErrLasting) {
			t.Errorf("unary Produce error = %v (code %d, lasting %v), want %v", err, sdk.CodeOf(err), errors.Is(err, sdk.ErrLasting), fail)
		}
		if plugin.unaryCalls.Load() != 1 {
			t.Errorf("%d unary calls, want 1", plugin.unaryCalls.Load())
		}
	}
}
