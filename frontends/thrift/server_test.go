package thriftapi

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	dto "github.com/prometheus/client_model/go"

	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/frontends/thrift/gen-go/producer"
	"github.com/mqgate/mqgate/sdk"
)

func allBytes() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// TestEveryMethod calls every method with the generated Go client over
// both wire setups and checks what reaches the producer.
func TestEveryMethod(t *testing.T) {
	for _, w := range wireSetups {
		t.Run(w.transport+"+"+w.protocol, func(t *testing.T) {
			fake := &fakeProducer{}
			srv := startServer(t, Options{Transport: w.transport, Protocol: w.protocol}, fake)
			client := dial(t, srv.addr, w.transport, w.protocol)
			ctx := context.Background()

			t.Run("sendSync binary body and properties", func(t *testing.T) {
				m := newMessage("orders", "k1", "ignored when body is set")
				m.Body = allBytes()
				m.Tags = "tagA"
				m.Properties = map[string]string{"b": "2", "a": "1", "ünï": "cödé"}
				before := len(fake.Calls())
				res, err := client.SendSync(ctx, m, 5000)
				if err != nil {
					t.Fatal(err)
				}
				if res.Code != 0 || res.Msg != "OK" || res.Key == nil || *res.Key != "k1" {
					t.Fatalf("result = %v, want code 0, msg OK, key k1", res)
				}
				calls := fake.Calls()[before:]
				if len(calls) != 1 || calls[0].async || calls[0].topic != "orders" || len(calls[0].msgs) != 1 {
					t.Fatalf("producer calls = %+v, want one sync call to orders with one message", calls)
				}
				got := calls[0].msgs[0]
				if !bytes.Equal(got.Value, allBytes()) {
					t.Errorf("value = %x, want all 256 byte values", got.Value)
				}
				if string(got.Key) != "k1" || got.Tags != "tagA" {
					t.Errorf("key, tags = %q, %q; want k1, tagA", got.Key, got.Tags)
				}
				wantHeaders := []sdk.Header{{Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("2")}, {Key: "ünï", Value: []byte("cödé")}}
				if !headersEqual(got.Headers, wantHeaders) {
					t.Errorf("headers = %v, want %v", got.Headers, wantHeaders)
				}
			})

			t.Run("sendSync value without body", func(t *testing.T) {
				before := len(fake.Calls())
				res, err := client.SendSync(ctx, newMessage("orders", "", "plain text"), 5000)
				if err != nil {
					t.Fatal(err)
				}
				if res.Code != 0 || res.Key == nil || *res.Key != "" {
					t.Fatalf("result = %v, want code 0 and the empty key echoed", res)
				}
				got := fake.Calls()[before].msgs[0]
				if string(got.Value) != "plain text" || got.Key != nil {
					t.Errorf("message = %+v, want value %q and no key", got, "plain text")
				}
			})

			t.Run("sendBatchSync spans topics and keeps order", func(t *testing.T) {
				before := len(fake.Calls())
				batch := []*producer.Message{
					newMessage("a", "k0", "v0"),
					newMessage("b", "k1", "v1"),
					newMessage("a", "k2", "v2"),
					newMessage("a", "k3", "v3"),
				}
				batch[1].Body = []byte{0, 255}
				res, err := client.SendBatchSync(ctx, batch)
				if err != nil {
					t.Fatal(err)
				}
				if res.Code != 0 || res.Msg != "OK" {
					t.Fatalf("result = %v, want code 0", res)
				}
				calls := fake.Calls()[before:]
				slices.SortFunc(calls, func(x, y produceCall) int { return strings.Compare(x.topic, y.topic) })
				if len(calls) != 2 || calls[0].topic != "a" || calls[1].topic != "b" {
					t.Fatalf("producer calls = %+v, want one to a and one to b", calls)
				}
				var keys []string
				for _, m := range calls[0].msgs {
					keys = append(keys, string(m.Key))
				}
				if !slices.Equal(keys, []string{"k0", "k2", "k3"}) {
					t.Errorf("keys produced to a = %v, want k0 k2 k3 in order", keys)
				}
				if !bytes.Equal(calls[1].msgs[0].Value, []byte{0, 255}) {
					t.Errorf("value produced to b = %x, want 00ff", calls[1].msgs[0].Value)
				}
			})

			t.Run("sendAsync", func(t *testing.T) {
				before := len(fake.Calls())
				res, err := client.SendAsync(ctx, newMessage("orders", "k9", "later"))
				if err != nil {
					t.Fatal(err)
				}
				if res.Code != 0 || res.Key == nil || *res.Key != "k9" {
					t.Fatalf("result = %v, want code 0 and key k9", res)
				}
				calls := fake.Calls()[before:]
				if len(calls) != 1 || !calls[0].async || string(calls[0].msgs[0].Value) != "later" {
					t.Fatalf("producer calls = %+v, want one async call", calls)
				}
			})

			t.Run("sendDelaySync", func(t *testing.T) {
				before := len(fake.Calls())
				dm := producer.NewDelayMessage()
				dm.Topic = "orders"
				id := "delay-1"
				dm.UniqDelayMsgId = &id
				dm.Body = []byte("x")
				res, err := client.SendDelaySync(ctx, dm, 1000)
				if err != nil {
					t.Fatal(err)
				}
				if res.Code != 11 || res.Msg != "delay messages are not enabled" || res.UniqDelayMsgId != "delay-1" {
					t.Fatalf("result = %v, want code 11, not enabled, id echoed", res)
				}
				if n := len(fake.Calls()) - before; n != 0 {
					t.Errorf("producer called %d times", n)
				}
			})
		})
	}
}

