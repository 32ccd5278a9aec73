package thriftapi

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	dto "github.com/prometheus/client_model/go"

	"github.com/mqgate/mqgate/core/consume"
	"github.com/mqgate/mqgate/frontends/thrift/gen-go/consumer"
	"github.com/mqgate/mqgate/sdk"
)

// scriptedBatches returns a Pull that hands out n batches of two
// messages each, qid "q<i>", offsets 10*i and 10*i+1, then empty ones.
func scriptedBatches(n int) func(ctx context.Context, group, topic string, max int, wait time.Duration) (consume.Batch, error) {
	var mu sync.Mutex
	i := 0
	return func(ctx context.Context, group, topic string, max int, wait time.Duration) (consume.Batch, error) {
		mu.Lock()
		defer mu.Unlock()
		if i == n {
			return consume.Batch{Group: group, Topic: topic}, nil
		}
		qid := fmt.Sprintf("q%d", i)
		b := consume.Batch{Group: group, Topic: topic, Qid: qid}
		for j := range 2 {
			off := int64(10*i + j)
			b.Messages = append(b.Messages, consume.Message{
				Topic: topic, Qid: qid, Offset: off, Value: fmt.Appendf(nil, "v%d", off),
				Headers: []sdk.Header{{Key: "h", Value: []byte("x")}}, Tags: "t", Attempt: 1,
			})
		}
		i++
		return b, nil
	}
}

// TestConsumerSDKLoop runs the DDMQ SDK's loop: pull, process, and pass
// the ConsumeResult of what was processed on the next pull. The consumer
// must receive each batch's acks before the next pull, in order; odd
// offsets "fail".
func TestConsumerSDKLoop(t *testing.T) {
	for _, w := range wireSetups {
		t.Run(w.transport+"+"+w.protocol, func(t *testing.T) {
			fake := &fakeConsumer{pull: scriptedBatches(3)}
			srv := startConsumerServer(t, Options{Transport: w.transport, Protocol: w.protocol}, fake)
			client := dialConsumer(t, srv.addr, w.transport, w.protocol)
			ctx := context.Background()

			var result *consumer.ConsumeResult_
			var processed []string
			for range 4 {
				req := consumer.NewPullRequest()
				req.GroupId, req.Topic, req.MaxBatchSize, req.MaxLingerTime = "cg_orders", ptr("orders"), ptr(int32(10)), ptr(int32(50))
				req.Result_ = result
				resp, err := client.Pull(ctx, req)
				if err != nil {
					t.Fatalf("Pull: %v", err)
				}
				if len(resp.Messages) == 0 {
					result = nil
					continue
				}
				result = &consumer.ConsumeResult_{Context: resp.Context}
				for _, m := range resp.Messages {
					processed = append(processed, fmt.Sprintf("%s/%d=%s", resp.Context.Qid, m.Offset, m.Value))
					if m.Properties["h"] != "x" || m.Tag != "t" || m.Key != "" {
						t.Errorf("message %+v: want properties {h: x}, tag t, key \"\"", m)
					}
					if m.Offset%2 == 0 {
						result.SuccessOffsets = append(result.SuccessOffsets, m.Offset)
					} else {
						result.FailOffsets = append(result.FailOffsets, m.Offset)
					}
				}
			}
			want := []string{"q0/0=v0", "q0/1=v1", "q1/10=v10", "q1/11=v11", "q2/20=v20", "q2/21=v21"}
			if !reflect.DeepEqual(processed, want) {
				t.Errorf("processed %v, want %v", processed, want)
			}
			wantAcks := [][]consume.Ack{
				{{Group: "cg_orders", Topic: "orders", Qid: "q0", Success: []int64{0}, Fail: []int64{1}}},
				{{Group: "cg_orders", Topic: "orders", Qid: "q1", Success: []int64{10}, Fail: []int64{11}}},
				{{Group: "cg_orders", Topic: "orders", Qid: "q2", Success: []int64{20}, Fail: []int64{21}}},
			}
			if got := fake.ackCalls(); !reflect.DeepEqual(got, wantAcks) {
				t.Errorf("acks %+v, want %+v", got, wantAcks)
			}
			// Each ack came before the pull of the same call.
			wantOrder := []string{"pull", "ack", "pull", "ack", "pull", "ack", "pull"}
			if got := fake.callOrder(); !reflect.DeepEqual(got, wantOrder) {
				t.Errorf("call order %v, want %v", got, wantOrder)
			}
			for _, p := range fake.pullCalls() {
				if p.group != "cg_orders" || p.topic != "orders" || p.max != 10 || p.wait != 50*time.Millisecond {
					t.Errorf("Pull(%+v), want cg_orders orders 10 50ms", p)
				}
			}
		})
	}
}

