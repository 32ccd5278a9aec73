package thriftapi

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/mqgate/mqgate/core/delay"
	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/frontends/thrift/gen-go/producer"
	"github.com/mqgate/mqgate/sdk"
)

// testMax is the delay.max of the fake Delayer.
const testMax = 24 * time.Hour

// addCall is one Add the fake Delayer received.
type addCall struct {
	msgs        []delay.Message
	deadline    time.Time
	hasDeadline bool
}

// fakeDelayer records calls. By default Add succeeds for every message,
// keeping its ID or generating "gen-<i>"; add and cancel override that.
type fakeDelayer struct {
	add    func(ctx context.Context, msgs []delay.Message) ([]delay.Result, error)
	cancel func(ctx context.Context, topic, id string) error

	mu      sync.Mutex
	adds    []addCall
	cancels [][2]string // topic, id
}

var _ delay.Delayer = (*fakeDelayer)(nil)

func (f *fakeDelayer) Add(ctx context.Context, msgs []delay.Message) ([]delay.Result, error) {
	deadline, ok := ctx.Deadline()
	f.mu.Lock()
	f.adds = append(f.adds, addCall{msgs: msgs, deadline: deadline, hasDeadline: ok})
	f.mu.Unlock()
	if f.add != nil {
		return f.add(ctx, msgs)
	}
	out := make([]delay.Result, len(msgs))
	for i, m := range msgs {
		id := m.ID
		if id == "" {
			id = "gen-" + strconv.Itoa(i)
		}
		out[i] = delay.Result{ID: id, DueAt: m.DueAt}
	}
	return out, nil
}

func (f *fakeDelayer) Cancel(ctx context.Context, topic, id string) error {
	f.mu.Lock()
	f.cancels = append(f.cancels, [2]string{topic, id})
	f.mu.Unlock()
	if f.cancel != nil {
		return f.cancel(ctx, topic, id)
	}
	return nil
}

func (f *fakeDelayer) CheckTopic(string) error { return nil }
func (f *fakeDelayer) Max() time.Duration      { return testMax }
func (f *fakeDelayer) Ready() error            { return nil }

func (f *fakeDelayer) calls() ([]addCall, [][2]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]addCall(nil), f.adds...), append([][2]string(nil), f.cancels...)
}

// newDelayMessage returns an add of a delay message as a client builds
// it: action 1, the IDL's defaults otherwise.
func newDelayMessage(topic string, timestamp int64, body string) *producer.DelayMessage {
	m := producer.NewDelayMessage()
	m.Topic, m.Action, m.Timestamp, m.Body = topic, delayActionAdd, &timestamp, []byte(body)
	return m
}