func headersEqual(a, b []sdk.Header) bool {
	return slices.EqualFunc(a, b, func(x, y sdk.Header) bool { return x.Key == y.Key && bytes.Equal(x.Value, y.Value) })
}

// TestPartitionMapping checks the placement each partitionId, hashId and
// key combination gets with informative answers; TestDDMQPlacement has
// DDMQ's.
func TestPartitionMapping(t *testing.T) {
	fake := &fakeProducer{}
	srv := startServer(t, Options{Answers: AnswersInformative}, fake)
	client := dial(t, srv.addr, TransportFramed, ProtocolCompact)
	keyHashPart, keyHash := produce.Placement(&produce.Message{Key: []byte("k"), Partition: sdk.PartitionHash})
	if keyHashPart != sdk.PartitionHash {
		t.Fatalf("Placement by key = %d", keyHashPart)
	}

	for _, tc := range []struct {
		name        string
		partitionID int32
		hashID      int64
		key         string
		wantHashID  *int64
		wantPart    int32  // from produce.Placement
		wantHash    uint64 // from produce.Placement
	}{
		{"-1 with hashId", -1, 7, "", ptr(int64(7)), sdk.PartitionHash, 7},
		{"-1 hashId wins over key", -1, -7, "k", ptr(int64(-7)), sdk.PartitionHash, 7},
		{"-1 hashId 0 falls back to key", -1, 0, "k", nil, sdk.PartitionHash, keyHash},
		{"-1 hashId 0 and no key is random", -1, 0, "", nil, sdk.PartitionRandom, 0},
		{"-2 random ignores hashId and key", -2, 7, "k", nil, sdk.PartitionRandom, 0},
		{"explicit 3", 3, 7, "k", nil, 3, 0},
		{"explicit 0", 0, 0, "", nil, 0, 0},
		{"explicit max", math.MaxInt32, 0, "", nil, math.MaxInt32, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMessage("orders", tc.key, "v")
			m.PartitionId, m.HashId = tc.partitionID, tc.hashID
			before := len(fake.Calls())
			res, err := client.SendSync(context.Background(), m, 1000)
			if err != nil || res.Code != 0 {
				t.Fatalf("SendSync = %v, %v", res, err)
			}
			got := fake.Calls()[before].msgs[0]
			if got.Partition != tc.partitionID {
				t.Errorf("Partition = %d, want %d", got.Partition, tc.partitionID)
			}
			if (got.HashID == nil) != (tc.wantHashID == nil) || got.HashID != nil && *got.HashID != *tc.wantHashID {
				t.Errorf("HashID = %v, want %v", deref(got.HashID), deref(tc.wantHashID))
			}
			part, hash := produce.Placement(&got)
			if part != tc.wantPart || hash != tc.wantHash {
				t.Errorf("Placement = (%d, %d), want (%d, %d)", part, hash, tc.wantPart, tc.wantHash)
			}
		})
	}

	t.Run("NewMessage defaults to -1", func(t *testing.T) {
		if p := producer.NewMessage().PartitionId; p != -1 {
			t.Fatalf("NewMessage().PartitionId = %d, want -1 (the IDL's default)", p)
		}
	})
}

func ptr[T any](v T) *T { return &v }