// TestPullAppliesChain checks that the result chain is applied one Ack
// per ConsumeResult in chain order, each on its own as DDMQ's cproxy
// applies them, skipping results without offsets, before the pull.
func TestPullAppliesChain(t *testing.T) {
	fake := &fakeConsumer{}
	srv := startConsumerServer(t, Options{}, fake)
	client := dialConsumer(t, srv.addr, TransportFramed, ProtocolCompact)
	chain := &consumer.ConsumeResult_{
		Context:        &consumer.Context{GroupId: "g", Topic: "a", Qid: "1"},
		SuccessOffsets: []int64{5, 3},
		NextResult_: &consumer.ConsumeResult_{
			Context: &consumer.Context{GroupId: "g", Topic: "b", Qid: "0"}, // no offsets: skipped
			NextResult_: &consumer.ConsumeResult_{
				Context:     &consumer.Context{GroupId: "g2", Topic: "c", Qid: "7"},
				FailOffsets: []int64{9},
			},
		},
	}
	req := consumer.NewPullRequest()
	req.GroupId, req.Topic, req.Result_ = "g", ptr("a"), chain
	resp, err := client.Pull(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Context.GroupId != "g" || resp.Context.Topic != "a" || len(resp.Messages) != 0 {
		t.Errorf("response %+v, want an empty batch of g/a", resp)
	}
	want := [][]consume.Ack{
		{{Group: "g", Topic: "a", Qid: "1", Success: []int64{5, 3}}},
		{{Group: "g2", Topic: "c", Qid: "7", Fail: []int64{9}}},
	}
	if got := fake.ackCalls(); !reflect.DeepEqual(got, want) {
		t.Errorf("acks %+v, want %+v", got, want)
	}
	if got := fake.callOrder(); !reflect.DeepEqual(got, []string{"ack", "ack", "pull"}) {
		t.Errorf("call order %v, want the acks then pull", got)
	}

	// submit applies the same chain and answers true.
	ok, err := client.Submit(context.Background(), chain)
	if err != nil || !ok {
		t.Fatalf("Submit = %v, %v; want true", ok, err)
	}
	if got := fake.ackCalls(); len(got) != 4 || !reflect.DeepEqual(got[2:], want) {
		t.Errorf("acks after submit %+v, want the chain again", got)
	}
}

// chainOf returns a chain of n ConsumeResults, each acking one offset.
func chainOf(n int) *consumer.ConsumeResult_ {
	var head *consumer.ConsumeResult_
	for i := n - 1; i >= 0; i-- {
		head = &consumer.ConsumeResult_{
			Context:        &consumer.Context{GroupId: "g", Topic: "t", Qid: "0"},
			SuccessOffsets: []int64{int64(i)},
			NextResult_:    head,
		}
	}
	return head
}

func TestPullDefaultsAndCaps(t *testing.T) {
	fake := &fakeConsumer{maxBatch: 100}
	srv := startConsumerServer(t, Options{DefaultTimeout: 2 * time.Second}, fake)
	client := dialConsumer(t, srv.addr, TransportFramed, ProtocolCompact)
	for _, tc := range []struct {
		name     string
		max      *int32
		linger   *int32
		wantMax  int
		wantWait time.Duration
	}{
		{"defaults", nil, nil, DefaultPullBatch, DefaultPullLinger},
		{"zero batch is the default, zero linger no wait", ptr(int32(0)), ptr(int32(0)), DefaultPullBatch, 0},
		{"explicit", ptr(int32(7)), ptr(int32(120)), 7, 120 * time.Millisecond},
		{"capped", ptr(int32(1 << 30)), ptr(int32(1 << 30)), 100, 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := consumer.NewPullRequest()
			req.GroupId, req.Topic, req.MaxBatchSize, req.MaxLingerTime = "g", ptr("t"), tc.max, tc.linger
			start := time.Now()
			if _, err := client.Pull(context.Background(), req); err != nil {
				t.Fatal(err)
			}
			end := time.Now()
			calls := fake.pullCalls()
			got := calls[len(calls)-1]
			if got.max != tc.wantMax || got.wait != tc.wantWait {
				t.Errorf("Pull got max %d wait %s, want %d %s", got.max, got.wait, tc.wantMax, tc.wantWait)
			}
			// The call may take its wait plus the request timeout, from
			// when the server began it: between start and end.
			budget := tc.wantWait + 2*time.Second
			if got.deadline.Before(start.Add(budget)) || got.deadline.After(end.Add(budget)) {
				t.Errorf("Pull's deadline %s after the call began (which took %s), want %s", got.deadline.Sub(start), end.Sub(start), budget)
			}
		})
	}
}