// TestSendDelaySync adds and cancels delay and loop messages with the
// generated client over both wire setups and checks what reaches the
// Delayer.
func TestSendDelaySync(t *testing.T) {
	for _, w := range wireSetups {
		t.Run(w.transport+"+"+w.protocol, func(t *testing.T) {
			fd := &fakeDelayer{}
			fp := &fakeProducer{}
			srv := startServer(t, Options{Transport: w.transport, Protocol: w.protocol, Delayer: fd}, fp)
			client := dial(t, srv.addr, w.transport, w.protocol)
			ctx := context.Background()
			nowMs := time.Now().UnixMilli()
			nowS := time.Now().Unix()

			for _, tc := range []struct {
				name   string
				msg    func() *producer.DelayMessage
				wantID string
				want   delay.Message // Topic orders, Msg.Partition -1 unless set
			}{
				{
					name: "delay in milliseconds with every field",
					msg: func() *producer.DelayMessage {
						m := newDelayMessage("orders", nowMs+90_000, "")
						m.Body = allBytes()
						m.UniqDelayMsgId = ptr("order-42")
						m.Tags = "tagA"
						m.Dmsgtype = ptr(int32(delayTypeDelay))
						m.Properties = map[string]string{"b": "2", "a": "1"}
						m.UUID, m.Version = ptr("ignored"), ptr("1.0")
						return m
					},
					wantID: "order-42",
					want: delay.Message{ID: "order-42", DueAt: time.UnixMilli(nowMs + 90_000), Msg: produce.Message{
						Value: allBytes(), Tags: "tagA", Headers: []sdk.Header{{Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("2")}},
					}},
				},
				{
					name:   "timestamp in seconds, dmsgtype unset, id generated",
					msg:    func() *producer.DelayMessage { return newDelayMessage("orders", nowS+60, "v") },
					wantID: "gen-0",
					want:   delay.Message{DueAt: time.Unix(nowS+60, 0), Msg: produce.Message{Value: []byte("v")}},
				},
				{
					name: "a time in the past fires at once",
					msg:  func() *producer.DelayMessage { return newDelayMessage("orders", 1, "v") },
					want: delay.Message{DueAt: time.Unix(1, 0), Msg: produce.Message{Value: []byte("v")}}, wantID: "gen-0",
				},
				{
					name: "loop in seconds",
					msg: func() *producer.DelayMessage {
						m := newDelayMessage("orders", nowS+10, "tick")
						m.Dmsgtype, m.Interval, m.Times, m.Expire = ptr(int32(delayTypeLoop)), ptr(int64(60)), ptr(int64(3)), ptr(nowS+3600)
						return m
					},
					wantID: "gen-0",
					want: delay.Message{DueAt: time.Unix(nowS+10, 0), Msg: produce.Message{Value: []byte("tick")},
						Loop: &delay.Loop{Interval: time.Minute, Times: 3, Expire: time.Unix(nowS+3600, 0)}},
				},
				{
					name: "loop in milliseconds, expire 0 means none",
					msg: func() *producer.DelayMessage {
						m := newDelayMessage("orders", nowMs+10_000, "tick")
						m.Dmsgtype, m.Interval, m.Times, m.Expire = ptr(int32(delayTypeLoop)), ptr(int64(1500)), ptr(int64(2)), ptr(int64(0))
						return m
					},
					wantID: "gen-0",
					want: delay.Message{DueAt: time.UnixMilli(nowMs + 10_000), Msg: produce.Message{Value: []byte("tick")},
						Loop: &delay.Loop{Interval: 1500 * time.Millisecond, Times: 2}},
				},
			} {
				t.Run(tc.name, func(t *testing.T) {
					before, _ := fd.calls()
					res, err := client.SendDelaySync(ctx, tc.msg(), 5000)
					if err != nil {
						t.Fatal(err)
					}
					if res.Code != 0 || res.Msg != "OK" || res.UniqDelayMsgId != tc.wantID {
						t.Fatalf("result = %v, want code 0, OK, id %q", res, tc.wantID)
					}
					adds, _ := fd.calls()
					adds = adds[len(before):]
					if len(adds) != 1 || len(adds[0].msgs) != 1 {
						t.Fatalf("Delayer.Add calls %+v, want one with one message", adds)
					}
					want := tc.want
					want.Topic, want.Msg.Partition = "orders", sdk.PartitionHash
					if got := adds[0].msgs[0]; !reflect.DeepEqual(got, want) {
						t.Errorf("added %#v\nwant  %#v", got, want)
					}
				})
			}

			t.Run("cancel", func(t *testing.T) {
				m := producer.NewDelayMessage()
				m.Topic, m.Action, m.UniqDelayMsgId = "orders", delayActionCancel, ptr("order-42")
				res, err := client.SendDelaySync(ctx, m, 5000)
				if err != nil {
					t.Fatal(err)
				}
				if res.Code != 0 || res.Msg != "OK" || res.UniqDelayMsgId != "order-42" {
					t.Fatalf("result = %v, want code 0, OK, id order-42", res)
				}
				if _, cancels := fd.calls(); len(cancels) != 1 || cancels[0] != [2]string{"orders", "order-42"} {
					t.Errorf("Delayer.Cancel calls %v, want one of orders order-42", cancels)
				}
			})

			if calls := fp.Calls(); len(calls) != 0 {
				t.Errorf("delay messages were produced at once: %+v", calls)
			}
		})
	}
}