func deref(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestBadInput checks that every kind of bad input is answered with code
// 11 or 16 naming the field or limit, that the producer is not called,
// and that the connection keeps working. With informative answers: the
// empty batch and the odd partitionIds pass with DDMQ's
// (TestDDMQProducerAnswers).
func TestBadInput(t *testing.T) {
	fake := &fakeProducer{}
	srv := startServer(t, Options{MaxMessageBytes: 1024, MaxBatchMessages: 3, Answers: AnswersInformative}, fake)
	client := dial(t, srv.addr, TransportFramed, ProtocolCompact)
	ctx := context.Background()

	msg := func(edit func(m *producer.Message)) *producer.Message {
		m := newMessage("orders", "k", "v")
		edit(m)
		return m
	}
	sync := func(m *producer.Message) func() (*producer.Result_, error) {
		return func() (*producer.Result_, error) { return client.SendSync(ctx, m, 1000) }
	}
	async := func(m *producer.Message) func() (*producer.Result_, error) {
		return func() (*producer.Result_, error) { return client.SendAsync(ctx, m) }
	}
	batch := func(ms ...*producer.Message) func() (*producer.Result_, error) {
		return func() (*producer.Result_, error) { return client.SendBatchSync(ctx, ms) }
	}
	good := newMessage("orders", "k", "v")

	for _, tc := range []struct {
		name     string
		call     func() (*producer.Result_, error)
		wantCode int32
		wantMsg  string
	}{
		{"empty topic", sync(msg(func(m *producer.Message) { m.Topic = "" })), 11, "message.topic: must not be empty"},
		{"illegal topic", sync(msg(func(m *producer.Message) { m.Topic = "a b" })), 11, "message.topic: character ' ' at byte 1"},
		{"topic too long", sync(msg(func(m *producer.Message) { m.Topic = strings.Repeat("t", 250) })), 11, "message.topic: must be at most 249"},
		{"no body or value", sync(msg(func(m *producer.Message) { m.Value = "" })), 11, "message.body: required"},
		{"oversize body", sync(msg(func(m *producer.Message) { m.Body = make([]byte, 1025) })), 16, "over the limit of 1024 bytes (http.max_message_bytes)"},
		{"oversize with properties", sync(msg(func(m *producer.Message) {
			m.Body = make([]byte, 1000)
			m.Properties = map[string]string{"p": strings.Repeat("x", 30)}
		})), 16, "message is 1032 bytes"},
		{"partitionId -3", sync(msg(func(m *producer.Message) { m.PartitionId = -3 })), 11, "message.partitionId: must be -1 (by hashId or key), -2 (random) or a partition >= 0; got -3"},
		{"partitionId min", sync(msg(func(m *producer.Message) { m.PartitionId = math.MinInt32 })), 11, "message.partitionId"},
		{"async empty topic", async(msg(func(m *producer.Message) { m.Topic = "" })), 11, "message.topic: must not be empty"},
		{"async oversize", async(msg(func(m *producer.Message) { m.Value = strings.Repeat("v", 2000) })), 16, "max_message_bytes"},
		{"empty batch", batch(), 11, "messages: must not be empty"},
		{"batch over max_batch_messages", batch(good, good, good, good), 16, "messages: 4 messages, over the limit of 3 per call (http.max_batch_messages)"},
		{"batch with a bad topic", batch(good, good, msg(func(m *producer.Message) { m.Topic = "" })), 11, "messages[2].topic: must not be empty"},
		{"batch with a missing value", batch(msg(func(m *producer.Message) { m.Value = "" }), good), 11, "messages[0].body: required"},
		{"batch with a bad partitionId", batch(good, msg(func(m *producer.Message) { m.PartitionId = -9 })), 11, "messages[1].partitionId"},
		{"batch with an oversize message", batch(good, msg(func(m *producer.Message) { m.Body = make([]byte, 4096) })), 16, "messages[1] is 4097 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(fake.Calls())
			res, err := tc.call()
			if err != nil {
				t.Fatalf("call failed: %v", err)
			}
			if res.Code != tc.wantCode || !strings.Contains(res.Msg, tc.wantMsg) {
				t.Errorf("result = {%d %q}, want code %d and a msg containing %q", res.Code, res.Msg, tc.wantCode, tc.wantMsg)
			}
			if n := len(fake.Calls()) - before; n != 0 {
				t.Errorf("producer called %d times, want 0", n)
			}
		})
	}

	// The connection survived every refusal.
	res, err := client.SendSync(ctx, good, 1000)
	if err != nil || res.Code != 0 {
		t.Fatalf("SendSync after bad input = %v, %v; want code 0", res, err)
	}
}