func TestPullBadInput(t *testing.T) {
	fake := &fakeConsumer{}
	srv := startConsumerServer(t, Options{}, fake)
	client := dialConsumer(t, srv.addr, TransportFramed, ProtocolCompact)
	goodCtx := &consumer.Context{GroupId: "g", Topic: "t", Qid: "0"}
	for _, tc := range []struct {
		name  string
		edit  func(r *consumer.PullRequest)
		wantM string
	}{
		{"empty group", func(r *consumer.PullRequest) { r.GroupId = "" }, "request.groupId: must not be empty"},
		{"bad group", func(r *consumer.PullRequest) { r.GroupId = "cg orders" }, "request.groupId: character ' ' at byte 2 is not allowed; a group is made of [a-zA-Z0-9._-]"},
		{"bad topic", func(r *consumer.PullRequest) { r.Topic = ptr("a/b") }, "request.topic: character '/' at byte 1"},
		{"negative batch", func(r *consumer.PullRequest) { r.MaxBatchSize = ptr(int32(-1)) }, "request.maxBatchSize: must be >= 0"},
		{"negative linger", func(r *consumer.PullRequest) { r.MaxLingerTime = ptr(int32(-5)) }, "request.maxLingerTime: must be >= 0 milliseconds; got -5"},
		{"chain too long", func(r *consumer.PullRequest) { r.Result_ = chainOf(maxAckChain + 1) }, "request.result: a chain of more than 1000 ConsumeResults"},
		{"result without context", func(r *consumer.PullRequest) {
			r.Result_ = &consumer.ConsumeResult_{SuccessOffsets: []int64{1}}
		}, "request.result.context.groupId: must not be empty"},
		{"link without qid", func(r *consumer.PullRequest) {
			r.Result_ = &consumer.ConsumeResult_{Context: goodCtx, SuccessOffsets: []int64{1},
				NextResult_: &consumer.ConsumeResult_{Context: &consumer.Context{GroupId: "g", Topic: "t"}, FailOffsets: []int64{2}}}
		}, "request.result[1].context.qid: required"},
		{"link with bad topic", func(r *consumer.PullRequest) {
			r.Result_ = &consumer.ConsumeResult_{Context: goodCtx, SuccessOffsets: []int64{1},
				NextResult_: &consumer.ConsumeResult_{Context: &consumer.Context{GroupId: "g", Topic: "t!", Qid: "0"}, FailOffsets: []int64{2}}}
		}, "request.result[1].context.topic: character '!'"},
		{"negative offset", func(r *consumer.PullRequest) {
			r.Result_ = &consumer.ConsumeResult_{Context: goodCtx, SuccessOffsets: []int64{1, -2}}
		}, "request.result.successOffsets[1]: must be an offset >= 0; got -2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := consumer.NewPullRequest()
			req.GroupId, req.Topic = "g", ptr("t")
			tc.edit(req)
			_, err := client.Pull(context.Background(), req)
			var pe *consumer.PullException
			if !errors.As(err, &pe) || pe.Code != 11 || !strings.Contains(pe.Message, tc.wantM) {
				t.Fatalf("Pull = %v, want PullException code 11 containing %q", err, tc.wantM)
			}
		})
	}
	if n := len(fake.callOrder()); n != 0 {
		t.Errorf("consumer got %d calls for bad input, want none", n)
	}
	// A chain of exactly maxAckChain is fine, and the connection survived
	// the exceptions.
	req := consumer.NewPullRequest()
	req.GroupId, req.Topic, req.Result_ = "g", ptr("t"), chainOf(maxAckChain)
	if _, err := client.Pull(context.Background(), req); err != nil {
		t.Fatalf("Pull with a chain of %d: %v", maxAckChain, err)
	}
	if acks := fake.ackCalls(); len(acks) != maxAckChain || len(acks[0]) != 1 {
		t.Errorf("got %d Ack calls, want %d of one ack each", len(acks), maxAckChain)
	}
}

// TestDeeplyNestedChainClosesConnection checks that structs nested past
// maxStructDepth are a protocol error, not a stack that grows without
// bound, and cost the server memory linear in the request, not an error
// text growing by a type name at every level (quadratic: hundreds of MB
// for 4,000 levels).
func TestDeeplyNestedChainClosesConnection(t *testing.T) {
	fake := &fakeConsumer{}
	srv := startConsumerServer(t, Options{}, fake)
	client := dialConsumer(t, srv.addr, TransportFramed, ProtocolCompact)
	req := consumer.NewPullRequest()
	req.GroupId, req.Topic, req.Result_ = "g", ptr("t"), chainOf(maxStructDepth+10)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := client.Pull(context.Background(), req)
	runtime.ReadMemStats(&after)
	var pe *consumer.PullException
	var ae thrift.TApplicationException
	if err == nil || errors.As(err, &pe) || errors.As(err, &ae) {
		msg := fmt.Sprint(err)
		t.Fatalf("Pull answered %T, %d bytes of text starting %.200q; want the connection closed without an answer", err, len(msg), msg)
	}
	// The client's own encoding of the request is a few hundred KB.
	const bound = 16 << 20
	if n := after.TotalAlloc - before.TotalAlloc; n > bound {
		t.Errorf("reading a chain %d deep allocated %d MB; want at most %d MB", maxStructDepth+10, n>>20, bound>>20)
	}
	if n := len(fake.callOrder()); n != 0 {
		t.Errorf("consumer got %d calls, want none", n)
	}
	// The server is still up for others.
	other := dialConsumer(t, srv.addr, TransportFramed, ProtocolCompact)
	req.Result_ = nil
	if _, err := other.Pull(context.Background(), req); err != nil {
		t.Fatal(err)
	}
}