// TestSendDelaySyncBadInput checks that every kind of bad input is
// answered with code 11 or 16 naming the Thrift field, echoing the id,
// without calling the Delayer.
func TestSendDelaySyncBadInput(t *testing.T) {
	fd := &fakeDelayer{}
	srv := startServer(t, Options{MaxMessageBytes: 1024, Delayer: fd}, &fakeProducer{})
	client := dial(t, srv.addr, TransportFramed, ProtocolCompact)
	nowMs := time.Now().UnixMilli()
	nowS := time.Now().Unix()

	add := func(edit func(m *producer.DelayMessage)) *producer.DelayMessage {
		m := newDelayMessage("orders", nowMs+1000, "v")
		m.UniqDelayMsgId = ptr("d-1")
		edit(m)
		return m
	}
	loop := func(edit func(m *producer.DelayMessage)) *producer.DelayMessage {
		return add(func(m *producer.DelayMessage) {
			m.Dmsgtype, m.Interval, m.Times = ptr(int32(delayTypeLoop)), ptr(int64(5000)), ptr(int64(3))
			edit(m)
		})
	}
	for _, tc := range []struct {
		name     string
		msg      *producer.DelayMessage
		wantCode int32
		wantMsg  string
	}{
		{"empty topic", add(func(m *producer.DelayMessage) { m.Topic = "" }), 11, "delayMessage.topic: must not be empty"},
		{"illegal topic", add(func(m *producer.DelayMessage) { m.Topic = "a b" }), 11, "delayMessage.topic: character ' ' at byte 1"},
		{"action unset", add(func(m *producer.DelayMessage) { m.Action = 0 }), 11, "delayMessage.action: must be 1 (add) or 2 (cancel); got 0"},
		{"unknown action", add(func(m *producer.DelayMessage) { m.Action = 3 }), 11, "delayMessage.action: must be 1 (add) or 2 (cancel); got 3"},
		{"cancel without an id", add(func(m *producer.DelayMessage) { m.Action, m.UniqDelayMsgId = delayActionCancel, nil }), 11, "delayMessage.uniqDelayMsgId: required to cancel"},
		{"cancel with an empty id", add(func(m *producer.DelayMessage) { m.Action, m.UniqDelayMsgId = delayActionCancel, ptr("") }), 11, "delayMessage.uniqDelayMsgId: required to cancel"},
		{"cancel with a bad topic", add(func(m *producer.DelayMessage) { m.Action, m.Topic = delayActionCancel, "" }), 11, "delayMessage.topic: must not be empty"},
		{"dmsgtype 1", add(func(m *producer.DelayMessage) { m.Dmsgtype = ptr(int32(1)) }), 11, "delayMessage.dmsgtype: must be 2 (delay) or 3 (loop); got 1"},
		{"dmsgtype 4", add(func(m *producer.DelayMessage) { m.Dmsgtype = ptr(int32(4)) }), 11, "delayMessage.dmsgtype: must be 2 (delay) or 3 (loop); got 4"},
		{"no timestamp", add(func(m *producer.DelayMessage) { m.Timestamp = nil }), 11, "delayMessage.timestamp: required to add"},
		{"negative timestamp", add(func(m *producer.DelayMessage) { m.Timestamp = ptr(int64(-1000)) }), 11, "delayMessage.timestamp: must be the fire time in milliseconds (or, below 1e11, seconds) since the epoch; got -1000"},
		{"zero timestamp", add(func(m *producer.DelayMessage) { m.Timestamp = ptr(int64(0)) }), 11, "delayMessage.timestamp: must be"},
		{"delay beyond delay.max in ms", add(func(m *producer.DelayMessage) { m.Timestamp = ptr(nowMs + 48*3600_000) }), 11,
			"delayMessage.timestamp: " + strconv.FormatInt(nowMs+48*3600_000, 10) + " (milliseconds) is 48h0m0s from now, beyond delay.max (24h0m0s)"},
		{"delay beyond delay.max in s", add(func(m *producer.DelayMessage) { m.Timestamp = ptr(nowS + 48*3600) }), 11,
			fmt.Sprintf("delayMessage.timestamp: %d (seconds) is ", nowS+48*3600)},
		{"no body", add(func(m *producer.DelayMessage) { m.Body = nil }), 11, "delayMessage.body: required to add"},
		{"oversize", add(func(m *producer.DelayMessage) {
			m.Body = make([]byte, 1000)
			m.Properties = map[string]string{"p": strings.Repeat("x", 30)}
		}), 16, "delayMessage is 1031 bytes (body, tags and properties), over the limit of 1024 bytes (http.max_message_bytes)"},
		{"loop interval unset", loop(func(m *producer.DelayMessage) { m.Interval = nil }), 11, "delayMessage.interval: must be positive for a loop (dmsgtype 3), in milliseconds as timestamp is; got 0"},
		{"loop interval 0", loop(func(m *producer.DelayMessage) { m.Interval = ptr(int64(0)) }), 11, "delayMessage.interval: must be positive"},
		{"loop interval negative in s", loop(func(m *producer.DelayMessage) { m.Timestamp, m.Interval = ptr(nowS+5), ptr(int64(-1)) }), 11,
			"delayMessage.interval: must be positive for a loop (dmsgtype 3), in seconds as timestamp is; got -1"},
		{"loop interval out of range", loop(func(m *producer.DelayMessage) { m.Timestamp, m.Interval = ptr(nowS+5), ptr(int64(1)<<62) }), 11, "delayMessage.interval: 4611686018427387904 seconds is out of range"},
		{"loop interval under a second", loop(func(m *producer.DelayMessage) { m.Interval = ptr(int64(500)) }), 11, "delayMessage.interval: at least 1000 (one second), got 500"},
		{"loop times unset", loop(func(m *producer.DelayMessage) { m.Times = nil }), 11, "delayMessage.times: must be at least 1 for a loop (dmsgtype 3); got 0"},
		{"loop times 0", loop(func(m *producer.DelayMessage) { m.Times = ptr(int64(0)) }), 11, "delayMessage.times: must be at least 1"},
		{"loop times negative", loop(func(m *producer.DelayMessage) { m.Times = ptr(int64(-2)) }), 11, "delayMessage.times: must be at least 1 for a loop (dmsgtype 3); got -2"},
		{"loop expiring before it fires", loop(func(m *producer.DelayMessage) { m.Expire = ptr(nowMs) }), 11,
			fmt.Sprintf("delayMessage.expire: %d is before timestamp %d (both in milliseconds)", nowMs, nowMs+1000)},
		// Last: a large id is slow to send under -race, and the cases above
		// compare times with nowMs.
		{"cancel with a 1 MiB id", add(func(m *producer.DelayMessage) {
			m.Action, m.UniqDelayMsgId = delayActionCancel, ptr(strings.Repeat("i", 1<<20))
		}), 11,
			"delayMessage.uniqDelayMsgId: 1048576 bytes, over the limit of 256 bytes for a delay id"},
		{"add with an id over the limit", add(func(m *producer.DelayMessage) { m.UniqDelayMsgId = ptr(strings.Repeat("i", 257)) }), 11,
			"delayMessage.uniqDelayMsgId: 257 bytes, over the limit of 256 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			beforeAdds, beforeCancels := fd.calls()
			res, err := client.SendDelaySync(context.Background(), tc.msg, 1000)
			if err != nil {
				t.Fatalf("call failed: %v", err)
			}
			if res.Code != tc.wantCode || !strings.Contains(res.Msg, tc.wantMsg) {
				t.Errorf("result = {%d %q}, want code %d and a msg containing %q", res.Code, res.Msg, tc.wantCode, tc.wantMsg)
			}
			var id string
			if tc.msg != nil {
				id = tc.msg.GetUniqDelayMsgId()
			}
			if len(id) > delay.MaxIDBytes {
				if res.UniqDelayMsgId != "" {
					t.Errorf("uniqDelayMsgId of %d bytes echoed for an id of %d bytes; want none", len(res.UniqDelayMsgId), len(id))
				}
			} else if tc.msg != nil && tc.msg.UniqDelayMsgId != nil && res.UniqDelayMsgId != id {
				t.Errorf("uniqDelayMsgId = %q, want %q echoed", res.UniqDelayMsgId, id)
			}
			adds, cancels := fd.calls()
			if len(adds) != len(beforeAdds) || len(cancels) != len(beforeCancels) {
				t.Errorf("bad input reached the Delayer: adds %+v, cancels %v", adds[len(beforeAdds):], cancels[len(beforeCancels):])
			}
		})
	}
}