// TestProducerErrors checks that the producer's errors reach the client
// with their codes.
func TestProducerErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		callErr  error // returned as Produce's call error
		msgErr   error // returned as the message's result
		wantCode int32
		wantMsg  string
	}{
		{"topic does not exist", sdk.Errorf(sdk.CodeTopicNotExist, "topic %q does not exist", "orders"), nil, 14, `topic "orders" does not exist`},
		{"rate limited", nil, sdk.Errorf(sdk.CodeRateLimited, "topic orders: over its rate limit of 10 messages/s"), 15, "over its rate limit"},
		{"timeout from the backend", nil, sdk.Errorf(sdk.CodeTimeout, "broker did not answer within 1s"), 12, "broker did not answer"},
		{"unavailable", fmt.Errorf("producing to orders: %w", sdk.Errorf(sdk.CodeUnavailable, "plugin kafka is restarting")), nil, 17, "plugin kafka is restarting"},
		{"not allowed", sdk.Errorf(sdk.CodeNotAllowed, "topic orders is not routed"), nil, 13, "not routed"},
		{"internal", errBoom, nil, 100, "internal error"},
		{"internal per message", nil, errBoom, 100, "internal error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := &fakeProducer{produce: func(ctx context.Context, topic string, msgs []produce.Message) ([]sdk.ProduceResult, error) {
				if tc.callErr != nil {
					return nil, tc.callErr
				}
				res := okResults(msgs)
				res[0].Err = tc.msgErr
				return res, nil
			}}
			srv := startServer(t, Options{}, fake)
			client := dial(t, srv.addr, TransportFramed, ProtocolCompact)
			res, err := client.SendSync(context.Background(), newMessage("orders", "k", "v"), 1000)
			if err != nil {
				t.Fatal(err)
			}
			if res.Code != tc.wantCode || !strings.Contains(res.Msg, tc.wantMsg) || res.Key == nil || *res.Key != "k" {
				t.Errorf("result = %v, want code %d, msg containing %q, key k", res, tc.wantCode, tc.wantMsg)
			}
		})
	}

	t.Run("async spool full", func(t *testing.T) {
		fake := &fakeProducer{async: func(context.Context, string, []produce.Message) error {
			return sdk.Errorf(sdk.CodeUnavailable, "spool is full (producer.spool_max_bytes)")
		}}
		srv := startServer(t, Options{}, fake)
		client := dial(t, srv.addr, TransportFramed, ProtocolCompact)
		res, err := client.SendAsync(context.Background(), newMessage("orders", "k", "v"))
		if err != nil {
			t.Fatal(err)
		}
		if res.Code != 17 || !strings.Contains(res.Msg, "spool is full") {
			t.Errorf("result = %v, want code 17 spool is full", res)
		}
	})

	t.Run("sendSync past its timeout", func(t *testing.T) {
		fake := &fakeProducer{produce: func(ctx context.Context, topic string, msgs []produce.Message) ([]sdk.ProduceResult, error) {
			<-ctx.Done()
			return nil, fmt.Errorf("producing to %s: %w", topic, ctx.Err())
		}}
		srv := startServer(t, Options{}, fake)
		client := dial(t, srv.addr, TransportFramed, ProtocolCompact)
		start := time.Now()
		res, err := client.SendSync(context.Background(), newMessage("orders", "k", "v"), 50)
		if err != nil {
			t.Fatal(err)
		}
		if res.Code != 12 || res.Msg != "timed out after 50ms (the sendSync timeout)" {
			t.Errorf("result = %v, want code 12 timed out after 50ms", res)
		}
		if d := time.Since(start); d < 50*time.Millisecond || d > 5*time.Second {
			t.Errorf("answered after %s, want about 50ms", d)
		}
	})

	t.Run("batch reports which messages failed", func(t *testing.T) {
		fake := &fakeProducer{produce: func(ctx context.Context, topic string, msgs []produce.Message) ([]sdk.ProduceResult, error) {
			if topic == "b" {
				return nil, sdk.Errorf(sdk.CodeTopicNotExist, "topic %q does not exist", topic)
			}
			res := okResults(msgs)
			for i, m := range msgs {
				if string(m.Key) == "limited" {
					res[i].Err = sdk.Errorf(sdk.CodeRateLimited, "rate limited")
				}
			}
			return res, nil
		}}
		srv := startServer(t, Options{}, fake)
		client := dial(t, srv.addr, TransportFramed, ProtocolCompact)
		batch := []*producer.Message{
			newMessage("a", "ok", "v"),      // 0
			newMessage("b", "ok", "v"),      // 1
			newMessage("a", "limited", "v"), // 2
			newMessage("b", "ok", "v"),      // 3
			newMessage("b", "ok", "v"),      // 4
			newMessage("a", "ok", "v"),      // 5
		}
		res, err := client.SendBatchSync(context.Background(), batch)
		if err != nil {
			t.Fatal(err)
		}
		want := `4 of 6 failed: [1 3-4] code 14 topic "b" does not exist; [2] code 15 rate limited`
		if res.Code != 14 || res.Msg != want {
			t.Errorf("result = {%d %q}, want {14 %q}", res.Code, res.Msg, want)
		}
	})
}

