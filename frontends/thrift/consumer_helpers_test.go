package thriftapi

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqgate/mqgate/core/consume"
	"github.com/mqgate/mqgate/frontends/thrift/gen-go/consumer"
)

// pullArgs is one Pull the fake consumer received.
type pullArgs struct {
	group, topic string
	max          int
	wait         time.Duration
	deadline     time.Time // its context's deadline; zero when none
}

// fakeConsumer records calls and answers them with its funcs, or with
// empty successes when those are nil. Only the methods the Thrift
// ConsumerService uses are scripted.
type fakeConsumer struct {
	pull     func(ctx context.Context, group, topic string, max int, wait time.Duration) (consume.Batch, error)
	ackFn    func(ctx context.Context, acks []consume.Ack) error
	stats    func(ctx context.Context, group, topic string) ([]consume.Stats, error)
	fetch    func(ctx context.Context, cluster string, offsets map[string]map[string]int64, max int, wait time.Duration) ([]consume.QidMessages, error)
	commit   func(ctx context.Context, cluster, group string, offsets map[string]map[string]int64) error
	maxBatch int // 0: 1000

	mu      sync.Mutex
	pulls   []pullArgs
	acks    [][]consume.Ack // one entry per Ack call
	commits []commitArgs
	fetches []fetchArgs
	// order records "ack" and "pull" as they are called.
	order []string
}

type commitArgs struct {
	cluster, group string
	offsets        map[string]map[string]int64
}

type fetchArgs struct {
	group   string
	cluster string
	offsets map[string]map[string]int64
	max     int
	wait    time.Duration
}

var _ consume.Consumer = (*fakeConsumer)(nil)

func (f *fakeConsumer) Pull(ctx context.Context, group, topic string, max int, wait time.Duration) (consume.Batch, error) {
	deadline, _ := ctx.Deadline()
	f.mu.Lock()
	f.pulls = append(f.pulls, pullArgs{group: group, topic: topic, max: max, wait: wait, deadline: deadline})
	f.order = append(f.order, "pull")
	f.mu.Unlock()
	if f.pull != nil {
		return f.pull(ctx, group, topic, max, wait)
	}
	return consume.Batch{Group: group, Topic: topic}, nil
}

func (f *fakeConsumer) Ack(ctx context.Context, acks []consume.Ack) error {
	f.mu.Lock()
	f.acks = append(f.acks, acks)
	f.order = append(f.order, "ack")
	f.mu.Unlock()
	if f.ackFn != nil {
		return f.ackFn(ctx, acks)
	}
	return nil
}

func (f *fakeConsumer) DeadLetterTopic(group string) string { return group + "-dlq" }

func (f *fakeConsumer) Sessions(string) []consume.SessionView { return nil }

func (f *fakeConsumer) Stats(ctx context.Context, group, topic string) ([]consume.Stats, error) {
	if f.stats != nil {
		return f.stats(ctx, group, topic)
	}
	return nil, nil
}

func (f *fakeConsumer) Fetch(ctx context.Context, group, cluster string, offsets map[string]map[string]int64, max int, wait time.Duration) ([]consume.QidMessages, error) {
	f.mu.Lock()
	f.fetches = append(f.fetches, fetchArgs{group: group, cluster: cluster, offsets: offsets, max: max, wait: wait})
	f.mu.Unlock()
	if f.fetch != nil {
		return f.fetch(ctx, cluster, offsets, max, wait)
	}
	return nil, nil
}

func (f *fakeConsumer) Commit(ctx context.Context, cluster, group string, offsets map[string]map[string]int64) error {
	f.mu.Lock()
	f.commits = append(f.commits, commitArgs{cluster: cluster, group: group, offsets: offsets})
	f.mu.Unlock()
	if f.commit != nil {
		return f.commit(ctx, cluster, group, offsets)
	}
	return nil
}

func (f *fakeConsumer) BatchInfo(context.Context, string, string) (consume.BatchInfo, error) {
	panic("not used by the Thrift ConsumerService")
}

func (f *fakeConsumer) FetchNew(context.Context, string, string, int, *int64) (int64, []consume.Message, error) {
	panic("not used by the Thrift ConsumerService")
}

func (f *fakeConsumer) FetchOld(context.Context, string, string, int64) ([]consume.Message, error) {
	panic("not used by the Thrift ConsumerService")
}

func (f *fakeConsumer) AckBatch(context.Context, string, string, int64) (int64, error) {
	panic("not used by the Thrift ConsumerService")
}

func (f *fakeConsumer) MaxBatch() int {
	if f.maxBatch == 0 {
		return 1000
	}
	return f.maxBatch
}

// ackCalls returns the Ack calls received so far.
func (f *fakeConsumer) ackCalls() [][]consume.Ack {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]consume.Ack(nil), f.acks...)
}

func (f *fakeConsumer) pullCalls() []pullArgs {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]pullArgs(nil), f.pulls...)
}

func (f *fakeConsumer) commitCalls() []commitArgs {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]commitArgs(nil), f.commits...)
}

func (f *fakeConsumer) callOrder() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.order...)
}

// testConsumerServer is a running ConsumerServer on loopback.
type testConsumerServer struct {
	*ConsumerServer
	addr string
	reg  *prometheus.Registry
}

// startConsumerServer serves c on 127.0.0.1 with a port the OS picks,
// and stops the server when the test ends.
func startConsumerServer(t *testing.T, opts Options, c consume.Consumer) *testConsumerServer {
	t.Helper()
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	if opts.Logger == nil {
		opts.Logger = discardLogger()
	}
	s := NewConsumerServer(opts, c)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &testConsumerServer{ConsumerServer: s, addr: l.Addr().String(), reg: opts.Registry}
}

// dialConsumer opens a generated ConsumerService client over transport
// and protocol, closed when the test ends.
func dialConsumer(t *testing.T, addr, transport, protocol string) *consumer.ConsumerServiceClient {
	t.Helper()
	return consumer.NewConsumerServiceClientFactory(openTransport(t, addr, transport, protocol, nil))
}