func TestDecodeDelayMessageNil(t *testing.T) {
	_, err := decodeDelayMessage(nil, time.Now(), testMax, 100)
	if sdk.CodeOf(err) != sdk.CodeIllegal || err.Error() != "delayMessage: required" {
		t.Fatalf("err = %v, want code 11 delayMessage: required", err)
	}
}

// TestSendDelaySyncErrors checks that the Delayer's errors, timeouts and
// panics reach the client with their codes.
func TestSendDelaySyncErrors(t *testing.T) {
	down := sdk.Errorf(sdk.CodeUnavailable, "broker down")
	for _, tc := range []struct {
		name     string
		fd       *fakeDelayer
		cancel   bool
		timeout  int64
		wantCode int32
		wantMsg  string
		wantID   string
	}{
		{name: "call error keeps its code", fd: &fakeDelayer{add: func(context.Context, []delay.Message) ([]delay.Result, error) {
			return nil, fmt.Errorf("adding: %w", down)
		}}, wantCode: 17, wantMsg: "broker down", wantID: "d-1"},
		{name: "message error keeps its code and id", fd: &fakeDelayer{add: func(context.Context, []delay.Message) ([]delay.Result, error) {
			return []delay.Result{{ID: "d-1", Err: down}}, nil
		}}, wantCode: 17, wantMsg: "broker down", wantID: "d-1"},
		{name: "a result count that does not match is internal", fd: &fakeDelayer{add: func(context.Context, []delay.Message) ([]delay.Result, error) {
			return nil, nil
		}}, wantCode: 100, wantMsg: "internal error", wantID: "d-1"},
		{name: "past the call's timeout", timeout: 50, fd: &fakeDelayer{add: func(ctx context.Context, _ []delay.Message) ([]delay.Result, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}}, wantCode: 12, wantMsg: "timed out after 50ms (the sendDelaySync timeout)", wantID: "d-1"},
		{name: "panic is internal", fd: &fakeDelayer{add: func(context.Context, []delay.Message) ([]delay.Result, error) {
			panic("bug")
		}}, wantCode: 100, wantMsg: "internal error", wantID: "d-1"},
		{name: "cancel error keeps its code", cancel: true, fd: &fakeDelayer{cancel: func(context.Context, string, string) error {
			return down
		}}, wantCode: 17, wantMsg: "broker down", wantID: "d-1"},
		{name: "cancel past the call's timeout", cancel: true, timeout: 50, fd: &fakeDelayer{cancel: func(ctx context.Context, _, _ string) error {
			<-ctx.Done()
			return ctx.Err()
		}}, wantCode: 12, wantMsg: "timed out after 50ms (the sendDelaySync timeout)", wantID: "d-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startServer(t, Options{Delayer: tc.fd}, &fakeProducer{})
			client := dial(t, srv.addr, TransportFramed, ProtocolCompact)
			m := newDelayMessage("orders", time.Now().UnixMilli()+1000, "v")
			m.UniqDelayMsgId = ptr("d-1")
			if tc.cancel {
				m.Action = delayActionCancel
			}
			timeout := tc.timeout
			if timeout == 0 {
				timeout = 5000
			}
			res, err := client.SendDelaySync(context.Background(), m, timeout)
			if err != nil {
				t.Fatal(err)
			}
			if res.Code != tc.wantCode || !strings.Contains(res.Msg, tc.wantMsg) || res.UniqDelayMsgId != tc.wantID {
				t.Errorf("result = %v, want code %d, msg containing %q, id %q", res, tc.wantCode, tc.wantMsg, tc.wantID)
			}
			// The connection survived.
			if res, err := client.SendSync(context.Background(), newMessage("orders", "k", "v"), 1000); err != nil || res.Code != 0 {
				t.Errorf("SendSync after the failure = %v, %v", res, err)
			}
		})
	}
}