// TestTimeouts checks the deadline each method gives the producer.
func TestTimeouts(t *testing.T) {
	fake := &fakeProducer{}
	srv := startServer(t, Options{DefaultTimeout: 3 * time.Second, MaxTimeout: 5 * time.Second}, fake)
	client := dial(t, srv.addr, TransportFramed, ProtocolCompact)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		call func() (*producer.Result_, error)
		want time.Duration
	}{
		{"sendSync 250ms", func() (*producer.Result_, error) { return client.SendSync(ctx, newMessage("t", "", "v"), 250) }, 250 * time.Millisecond},
		{"sendSync 0 takes the default", func() (*producer.Result_, error) { return client.SendSync(ctx, newMessage("t", "", "v"), 0) }, 3 * time.Second},
		{"sendSync negative takes the default", func() (*producer.Result_, error) { return client.SendSync(ctx, newMessage("t", "", "v"), -5) }, 3 * time.Second},
		{"sendSync huge is capped", func() (*producer.Result_, error) {
			return client.SendSync(ctx, newMessage("t", "", "v"), math.MaxInt64)
		}, 5 * time.Second},
		{"sendBatchSync takes the default", func() (*producer.Result_, error) {
			return client.SendBatchSync(ctx, []*producer.Message{newMessage("t", "", "v")})
		}, 3 * time.Second},
		{"sendAsync takes the default", func() (*producer.Result_, error) { return client.SendAsync(ctx, newMessage("t", "", "v")) }, 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(fake.Calls())
			start := time.Now()
			res, err := tc.call()
			if err != nil || res.Code != 0 {
				t.Fatalf("call = %v, %v", res, err)
			}
			c := fake.Calls()[before]
			if !c.hasDeadline {
				t.Fatal("producer got no deadline")
			}
			end := time.Now()
			if c.deadline.Before(start.Add(tc.want)) || c.deadline.After(end.Add(tc.want)) {
				t.Errorf("deadline %s after the call began (which took %s), want %s", c.deadline.Sub(start), end.Sub(start), tc.want)
			}
		})
	}
}