// A deep chain cut short inside (a frame whose last bytes are missing)
// closes the connection without an answer, at a cost linear in the
// request: the read error deep inside is not prefixed at every level on
// its way out, as the generated readers would.
func TestTruncatedDeepChainClosesConnection(t *testing.T) {
	fake := &fakeConsumer{}
	srv := startConsumerServer(t, Options{}, fake)
	req := consumer.NewPullRequest()
	req.GroupId, req.Topic, req.Result_ = "g", ptr("t"), chainOf(maxAckChain-10)
	mem := thrift.NewTMemoryBuffer()
	proto := thrift.NewTCompactProtocolConf(mem, nil)
	ctx := context.Background()
	if err := proto.WriteMessageBegin(ctx, "pull", thrift.CALL, 1); err != nil {
		t.Fatal(err)
	}
	if err := (&consumer.ConsumerServicePullArgs{Request: req}).Write(ctx, proto); err != nil {
		t.Fatal(err)
	}
	if err := proto.WriteMessageEnd(ctx); err != nil {
		t.Fatal(err)
	}
	body := mem.Bytes()
	body = body[:len(body)*2/3] // cut inside the chain
	frame := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	frame = append(frame, body...)

	conn, err := net.Dial("tcp", srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, err := conn.Write(frame); err != nil {
		t.Fatal(err)
	}
	// The reader would otherwise wait for the next frame past the cut.
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	answer, err := io.ReadAll(conn) // until the server closes
	runtime.ReadMemStats(&after)
	if err != nil || len(answer) != 0 {
		t.Fatalf("answer of %d bytes (%.200q), %v; want the connection closed without one", len(answer), answer, err)
	}
	const bound = 8 << 20
	if n := after.TotalAlloc - before.TotalAlloc; n > bound {
		t.Errorf("reading a cut chain allocated %d MB; want at most %d MB", n>>20, bound>>20)
	}
	if n := len(fake.callOrder()); n != 0 {
		t.Errorf("consumer got %d calls, want none", n)
	}
}

func TestConsumerErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		err      error
		panics   bool
		wantCode int32
		wantMsg  string
	}{
		{"not owned", sdk.Errorf(sdk.CodeNotFound, "qid 3 of orders is not owned by this gateway"), false, 19, "qid 3 of orders is not owned"},
		{"illegal", sdk.Errorf(sdk.CodeIllegal, "offset 9 was never handed out"), false, 11, "offset 9 was never handed out"},
		{"unavailable", sdk.Errorf(sdk.CodeUnavailable, "broker down"), false, 17, "broker down"},
		{"no topic", sdk.Errorf(sdk.CodeTopicNotExist, "topic orders does not exist"), false, 14, "does not exist"},
		{"deadline", context.DeadlineExceeded, false, 12, "timed out after"},
		{"plain error", errors.New("secret details"), false, 100, "internal error"},
		{"panic", nil, true, 100, "internal error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fail := func() error {
				if tc.panics {
					panic("bug")
				}
				return tc.err
			}
			fake := &fakeConsumer{
				pull: func(context.Context, string, string, int, time.Duration) (consume.Batch, error) {
					return consume.Batch{}, fail()
				},
				ackFn: func(context.Context, []consume.Ack) error { return fail() },
				stats: func(context.Context, string, string) ([]consume.Stats, error) { return nil, fail() },
				fetch: func(context.Context, string, map[string]map[string]int64, int, time.Duration) ([]consume.QidMessages, error) {
					return nil, fail()
				},
				commit: func(context.Context, string, string, map[string]map[string]int64) error { return fail() },
			}
			srv := startConsumerServer(t, Options{}, fake)
			client := dialConsumer(t, srv.addr, TransportFramed, ProtocolCompact)
			ctx := context.Background()
			check := func(method string, err error) {
				t.Helper()
				var pe *consumer.PullException
				if !errors.As(err, &pe) || pe.Code != tc.wantCode || !strings.Contains(pe.Message, tc.wantMsg) {
					t.Errorf("%s = %v, want PullException code %d containing %q", method, err, tc.wantCode, tc.wantMsg)
				}
			}
			req := consumer.NewPullRequest()
			req.GroupId, req.Topic, req.MaxLingerTime = "g", ptr("t"), ptr(int32(0))
			_, err := client.Pull(ctx, req)
			check("Pull", err)
			// A piggybacked ack the gateway cannot apply (11, 19) does not
			// block the pull (the SDK would send it again); any other
			// failure fails the pull before pulling.
			before := len(fake.pullCalls())
			req.Result_ = chainOf(1)
			_, err = client.Pull(ctx, req)
			check("Pull with an ack", err)
			blocking := tc.wantCode != 11 && tc.wantCode != 19
			if pulled := len(fake.pullCalls()) != before; pulled == blocking {
				t.Errorf("after an ack failing with %d, pulled: %v", tc.wantCode, pulled)
			}
			ok, err := client.Submit(ctx, chainOf(2))
			if !blocking {
				// DDMQ's cproxy answers true whatever it skipped.
				if err != nil || !ok {
					t.Errorf("Submit = %v, %v; want true", ok, err)
				}
			} else {
				check("Submit", err)
			}
			_, err = client.GetConsumeStats(ctx, &consumer.ConsumeStatsRequest{Group: "g"})
			check("GetConsumeStats", err)

			fr := consumer.NewFetchRequest()
			fr.GroupId, fr.FetchOffset = "g", map[string]map[string]int64{"t": {"0": 1}}
			resp, err := client.Fetch(ctx, fr)
			if err != nil || resp.GetCode() != tc.wantCode || len(resp.Results) != 0 {
				t.Errorf("Fetch = %+v, %v; want code %d and no results", resp, err, tc.wantCode)
			}
			ok, err = client.Ack(ctx, &consumer.AckResult_{GroupId: "g", Offsets: map[string]map[string]int64{"t": {"0": 1}}})
			if err != nil || ok {
				t.Errorf("Ack = %v, %v; want false", ok, err)
			}
		})
	}
}