// TestSendDelaySyncTimeouts checks the deadline the Delayer gets.
func TestSendDelaySyncTimeouts(t *testing.T) {
	fd := &fakeDelayer{}
	srv := startServer(t, Options{DefaultTimeout: 3 * time.Second, MaxTimeout: 5 * time.Second, Delayer: fd}, &fakeProducer{})
	client := dial(t, srv.addr, TransportFramed, ProtocolCompact)
	for _, tc := range []struct {
		timeoutMs int64
		want      time.Duration
	}{
		{250, 250 * time.Millisecond},
		{0, 3 * time.Second},
		{1 << 62, 5 * time.Second},
	} {
		t.Run(strconv.FormatInt(tc.timeoutMs, 10), func(t *testing.T) {
			before, _ := fd.calls()
			start := time.Now()
			res, err := client.SendDelaySync(context.Background(), newDelayMessage("orders", time.Now().UnixMilli(), "v"), tc.timeoutMs)
			end := time.Now()
			if err != nil || res.Code != 0 {
				t.Fatalf("SendDelaySync = %v, %v", res, err)
			}
			adds, _ := fd.calls()
			c := adds[len(before)]
			if !c.hasDeadline || c.deadline.Before(start.Add(tc.want)) || c.deadline.After(end.Add(tc.want)) {
				t.Errorf("deadline %s after the call began, want %s", c.deadline.Sub(start), tc.want)
			}
		})
	}
}