// TestStop checks that Stop closes idle connections at once, answers the
// call in flight, and then returns.
func TestStop(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	fake := &fakeProducer{produce: func(ctx context.Context, topic string, msgs []produce.Message) ([]sdk.ProduceResult, error) {
		entered <- struct{}{}
		<-release
		return okResults(msgs), nil
	}}
	s := NewProducerServer(Options{Logger: discardLogger()}, fake)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	addr := l.Addr().String()

	busy := dial(t, addr, TransportFramed, ProtocolCompact)
	idle, idleTrans := dialTransport(t, addr, TransportFramed, ProtocolCompact)
	// The idle connection has been accepted once a call on it succeeded.
	if _, err := idle.SendDelaySync(context.Background(), producer.NewDelayMessage(), 0); err != nil {
		t.Fatal(err)
	}

	answered := make(chan *producer.Result_, 1)
	go func() {
		res, err := busy.SendSync(context.Background(), newMessage("orders", "k", "v"), 10000)
		if err != nil {
			t.Errorf("in-flight SendSync: %v", err)
		}
		answered <- res
	}()
	<-entered

	stopped := make(chan error, 1)
	go func() { stopped <- s.Stop() }()

	// The idle connection is closed while the call is still in flight.
	buf := make([]byte, 1)
	if n, err := idleTrans.Read(buf); err == nil {
		t.Fatalf("idle connection read %d bytes, want it closed", n)
	}
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned %v with a call in flight", err)
	default:
	}
	// New connections are refused.
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("dial after Stop succeeded")
	}

	close(release)
	if res := <-answered; res == nil || res.Code != 0 {
		t.Fatalf("in-flight call answered %v, want code 0", res)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

// TestStopTimeout checks that Stop is bounded: past StopTimeout the call
// in flight is cancelled and answered with code 17.
func TestStopTimeout(t *testing.T) {
	entered := make(chan struct{}, 1)
	fake := &fakeProducer{produce: func(ctx context.Context, topic string, msgs []produce.Message) ([]sdk.ProduceResult, error) {
		entered <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	s := NewProducerServer(Options{Logger: discardLogger(), StopTimeout: 200 * time.Millisecond}, fake)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	client := dial(t, l.Addr().String(), TransportFramed, ProtocolCompact)
	answered := make(chan *producer.Result_, 1)
	go func() {
		res, err := client.SendSync(context.Background(), newMessage("orders", "k", "v"), 30000)
		if err != nil {
			t.Errorf("in-flight SendSync: %v", err)
		}
		answered <- res
	}()
	<-entered
	start := time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- s.Stop() }()
	// Stop's own timers bound it to StopTimeout plus a second of grace;
	// the test's bound only guards against a hang. That the call was
	// cut short, not left to its 30 s timeout, the answer below shows.
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("Stop: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Stop did not return")
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("Stop took %s: it should wait its StopTimeout of 200ms for the call first", d)
	}
	if res := <-answered; res == nil || res.Code != 17 || !strings.Contains(res.Msg, "stopping") {
		t.Fatalf("in-flight call answered %v, want code 17 stopping", res)
	}
}

// TestServeAfterStop checks Serve returns at once after Stop.
func TestServeAfterStop(t *testing.T) {
	s := NewProducerServer(Options{Logger: discardLogger()}, &fakeProducer{})
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(l); err != nil {
		t.Fatalf("Serve after Stop = %v, want nil", err)
	}
	if _, err := l.Accept(); err == nil {
		t.Fatal("listener still open after Serve returned")
	}
}

func TestBadOptions(t *testing.T) {
	s := NewProducerServer(Options{Logger: discardLogger(), Transport: "http", Protocol: "json"}, &fakeProducer{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	err = s.Serve(l)
	if err == nil || !strings.Contains(err.Error(), `thrift transport: must be framed or buffered; got "http"`) ||
		!strings.Contains(err.Error(), `thrift protocol: must be compact or binary; got "json"`) {
		t.Fatalf("Serve = %v, want errors naming transport and protocol", err)
	}
}

// TestGarbageInput checks that input that is not Thrift closes only its
// own connection, and that containers larger than their frame are refused
// before the producer sees anything.
func TestGarbageInput(t *testing.T) {
	fake := &fakeProducer{}
	srv := startServer(t, Options{}, fake)
	good := dial(t, srv.addr, TransportFramed, ProtocolCompact)

	for _, tc := range []struct {
		name  string
		input []byte
		// wantAnswer is in the answer when set: the exception's message.
		wantAnswer string
	}{
		{"http request", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), ""},
		{"unframed binary call", unframed(t, "sendSync"), ""},
		{"frame too large", []byte{0x7f, 0xff, 0xff, 0xff, 1, 2, 3}, ""},
		{"list larger than its frame", hugeList(t), "container size exceeds the request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", srv.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.Write(tc.input); err != nil {
				t.Fatal(err)
			}
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			// The server answers with at most an exception, then closes.
			var answer []byte
			var buf [4096]byte
			for {
				n, err := conn.Read(buf[:])
				answer = append(answer, buf[:n]...)
				if err != nil {
					if ne, ok := err.(net.Error); ok && ne.Timeout() {
						t.Fatal("connection still open after garbage")
					}
					break
				}
			}
			if !bytes.Contains(answer, []byte(tc.wantAnswer)) {
				t.Errorf("answer %q does not contain %q", answer, tc.wantAnswer)
			}
		})
	}
	if n := len(fake.Calls()); n != 0 {
		t.Errorf("producer called %d times", n)
	}
	if res, err := good.SendSync(context.Background(), newMessage("orders", "k", "v"), 1000); err != nil || res.Code != 0 {
		t.Fatalf("SendSync on another connection = %v, %v", res, err)
	}
}

// unframed is a binary-protocol call without a frame: a client with the
// wrong transport.
func unframed(t *testing.T, method string) []byte {
	buf := thrift.NewTMemoryBuffer()
	p := thrift.NewTBinaryProtocolConf(buf, nil)
	ctx := context.Background()
	if err := p.WriteMessageBegin(ctx, method, thrift.CALL, 1); err != nil {
		t.Fatal(err)
	}
	args := producer.NewProducerServiceSendSyncArgs()
	args.Message = newMessage("orders", "k", "v")
	if err := args.Write(ctx, p); err != nil {
		t.Fatal(err)
	}
	p.WriteMessageEnd(ctx)
	return buf.Bytes()
}

// hugeList is a framed compact sendBatchSync call whose list declares
// 50 million messages in a frame of a few bytes.
func hugeList(tb testing.TB) []byte {
	return frameOf(tb, func(p thrift.TProtocol) {
		ctx := context.Background()
		p.WriteMessageBegin(ctx, "sendBatchSync", thrift.CALL, 1)
		p.WriteStructBegin(ctx, "args")
		p.WriteFieldBegin(ctx, "messages", thrift.LIST, 1)
		p.WriteListBegin(ctx, thrift.STRUCT, 50_000_000)
	})
}

// TestUnknownMethodKeepsConnection checks that a call of a method the
// service lacks is answered with an exception on a connection that stays
// usable.
func TestUnknownMethodKeepsConnection(t *testing.T) {
	fake := &fakeProducer{}
	srv := startServer(t, Options{}, fake)
	_, trans := dialTransport(t, srv.addr, TransportFramed, ProtocolCompact)
	p := thrift.NewTCompactProtocolConf(trans, nil)
	ctx := context.Background()
	p.WriteMessageBegin(ctx, "sendSomething", thrift.CALL, 7)
	p.WriteStructBegin(ctx, "args")
	p.WriteFieldStop(ctx)
	p.WriteStructEnd(ctx)
	p.WriteMessageEnd(ctx)
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	name, typ, seq, err := p.ReadMessageBegin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	exc := thrift.NewTApplicationException(0, "")
	if err := exc.Read(ctx, p); err != nil {
		t.Fatal(err)
	}
	p.ReadMessageEnd(ctx)
	if name != "sendSomething" || typ != thrift.EXCEPTION || seq != 7 || exc.TypeId() != thrift.UNKNOWN_METHOD {
		t.Fatalf("answer = %s %d %d %v, want an UNKNOWN_METHOD exception", name, typ, seq, exc)
	}
	client := producer.NewProducerServiceClientProtocol(trans, p, p)
	if res, err := client.SendSync(ctx, newMessage("orders", "k", "v"), 1000); err != nil || res.Code != 0 {
		t.Fatalf("SendSync after the unknown method = %v, %v", res, err)
	}
}

// TestLargeMessageOverBothSetups sends a message just under the limit: the
// frame and string limits leave room for it.
func TestLargeMessageOverBothSetups(t *testing.T) {
	for _, w := range wireSetups {
		t.Run(w.transport+"+"+w.protocol, func(t *testing.T) {
			fake := &fakeProducer{}
			srv := startServer(t, Options{Transport: w.transport, Protocol: w.protocol, MaxMessageBytes: 1 << 20, MaxRequestBytes: 1}, fake)
			client := dial(t, srv.addr, w.transport, w.protocol)
			m := newMessage("orders", "k", "")
			m.Body = bytes.Repeat([]byte{0xab}, 1<<20-1)
			res, err := client.SendSync(context.Background(), m, 5000)
			if err != nil || res.Code != 0 {
				t.Fatalf("SendSync of 1 MiB = %v, %v", res, err)
			}
			m.Body = append(m.Body, 0xab)
			res, err = client.SendSync(context.Background(), m, 5000)
			if err != nil || res.Code != 16 {
				t.Fatalf("SendSync of 1 MiB + 1 = %v, %v; want code 16", res, err)
			}
		})
	}
}

// TestMetrics checks the request counter and duration histogram.
func TestMetrics(t *testing.T) {
	fake := &fakeProducer{}
	srv := startServer(t, Options{}, fake)
	client := dial(t, srv.addr, TransportFramed, ProtocolCompact)
	ctx := context.Background()
	client.SendSync(ctx, newMessage("orders", "k", "v"), 1000)
	client.SendSync(ctx, newMessage("orders", "k", "v"), 1000)
	client.SendSync(ctx, newMessage("", "k", "v"), 1000)
	client.SendDelaySync(ctx, producer.NewDelayMessage(), 0)

	for _, tc := range []struct {
		method, code string
		want         float64
	}{
		{"sendSync", "0", 2},
		{"sendSync", "11", 1},
		{"sendDelaySync", "11", 1},
		{"sendAsync", "0", 0},
	} {
		var m dto.Metric
		if err := srv.metrics.requests.WithLabelValues(tc.method, tc.code).Write(&m); err != nil {
			t.Fatal(err)
		}
		if got := m.GetCounter().GetValue(); got != tc.want {
			t.Errorf("mqgate_thrift_requests_total{method=%q,code=%q} = %v, want %v", tc.method, tc.code, got, tc.want)
		}
	}
	families, err := srv.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "mqgate_thrift_request_duration_seconds" {
			continue
		}
		counts := map[string]uint64{}
		for _, m := range f.GetMetric() {
			counts[m.GetLabel()[0].GetValue()] = m.GetHistogram().GetSampleCount()
		}
		if counts["sendSync"] != 3 || counts["sendDelaySync"] != 1 || len(counts) != 2 {
			t.Errorf("duration sample counts = %v, want sendSync 3, sendDelaySync 1", counts)
		}
	}
	// A second server on the same registry shares the metrics.
	NewProducerServer(Options{Registry: srv.reg, Logger: discardLogger()}, fake)
}