func TestGetConsumeStats(t *testing.T) {
	var gotGroup, gotTopic string
	fake := &fakeConsumer{stats: func(_ context.Context, group, topic string) ([]consume.Stats, error) {
		gotGroup, gotTopic = group, topic
		return []consume.Stats{
			{Group: group, Topic: "a", ConsumeOffsets: map[string]int64{"0": 5, "1": 7}, ProduceOffsets: map[string]int64{"0": 9, "1": 7}, Lag: 4},
			{Group: group, Topic: "b"},
		}, nil
	}}
	srv := startConsumerServer(t, Options{}, fake)
	client := dialConsumer(t, srv.addr, TransportFramed, ProtocolCompact)
	ctx := context.Background()

	stats, err := client.GetConsumeStats(ctx, &consumer.ConsumeStatsRequest{Group: "g"})
	if err != nil {
		t.Fatal(err)
	}
	want := []*consumer.ConsumeStats{
		{Group: "g", Topic: "a", ConsumeOffsets: map[string]int64{"0": 5, "1": 7}, ProduceOffsets: map[string]int64{"0": 9, "1": 7}},
		{Group: "g", Topic: "b", ConsumeOffsets: map[string]int64{}, ProduceOffsets: map[string]int64{}},
	}
	if !reflect.DeepEqual(stats, want) || gotGroup != "g" || gotTopic != "" {
		t.Errorf("GetConsumeStats = %+v (asked %q %q), want %+v for every topic", stats, gotGroup, gotTopic, want)
	}
	if _, err := client.GetConsumeStats(ctx, &consumer.ConsumeStatsRequest{Group: "g", Topic: ptr("a")}); err != nil || gotTopic != "a" {
		t.Errorf("GetConsumeStats(topic a) = %v, asked topic %q", err, gotTopic)
	}
	for _, tc := range []struct {
		req  *consumer.ConsumeStatsRequest
		want string
	}{
		{&consumer.ConsumeStatsRequest{}, "request.group: must not be empty"},
		{&consumer.ConsumeStatsRequest{Group: "g", Topic: ptr("..")}, `request.topic: ".." is not a valid topic name`},
	} {
		_, err := client.GetConsumeStats(ctx, tc.req)
		var pe *consumer.PullException
		if !errors.As(err, &pe) || pe.Code != 11 || !strings.Contains(pe.Message, tc.want) {
			t.Errorf("GetConsumeStats(%+v) = %v, want code 11 %q", tc.req, err, tc.want)
		}
	}
}

