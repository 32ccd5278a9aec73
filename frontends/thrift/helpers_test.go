package thriftapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/frontends/thrift/gen-go/producer"
	"github.com/mqgate/mqgate/sdk"
)

// produceCall is one call the fake producer received.
type produceCall struct {
	async       bool
	topic       string
	msgs        []produce.Message
	deadline    time.Time
	hasDeadline bool
}

// fakeProducer records calls and answers them with produce and async,
// or with success when those are nil.
type fakeProducer struct {
	produce func(ctx context.Context, topic string, msgs []produce.Message) ([]sdk.ProduceResult, error)
	async   func(ctx context.Context, topic string, msgs []produce.Message) error

	mu    sync.Mutex
	calls []produceCall
}

var _ Producer = (*fakeProducer)(nil)

func (f *fakeProducer) record(ctx context.Context, async bool, topic string, msgs []produce.Message) {
	deadline, ok := ctx.Deadline()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, produceCall{async: async, topic: topic, msgs: msgs, deadline: deadline, hasDeadline: ok})
}

func (f *fakeProducer) Produce(ctx context.Context, topic string, msgs []produce.Message) ([]sdk.ProduceResult, error) {
	f.record(ctx, false, topic, msgs)
	if f.produce != nil {
		return f.produce(ctx, topic, msgs)
	}
	return okResults(msgs), nil
}

func (f *fakeProducer) ProduceAsync(ctx context.Context, topic string, msgs []produce.Message) error {
	f.record(ctx, true, topic, msgs)
	if f.async != nil {
		return f.async(ctx, topic, msgs)
	}
	return nil
}

// Calls returns the calls received so far.
func (f *fakeProducer) Calls() []produceCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]produceCall(nil), f.calls...)
}

// takeCalls returns the calls received so far and forgets them.
func (f *fakeProducer) takeCalls() []produceCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	calls := f.calls
	f.calls = nil
	return calls
}

func okResults(msgs []produce.Message) []sdk.ProduceResult {
	out := make([]sdk.ProduceResult, len(msgs))
	for i := range out {
		out[i] = sdk.ProduceResult{Qid: "0", Partition: 0, Offset: int64(i)}
	}
	return out
}

// testServer is a running ProducerServer on loopback.
type testServer struct {
	*ProducerServer
	addr string
	reg  *prometheus.Registry
}

// startServer serves p on 127.0.0.1 with a port the OS picks, and stops
// the server when the test ends.
func startServer(t *testing.T, opts Options, p Producer) *testServer {
	t.Helper()
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	if opts.Logger == nil {
		opts.Logger = discardLogger()
	}
	s := NewProducerServer(opts, p)
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
	return &testServer{ProducerServer: s, addr: l.Addr().String(), reg: opts.Registry}
}

// dial opens a generated ProducerService client over transport and
// protocol, closed when the test ends.
func dial(t *testing.T, addr, transport, protocol string) *producer.ProducerServiceClient {
	t.Helper()
	c, _ := dialTransport(t, addr, transport, protocol)
	return c
}

func dialTransport(t *testing.T, addr, transport, protocol string) (*producer.ProducerServiceClient, thrift.TTransport) {
	t.Helper()
	trans, pf := openTransport(t, addr, transport, protocol, nil)
	return producer.NewProducerServiceClientFactory(trans, pf), trans
}

// openTransport opens a client transport to addr (over TLS when tc is
// set) framed or buffered, closed when the test ends, and the protocol
// factory of protocol, as every test client of the two services needs.
func openTransport(t *testing.T, addr, transport, protocol string, tc *tls.Config) (thrift.TTransport, thrift.TProtocolFactory) {
	t.Helper()
	cfg := &thrift.TConfiguration{ConnectTimeout: 5 * time.Second, SocketTimeout: 30 * time.Second, TLSConfig: tc}
	var trans thrift.TTransport = thrift.NewTSocketConf(addr, cfg)
	if tc != nil {
		trans = thrift.NewTSSLSocketConf(addr, cfg)
	}
	if transport == TransportFramed {
		trans = thrift.NewTFramedTransportConf(trans, cfg)
	} else {
		trans = thrift.NewTBufferedTransport(trans, 8192)
	}
	if err := trans.Open(); err != nil {
		t.Fatalf("connecting to %s: %v", addr, err)
	}
	t.Cleanup(func() { trans.Close() })
	var pf thrift.TProtocolFactory = thrift.NewTCompactProtocolFactoryConf(cfg)
	if protocol == ProtocolBinary {
		pf = thrift.NewTBinaryProtocolFactoryConf(cfg)
	}
	return trans, pf
}

// wireSetups are the transport and protocol pairs every method is tested
// over: DDMQ's SDK default and the other one.
var wireSetups = []struct{ transport, protocol string }{
	{TransportFramed, ProtocolCompact},
	{TransportBuffered, ProtocolBinary},
}

// newMessage returns a message as a client would build it, with the IDL's
// defaults (partitionId -1).
func newMessage(topic, key, value string) *producer.Message {
	m := producer.NewMessage()
	m.Topic, m.Key, m.Value = topic, key, value
	return m
}

// checkFor calls fn every interval until it returns nil or total has
// passed, then fails the test with fn's last error.
func checkFor(t *testing.T, total, interval time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", total, err)
		}
		time.Sleep(interval)
	}
}

var errBoom = errors.New("boom")

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// leaveAndExpectCancelled waits until the handler has the call (started),
// closes the client's connection, and fails unless the handler's context
// then ends cancelled, as ended reports.
func leaveAndExpectCancelled(t *testing.T, call string, trans thrift.TTransport, started func() bool, ended <-chan error) {
	t.Helper()
	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if !started() {
			return fmt.Errorf("no %s yet", call)
		}
		return nil
	})
	trans.Close()
	select {
	case err := <-ended:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("the %s ended with %v; want it cancelled", call, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the %s of a client that closed its connection still waits", call)
	}
}