func TestSendDelaySyncMetrics(t *testing.T) {
	srv := startServer(t, Options{Delayer: &fakeDelayer{}}, &fakeProducer{})
	client := dial(t, srv.addr, TransportFramed, ProtocolCompact)
	ctx := context.Background()
	client.SendDelaySync(ctx, newDelayMessage("orders", time.Now().UnixMilli(), "v"), 1000)
	client.SendDelaySync(ctx, producer.NewDelayMessage(), 1000)
	for _, tc := range []struct {
		code string
		want float64
	}{{"0", 1}, {"11", 1}} {
		var m dto.Metric
		if err := srv.metrics.requests.WithLabelValues(methodSendDelaySync, tc.code).Write(&m); err != nil {
			t.Fatal(err)
		}
		if got := m.GetCounter().GetValue(); got != tc.want {
			t.Errorf("mqgate_thrift_requests_total{method=sendDelaySync,code=%s} = %v, want %v", tc.code, got, tc.want)
		}
	}
}

// FuzzDelayMessageMapping builds DelayMessages from fuzz input and checks
// that decoding never panics, refuses only with codes 11 and 16 naming
// delayMessage, and otherwise yields a request within the rules.
func FuzzDelayMessageMapping(f *testing.F) {
	now := time.UnixMilli(1_700_000_000_000)
	f.Add("orders", "id", []byte("v"), int32(1), int64(1_700_000_090_000), int32(2), int64(0), int64(0), int64(0), true)
	f.Add("orders", "", []byte("v"), int32(1), int64(1_700_000_090), int32(3), int64(60), int64(3), int64(1_700_003_600), true)
	f.Add("orders", "x", []byte(nil), int32(2), int64(0), int32(0), int64(0), int64(0), int64(0), false)
	f.Add("", "", []byte(nil), int32(7), int64(-1), int32(9), int64(-1), int64(-1), int64(-1), false)
	f.Fuzz(func(t *testing.T, topic, id string, body []byte, action int32, ts int64, typ int32, interval, times, expire int64, optionals bool) {
		m := &producer.DelayMessage{Topic: topic, Body: body, Action: action, Timestamp: &ts}
		if optionals {
			m.UniqDelayMsgId, m.Dmsgtype, m.Interval, m.Times, m.Expire = &id, &typ, &interval, &times, &expire
		}
		req, err := decodeDelayMessage(m, now, testMax, 1024)
		if err != nil {
			var e *sdk.Error
			if !errors.As(err, &e) || e.Code != sdk.CodeIllegal && e.Code != sdk.CodeTooLarge || !strings.HasPrefix(e.Msg, "delayMessage") {
				t.Fatalf("error %v (%T) is not code 11 or 16 naming delayMessage", err, err)
			}
			return
		}
		if req.msg.Topic != topic {
			t.Fatalf("topic %q, want %q", req.msg.Topic, topic)
		}
		if len(req.msg.ID) > delay.MaxIDBytes {
			t.Fatalf("accepted an id of %d bytes, over delay.MaxIDBytes", len(req.msg.ID))
		}
		if req.cancel {
			if action != delayActionCancel || req.msg.ID == "" {
				t.Fatalf("cancel of %+v from action %d", req.msg, action)
			}
			return
		}
		if action != delayActionAdd || req.msg.DueAt.Sub(now) > testMax || req.msg.Msg.Value == nil {
			t.Fatalf("add of %+v from action %d", req.msg, action)
		}
		if err := req.msg.Validate(now, testMax); err != nil {
			t.Fatalf("accepted a message Validate refuses: %v", err)
		}
	})
}