func TestFetchAndAck(t *testing.T) {
	fake := &fakeConsumer{maxBatch: 50, fetch: func(_ context.Context, cluster string, offsets map[string]map[string]int64, max int, wait time.Duration) ([]consume.QidMessages, error) {
		return []consume.QidMessages{
			{Topic: "t", Qid: "0", NextOffset: 12, Messages: []consume.Message{
				{Topic: "t", Qid: "0", Offset: 10, Key: []byte("k"), Value: []byte("a")},
				{Topic: "t", Qid: "0", Offset: 11, Value: nil},
			}},
			{Topic: "t", Qid: "1", NextOffset: 3},
		}, nil
	}}
	srv := startConsumerServer(t, Options{}, fake)
	for _, w := range wireSetups {
		t.Run(w.transport+"+"+w.protocol, func(t *testing.T) {
			srv := srv
			if w.transport != TransportFramed {
				srv = startConsumerServer(t, Options{Transport: w.transport, Protocol: w.protocol}, fake)
			}
			client := dialConsumer(t, srv.addr, w.transport, w.protocol)
			ctx := context.Background()
			fr := consumer.NewFetchRequest()
			fr.ConsumerId, fr.GroupId, fr.Cluster = "c1", "g", "east"
			fr.FetchOffset = map[string]map[string]int64{"t": {"0": 10, "1": 3}}
			fr.MaxBatchSize = ptr(int32(500))
			resp, err := client.Fetch(ctx, fr)
			if err != nil || resp.GetCode() != 0 || len(resp.Results) != 2 {
				t.Fatalf("Fetch = %+v, %v", resp, err)
			}
			r0 := resp.Results[0]
			if r0.Topic != "t" || r0.Qid != "0" || r0.GetNextRequestOffset() != 12 || len(r0.Messages) != 2 ||
				r0.Messages[0].Key != "k" || string(r0.Messages[0].Value) != "a" || r0.Messages[1].Offset != 11 {
				t.Errorf("result 0 = %+v", r0)
			}
			if r1 := resp.Results[1]; r1.Qid != "1" || r1.GetNextRequestOffset() != 3 || len(r1.Messages) != 0 {
				t.Errorf("result 1 = %+v", r1)
			}
			fake.mu.Lock()
			last := fake.fetches[len(fake.fetches)-1]
			fake.mu.Unlock()
			if last.cluster != "east" || last.max != 50 || last.wait != DefaultPullLinger || !reflect.DeepEqual(last.offsets, fr.FetchOffset) {
				t.Errorf("Fetch got %+v; want east, capped to 50, default linger", last)
			}

			ok, err := client.Ack(ctx, &consumer.AckResult_{ConsumerId: "c1", GroupId: "g", Cluster: "east", Offsets: map[string]map[string]int64{"t": {"0": 12}}})
			if err != nil || !ok {
				t.Fatalf("Ack = %v, %v", ok, err)
			}
			fake.mu.Lock()
			c := fake.commits[len(fake.commits)-1]
			fake.mu.Unlock()
			if c.cluster != "east" || c.group != "g" || c.offsets["t"]["0"] != 12 {
				t.Errorf("Commit got %+v", c)
			}
		})
	}

	client := dialConsumer(t, srv.addr, TransportFramed, ProtocolCompact)
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		offsets map[string]map[string]int64
		group   string
	}{
		{"no offsets", nil, "g"},
		{"bad topic", map[string]map[string]int64{"a b": {"0": 1}}, "g"},
		{"empty qid", map[string]map[string]int64{"t": {"": 1}}, "g"},
		{"negative offset", map[string]map[string]int64{"t": {"0": -1}}, "g"},
		{"bad group", map[string]map[string]int64{"t": {"0": 1}}, "g/h"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(fake.commitCalls())
			fr := consumer.NewFetchRequest()
			fr.GroupId, fr.FetchOffset = tc.group, tc.offsets
			fr.MaxLingerTime = ptr(int32(0))
			resp, err := client.Fetch(ctx, fr)
			// No offsets is a fetch of the group's queues, a valid call.
			if want := int32(11); tc.offsets == nil {
				if err != nil || resp.GetCode() != 0 {
					t.Errorf("Fetch = %+v, %v; want code 0", resp, err)
				}
			} else if err != nil || resp.GetCode() != want {
				t.Errorf("Fetch = %+v, %v; want code 11", resp, err)
			}
			ok, err := client.Ack(ctx, &consumer.AckResult_{GroupId: tc.group, Offsets: tc.offsets})
			// DDMQ's cproxy answers an ack of nothing true.
			if wantOK := tc.offsets == nil; err != nil || ok != wantOK {
				t.Errorf("Ack = %v, %v; want %v", ok, err, wantOK)
			}
			if len(fake.commitCalls()) != before {
				t.Error("Commit called for bad input")
			}
		})
	}
}

func TestConsumerMetrics(t *testing.T) {
	srv := startConsumerServer(t, Options{}, &fakeConsumer{})
	client := dialConsumer(t, srv.addr, TransportFramed, ProtocolCompact)
	ctx := context.Background()
	req := consumer.NewPullRequest()
	req.GroupId, req.Topic, req.MaxLingerTime = "g", ptr("t"), ptr(int32(0))
	client.Pull(ctx, req)
	client.Pull(ctx, req)
	client.Pull(ctx, consumer.NewPullRequest())
	client.Fetch(ctx, consumer.NewFetchRequest())
	for _, tc := range []struct {
		method, code string
		want         float64
	}{
		{"pull", "0", 2},
		{"pull", "11", 1},
		{"fetch", "11", 1},
		{"ack", "0", 0},
	} {
		var m dto.Metric
		if err := srv.metrics.requests.WithLabelValues(tc.method, tc.code).Write(&m); err != nil {
			t.Fatal(err)
		}
		if got := m.GetCounter().GetValue(); got != tc.want {
			t.Errorf("mqgate_thrift_requests_total{method=%q,code=%q} = %v, want %v", tc.method, tc.code, got, tc.want)
		}
	}
}

func TestConsumerServerDefaultListen(t *testing.T) {
	s := NewConsumerServer(Options{Logger: discardLogger()}, &fakeConsumer{})
	if s.opts.Listen != DefaultConsumerListen {
		t.Errorf("Listen = %q, want %q", s.opts.Listen, DefaultConsumerListen)
	}
	if p := NewProducerServer(Options{Logger: discardLogger()}, &fakeProducer{}); p.opts.Listen != DefaultListen {
		t.Errorf("producer Listen = %q, want %q", p.opts.Listen, DefaultListen)
	}
}