// TestMaxConnections checks that connections past the cap wait in the
// backlog until a slot frees, instead of being served or refused.
func TestMaxConnections(t *testing.T) {
	fake := &fakeProducer{}
	srv := startServer(t, Options{MaxConnections: 1}, fake)
	first, firstTrans := dialTransport(t, srv.addr, TransportFramed, ProtocolCompact)
	if res, err := first.SendSync(context.Background(), newMessage("orders", "k", "v"), 1000); err != nil || res.Code != 0 {
		t.Fatalf("first connection: %v, %v", res, err)
	}
	second := dial(t, srv.addr, TransportFramed, ProtocolCompact)
	answered := make(chan error, 1)
	go func() {
		_, err := second.SendSync(context.Background(), newMessage("orders", "k", "v"), 1000)
		answered <- err
	}()
	select {
	case err := <-answered:
		t.Fatalf("second connection served past MaxConnections 1 (err %v)", err)
	case <-time.After(200 * time.Millisecond):
	}
	firstTrans.Close()
	select {
	case err := <-answered:
		if err != nil {
			t.Fatalf("second connection: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("second connection not served after the first closed")
	}
}

// BenchmarkSendSync measures the server's cost of a call, client
// included, against a producer that does nothing: sendSync of one 1 KiB
// message, and sendBatchSync of 100.
func BenchmarkSendSync(b *testing.B) {
	for _, batch := range []int{1, 100} {
		for _, w := range wireSetups {
			b.Run(fmt.Sprintf("batch=%d/%s+%s", batch, w.transport, w.protocol), func(b *testing.B) {
				benchmarkSend(b, w, batch)
			})
		}
	}
}

func benchmarkSend(b *testing.B, w struct{ transport, protocol string }, batch int) {
	s := NewProducerServer(Options{Transport: w.transport, Protocol: w.protocol, Logger: discardLogger()}, &nopProducer{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go s.Serve(l)
	defer s.Stop()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		cfg := &thrift.TConfiguration{}
		var trans thrift.TTransport = thrift.NewTSocketConf(l.Addr().String(), cfg)
		var pf thrift.TProtocolFactory = thrift.NewTCompactProtocolFactoryConf(cfg)
		if w.transport == TransportFramed {
			trans = thrift.NewTFramedTransportConf(trans, cfg)
		} else {
			trans = thrift.NewTBufferedTransport(trans, 8192)
			pf = thrift.NewTBinaryProtocolFactoryConf(cfg)
		}
		if err := trans.Open(); err != nil {
			b.Error(err)
			return
		}
		defer trans.Close()
		client := producer.NewProducerServiceClientFactory(trans, pf)
		m := newMessage("bench", "k", "")
		m.Body = make([]byte, 1024)
		msgs := make([]*producer.Message, batch)
		for i := range msgs {
			msgs[i] = m
		}
		for pb.Next() {
			if batch == 1 {
				if res, err := client.SendSync(context.Background(), m, 5000); err != nil || res.Code != 0 {
					b.Errorf("SendSync = %v, %v", res, err)
					return
				}
				continue
			}
			if res, err := client.SendBatchSync(context.Background(), msgs); err != nil || res.Code != 0 {
				b.Errorf("SendBatchSync = %v, %v", res, err)
				return
			}
		}
	})
}

// nopProducer acknowledges everything without recording it.
type nopProducer struct{}

func (*nopProducer) Produce(_ context.Context, _ string, msgs []produce.Message) ([]sdk.ProduceResult, error) {
	return make([]sdk.ProduceResult, len(msgs)), nil
}

func (*nopProducer) ProduceAsync(context.Context, string, []produce.Message) error { return nil }

// TestProducerPanic checks that a panicking producer costs a code 100, not
// the connection or the process.
func TestProducerPanic(t *testing.T) {
	fake := &fakeProducer{produce: func(context.Context, string, []produce.Message) ([]sdk.ProduceResult, error) {
		panic("bug")
	}}
	srv := startServer(t, Options{}, fake)
	client := dial(t, srv.addr, TransportFramed, ProtocolCompact)
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		res, err := client.SendSync(ctx, newMessage("orders", "k", "v"), 1000)
		if err != nil || res.Code != 100 || res.Msg != "internal error" {
			t.Fatalf("SendSync = %v, %v; want code 100 internal error", res, err)
		}
		res, err = client.SendBatchSync(ctx, []*producer.Message{newMessage("a", "", "v"), newMessage("b", "", "v")})
		if err != nil || res.Code != 100 || res.Msg != "2 of 2 failed: [0-1] code 100 internal error" {
			t.Fatalf("SendBatchSync = %v, %v; want code 100 for both", res, err)
		}
	}
}