// FuzzConsumeMapping decodes arbitrary compact-protocol bytes as the
// arguments of pull, fetch and ack, and checks that whatever the mapping
// accepts is what the Consumer may be called with: valid names, offsets
// >= 0, batch sizes within 1..MaxBatch, waits within the request timeout,
// chains of at most maxAckChain.
func FuzzConsumeMapping(f *testing.F) {
	seed := func(s thrift.TStruct) {
		buf := thrift.NewTMemoryBuffer()
		if err := s.Write(context.Background(), thrift.NewTCompactProtocolConf(buf, nil)); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	req := consumer.NewPullRequest()
	req.GroupId, req.Topic, req.MaxBatchSize, req.Result_ = "g", ptr("t"), ptr(int32(-3)), chainOf(3)
	seed(req)
	seed(&consumer.FetchRequest{GroupId: "g", FetchOffset: map[string]map[string]int64{"t": {"0": 1, "": 2}}, MaxLingerTime: ptr(int32(1 << 30))})
	seed(&consumer.AckResult_{GroupId: "g", Offsets: map[string]map[string]int64{"a b": {"0": -1}}})
	lim := consumeLimits{maxBatch: 100, maxWait: time.Second}
	f.Fuzz(func(t *testing.T, input []byte) {
		if len(input) > 1<<16 {
			return // nesting depth grows with the input; the server bounds it (maxStructDepth)
		}
		read := func(s thrift.TStruct) bool {
			buf := thrift.NewTMemoryBuffer()
			buf.Write(input)
			p := &boundedProtocol{TProtocol: thrift.NewTCompactProtocolConf(buf, nil), max: len(input)}
			return s.Read(context.Background(), p) == nil
		}
		var pr consumer.PullRequest
		if read(&pr) {
			call, err := decodePull(&pr, lim, fuzzToken())
			if err == nil {
				if checkTopic("t", call.topic) != nil || checkGroup("g", call.group) != nil ||
					call.max < 1 || call.max > lim.maxBatch || call.wait < 0 || call.wait > lim.maxWait || len(call.acks) > maxAckChain {
					t.Fatalf("decodePull accepted %+v", call)
				}
				for _, a := range call.acks {
					if checkTopic("t", a.Topic) != nil || checkGroup("g", a.Group) != nil || a.Qid == "" || len(a.Success)+len(a.Fail) == 0 {
						t.Fatalf("decodePull accepted ack %+v", a)
					}
					for _, o := range append(append([]int64(nil), a.Success...), a.Fail...) {
						if o < 0 {
							t.Fatalf("decodePull accepted offset %d", o)
						}
					}
				}
			} else if sdk.CodeOf(err) != sdk.CodeIllegal {
				t.Fatalf("decodePull error %v is not code 11", err)
			}
		}
		var fr consumer.FetchRequest
		if read(&fr) {
			call, err := decodeFetch(&fr, lim, fuzzToken())
			if err == nil {
				if call.max < 1 || call.max > lim.maxBatch || call.wait < 0 || call.wait > lim.maxWait || len(call.offsets) == 0 {
					t.Fatalf("decodeFetch accepted %+v", call)
				}
				checkOffsetsValid(t, call.offsets)
			} else if sdk.CodeOf(err) != sdk.CodeIllegal {
				t.Fatalf("decodeFetch error %v is not code 11", err)
			}
		}
		var ar consumer.AckResult_
		if read(&ar) {
			if group, err := decodeAckResult(&ar, fuzzToken()); err == nil {
				if checkGroup("g", group) != nil {
					t.Fatalf("decodeAckResult accepted group %q", group)
				}
				checkOffsetsValid(t, ar.Offsets)
			} else if sdk.CodeOf(err) != sdk.CodeIllegal {
				t.Fatalf("decodeAckResult error %v is not code 11", err)
			}
		}
	})
}

// fuzzToken takes tokens out of group names "<token>@<group>", so the
// fuzzer reaches the token path of the decoders too.
func fuzzToken() *callToken {
	return &callToken{carrier: &CallToken{Property: "mqgate-token", GroupSeparator: "@"}, inGroups: true}
}

// boundedProtocol refuses containers larger than the input, as the
// server's guardedProtocol does, so that the fuzzer does not spend its time
// allocating lists a 7-byte input declares to hold a billion elements.
type boundedProtocol struct {
	thrift.TProtocol
	max int
}

func (p *boundedProtocol) ReadListBegin(ctx context.Context) (thrift.TType, int, error) {
	typ, n, err := p.TProtocol.ReadListBegin(ctx)
	if err == nil && (n < 0 || n > p.max) {
		err = errors.New("list larger than the input")
	}
	return typ, n, err
}

func (p *boundedProtocol) ReadSetBegin(ctx context.Context) (thrift.TType, int, error) {
	typ, n, err := p.TProtocol.ReadSetBegin(ctx)
	if err == nil && (n < 0 || n > p.max) {
		err = errors.New("set larger than the input")
	}
	return typ, n, err
}

func (p *boundedProtocol) ReadMapBegin(ctx context.Context) (thrift.TType, thrift.TType, int, error) {
	kt, vt, n, err := p.TProtocol.ReadMapBegin(ctx)
	if err == nil && (n < 0 || n > p.max) {
		err = errors.New("map larger than the input")
	}
	return kt, vt, n, err
}

func checkOffsetsValid(t *testing.T, m map[string]map[string]int64) {
	t.Helper()
	for topic, qids := range m {
		if checkTopic("t", topic) != nil {
			t.Fatalf("accepted topic %q", topic)
		}
		for qid, o := range qids {
			if qid == "" || o < 0 {
				t.Fatalf("accepted %q/%q at %d", topic, qid, o)
			}
		}
	}
}

// A pull without a topic (DDMQ's SDKs send none) reaches the consumer with
// topic "", the answer's context names the batch's topic, and the
// ConsumeResult passed back with that context acks that topic. A group
// subscribed to nothing gets the consumer's code 11 as a PullException.
func TestPullWithoutTopic(t *testing.T) {
	topics := []string{"alpha", "beta"}
	var mu sync.Mutex
	n := 0
	fake := &fakeConsumer{pull: func(_ context.Context, group, topic string, _ int, _ time.Duration) (consume.Batch, error) {
		if group == "lonely" {
			return consume.Batch{}, sdk.Errorf(sdk.CodeIllegal, "topic: required: group lonely is subscribed to no topic")
		}
		mu.Lock()
		defer mu.Unlock()
		n++
		t := topics[n%2]
		return consume.Batch{Group: group, Topic: t, Qid: "0", Messages: []consume.Message{{Topic: t, Qid: "0", Offset: int64(n)}}}, nil
	}}
	srv := startConsumerServer(t, Options{}, fake)
	client := dialConsumer(t, srv.addr, TransportFramed, ProtocolCompact)
	ctx := context.Background()
	req := consumer.NewPullRequest()
	req.GroupId = "cg"
	var seen []string
	for range 3 {
		resp, err := client.Pull(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, resp.Context.Topic)
		req.Result_ = &consumer.ConsumeResult_{Context: resp.Context, SuccessOffsets: []int64{resp.Messages[0].Offset}}
	}
	if !reflect.DeepEqual(seen, []string{"beta", "alpha", "beta"}) {
		t.Fatalf("contexts named %v", seen)
	}
	for _, p := range fake.pullCalls() {
		if p.topic != "" {
			t.Fatalf("Pull(%+v); want topic \"\"", p)
		}
	}
	acks := fake.ackCalls()
	if len(acks) != 2 || acks[0][0].Topic != "beta" || acks[1][0].Topic != "alpha" {
		t.Fatalf("acks %+v; want beta's then alpha's, each with its batch's topic", acks)
	}
	req = consumer.NewPullRequest()
	req.GroupId = "lonely"
	_, err := client.Pull(ctx, req)
	var pe *consumer.PullException
	if !errors.As(err, &pe) || pe.Code != 11 || !strings.Contains(pe.Message, "subscribed to no topic") {
		t.Fatalf("pull of a group subscribed to nothing: %v; want code 11", err)
	}
}

// A failed fetch is held for its linger, as an empty one is: DDMQ's Java
// LowLevelCarreraConsumer reads no code and asks again at once.
func TestFailedFetchIsHeldForItsLinger(t *testing.T) {
	srv := startConsumerServer(t, Options{}, &fakeConsumer{})
	client := dialConsumer(t, srv.addr, TransportFramed, ProtocolCompact)
	fr := consumer.NewFetchRequest()
	fr.GroupId, fr.MaxLingerTime = "bad group", ptr(int32(200))
	start := time.Now()
	resp, err := client.Fetch(context.Background(), fr)
	if err != nil || resp.GetCode() != 11 {
		t.Fatalf("Fetch = %+v, %v; want code 11", resp, err)
	}
	if held := time.Since(start); held < 200*time.Millisecond {
		t.Fatalf("a failed fetch answered after %s, before its linger of 200ms", held)
	}
}

// A call whose client has gone is cancelled: the connectivity check the
// generated processors poll while a handler runs sees the socket closed,
// so a pull stops waiting rather than take messages for no one. (Through
// the request clock's wrapper the check had seen every connection open.)
func TestCallOfAGoneClientIsCancelled(t *testing.T) {
	ended := make(chan error, 1)
	fake := &fakeConsumer{pull: func(ctx context.Context, group, topic string, max int, wait time.Duration) (consume.Batch, error) {
		<-ctx.Done()
		ended <- context.Cause(ctx)
		return consume.Batch{}, ctx.Err()
	}}
	// Nothing but the client's going ends the pull while the test runs.
	srv := startConsumerServer(t, Options{DefaultTimeout: time.Hour}, fake)
	trans, pf := openTransport(t, srv.addr, TransportFramed, ProtocolCompact, nil)
	client := consumer.NewConsumerServiceClientFactory(trans, pf)
	topic := "orders"
	go client.Pull(context.Background(), &consumer.PullRequest{GroupId: "billing", Topic: &topic}) //nolint:errcheck // its connection is closed under it
	leaveAndExpectCancelled(t, "pull", trans, func() bool { return len(fake.pullCalls()) > 0 }, ended)
}
