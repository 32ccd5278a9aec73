package thriftapi

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/mqgate/mqgate/core/delay"
	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/core/topicname"
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

// CheckTopic holds to the rule of the delay service's reserved names.
func (f *fakeDelayer) CheckTopic(topic string) error {
	return (&topicname.Reserved{DelayPrefix: "mqgate_delay_"}).Topic(topic)
}

func (f *fakeDelayer) Max() time.Duration { return testMax }
func (f *fakeDelayer) Ready() error       { return nil }

func (f *fakeDelayer) calls() ([]addCall, [][2]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]addCall(nil), f.adds...), append([][2]string(nil), f.cancels...)
}

// testUUID is a DelayMessage.uuid as DDMQ's Java SDK sends it (a
// time-based UUID in lower case).
const testUUID = "14f22520-ad72-11e7-91be-6ee54da579e3"

// newDelayMessage returns an add of a plain delay as DDMQ's SDKs build it
// (CarreraProducerBase.buildDelayMessage4Add): action 1, dmsgtype 2, a
// uuid, the IDL's defaults otherwise.
func newDelayMessage(topic string, timestamp int64, body string) *producer.DelayMessage {
	m := producer.NewDelayMessage()
	m.Topic, m.Action, m.Timestamp, m.Body = topic, delayActionAdd, &timestamp, []byte(body)
	m.Dmsgtype, m.UUID = ptr(int32(delay.ChronosDelay)), ptr(testUUID)
	return m
}

// newLoopMessage returns an add of a loop (dmsgtype 3) or exponential
// loop (4).
func newLoopMessage(topic string, typ delay.ChronosType, timestamp, interval, times, expire int64) *producer.DelayMessage {
	m := newDelayMessage(topic, timestamp, "tick")
	m.Dmsgtype, m.Interval, m.Times, m.Expire = ptr(int32(typ)), &interval, &times, &expire
	return m
}

// chronosID is the id DDMQ's producer proxy answers for an add
// (DelayRequest.buildAndUpdateMessage): timestamp, type, expire, times, 0
// firings, interval, inner topic 0, uuid.
func chronosID(ts int64, typ delay.ChronosType, expire, times, interval int64) string {
	return fmt.Sprintf("%d-%d-%d-%d-0-%d-0-%s", ts, typ, expire, times, interval, testUUID)
}

// chronosMsg is what the Delayer gets for an add of body: a Chronos
// message, topic orders, Partition random, properties p as headers.
func chronosMsg(id string, due time.Time, body string, loop *delay.Loop) delay.Message {
	return delay.Message{ID: id, Topic: "orders", DueAt: due, Loop: loop, Chronos: true,
		Msg: produce.Message{Value: []byte(body), Partition: sdk.PartitionRandom}}
}

// TestSendDelaySync adds every dmsgtype DDMQ accepts, in seconds and in
// milliseconds, and cancels by id, with the generated client over both
// wire setups, and checks the id answered and what reaches the Delayer.
func TestSendDelaySync(t *testing.T) {
	const twoDays = 2 * 24 * 3600 // TIME_AFTER_TIMESTAMP in DelayRequest.java
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
				msg    *producer.DelayMessage
				wantID string
				want   delay.Message
			}{
				{
					name: "delay (dmsgtype 2) with every field",
					msg: func() *producer.DelayMessage {
						m := newDelayMessage("orders", nowS+90, "")
						m.Body = allBytes()
						m.UniqDelayMsgId = ptr("not read to add")
						m.Tags = "tagA"
						m.Interval, m.Expire, m.Times = ptr(int64(5)), ptr(int64(1)), ptr(int64(0))
						m.Properties = map[string]string{"b": "2", "a": "1"}
						m.Version = ptr("1.0")
						return m
					}(),
					// The interval a delay does not use is in its id, as in DDMQ's.
					wantID: chronosID(nowS+90, 2, nowS+90+twoDays, 0, 5),
					want: delay.Message{ID: chronosID(nowS+90, 2, nowS+90+twoDays, 0, 5), Topic: "orders", DueAt: time.Unix(nowS+90, 0), Chronos: true,
						Msg: produce.Message{Value: allBytes(), Tags: "tagA", Partition: sdk.PartitionRandom,
							Headers: []sdk.Header{{Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("2")}}}},
				},
				{
					name:   "delay in milliseconds: the id in seconds",
					msg:    newDelayMessage("orders", nowMs+90_000, "v"),
					wantID: chronosID((nowMs+90_000)/1000, 2, (nowMs+90_000)/1000+twoDays, 0, 0),
					want:   chronosMsg(chronosID((nowMs+90_000)/1000, 2, (nowMs+90_000)/1000+twoDays, 0, 0), time.UnixMilli(nowMs+90_000), "v", nil),
				},
				{
					name:   "a time in the past fires at once",
					msg:    newDelayMessage("orders", 1_000_000_000, "v"),
					wantID: chronosID(1_000_000_000, 2, 1_000_000_000+twoDays, 0, 0),
					want:   chronosMsg(chronosID(1_000_000_000, 2, 1_000_000_000+twoDays, 0, 0), time.Unix(1_000_000_000, 0), "v", nil),
				},
				{
					name:   "loop (dmsgtype 3) in seconds",
					msg:    newLoopMessage("orders", 3, nowS+10, 60, 3, nowS+3600),
					wantID: chronosID(nowS+10, 3, nowS+3600, 3, 60),
					want: chronosMsg(chronosID(nowS+10, 3, nowS+3600, 3, 60), time.Unix(nowS+10, 0), "tick",
						&delay.Loop{Interval: time.Minute, Times: 3, Expire: time.Unix(nowS+3600, 0)}),
				},
				{
					name:   "loop at the shortest interval, 3 s, and the most times",
					msg:    newLoopMessage("orders", 3, nowS+10, 3, math.MaxInt32, nowS+11),
					wantID: chronosID(nowS+10, 3, nowS+11, math.MaxInt32, 3),
					want: chronosMsg(chronosID(nowS+10, 3, nowS+11, math.MaxInt32, 3), time.Unix(nowS+10, 0), "tick",
						&delay.Loop{Interval: 3 * time.Second, Times: math.MaxInt32, Expire: time.Unix(nowS+11, 0)}),
				},
				{
					name:   "loop in milliseconds: the id's interval in whole seconds",
					msg:    newLoopMessage("orders", 3, nowMs+10_000, 3500, 2, nowMs+60_000),
					wantID: chronosID((nowMs+10_000)/1000, 3, (nowMs+60_000)/1000, 2, 3),
					want: chronosMsg(chronosID((nowMs+10_000)/1000, 3, (nowMs+60_000)/1000, 2, 3), time.UnixMilli(nowMs+10_000), "tick",
						&delay.Loop{Interval: 3500 * time.Millisecond, Times: 2, Expire: time.UnixMilli(nowMs + 60_000)}),
				},
				{
					name:   "exponential loop (dmsgtype 4) of base 2",
					msg:    newLoopMessage("orders", 4, nowS+10, 2, 5, nowS+86400),
					wantID: chronosID(nowS+10, 4, nowS+86400, 5, 2),
					want: chronosMsg(chronosID(nowS+10, 4, nowS+86400, 5, 2), time.Unix(nowS+10, 0), "tick",
						&delay.Loop{Base: 2, Times: 5, Expire: time.Unix(nowS+86400, 0)}),
				},
				{
					name:   "exponential loop in milliseconds: the base has no unit",
					msg:    newLoopMessage("orders", 4, nowMs+10_000, 3, 2, nowMs+60_000),
					wantID: chronosID((nowMs+10_000)/1000, 4, (nowMs+60_000)/1000, 2, 3),
					want: chronosMsg(chronosID((nowMs+10_000)/1000, 4, (nowMs+60_000)/1000, 2, 3), time.UnixMilli(nowMs+10_000), "tick",
						&delay.Loop{Base: 3, Times: 2, Expire: time.UnixMilli(nowMs + 60_000)}),
				},
			} {
				t.Run(tc.name, func(t *testing.T) {
					before, _ := fd.calls()
					res, err := client.SendDelaySync(ctx, tc.msg, 5000)
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
					if got := adds[0].msgs[0]; !reflect.DeepEqual(got, tc.want) {
						t.Errorf("added %#v\nwant  %#v", got, tc.want)
					}
				})
			}

			t.Run("a uuid not in Chronos's form is replaced", func(t *testing.T) {
				for _, uuid := range []*string{nil, ptr(""), ptr("not-a-uuid")} {
					m := newDelayMessage("orders", nowS+60, "v")
					m.UUID = uuid
					res, err := client.SendDelaySync(ctx, m, 5000)
					if err != nil || res.Code != 0 {
						t.Fatalf("uuid %v: %v, %v", uuid, res, err)
					}
					c, err := delay.ParseChronosID(res.UniqDelayMsgId)
					if err != nil || c.Timestamp != nowS+60 || c.UUID == testUUID {
						t.Fatalf("uuid %v: id %q (%+v, %v); want a Chronos id with a new uuid", uuid, res.UniqDelayMsgId, c, err)
					}
				}
			})

			t.Run("cancel", func(t *testing.T) {
				for _, id := range []string{
					chronosID(nowS+90, 2, nowS+90+twoDays, 0, 0),
					// A loop's third firing's key, as a consumer receives it.
					"1536811287-3-1536911267-3-2-10-0-" + testUUID,
					chronosID(nowS+10, 4, nowS+86400, 5, 2),
				} {
					_, before := fd.calls()
					m := producer.NewDelayMessage()
					m.Topic, m.Action, m.UniqDelayMsgId = "orders", delayActionCancel, ptr(id)
					res, err := client.SendDelaySync(ctx, m, 5000)
					if err != nil {
						t.Fatal(err)
					}
					if res.Code != 0 || res.Msg != "OK" || res.UniqDelayMsgId != id {
						t.Fatalf("result = %v, want code 0, OK, id %s", res, id)
					}
					if _, cancels := fd.calls(); len(cancels) != len(before)+1 || cancels[len(before)] != [2]string{"orders", id} {
						t.Errorf("Delayer.Cancel calls %v, want one more of orders %s", cancels, id)
					}
				}
			})

			if calls := fp.Calls(); len(calls) != 0 {
				t.Errorf("delay messages were produced at once: %+v", calls)
			}
		})
	}
}

// ddmqCodes are the results DDMQ's producer proxy answers a bad
// sendDelaySync with (ProxySendResult.java in DDMQ's carrera-producer,
// pproxy/producer), each from the check of DelayRequest.checkDelayMessage
// (pproxy/producer/delay/DelayRequest.java) a row names.
var ddmqCodes = map[string]int32{
	"FAIL_ILLEGAL_MSG":                      11,
	"FAIL_TOPIC_NOT_ALLOWED":                13,
	"FAIL_ILLEGAL_UNIQ_DELAY_MSG_ID":        30,
	"FAIL_ILLEGAL_DELAY_MSG_TYPE":           31,
	"FAIL_ILLEGAL_DELAY_ACTION":             32,
	"FAIL_ILLEGAL_DELAY_TIMESTAMP":          33,
	"FAIL_ILLEGAL_DELAY_INNER_TOPIC_SEQ":    34,
	"FAIL_ILLEGAL_DELAY_LOOP_TIMES":         35,
	"FAIL_ILLEGAL_DELAY_LOOP_EXPIRE":        36,
	"FAIL_ILLEGAL_DELAY_LOOP_INTERVAL":      37,
	"FAIL_ILLEGAL_DELAY_LOOP_EXPONENT_BASE": 38,
}

// TestSendDelaySyncBadInput sends what DDMQ's producer proxy refuses and
// checks each is refused with DDMQ's code (the ProxySendResult a row
// names, from the check in DelayRequest.checkDelayMessage, or, for 11, in
// CarreraRequest.checkValid), a message naming the Thrift field, the
// client's id echoed, and nothing reaching the Delayer. Code 16 is
// mqgate's size limit.
func TestSendDelaySyncBadInput(t *testing.T) {
	fd := &fakeDelayer{}
	srv := startServer(t, Options{MaxMessageBytes: 1024, Delayer: fd}, &fakeProducer{})
	client := dial(t, srv.addr, TransportFramed, ProtocolCompact)
	nowMs := time.Now().UnixMilli()
	nowS := time.Now().Unix()

	add := func(typ delay.ChronosType, edit func(m *producer.DelayMessage)) *producer.DelayMessage {
		m := newLoopMessage("orders", typ, nowS+10, 10, 3, nowS+3600)
		if typ == delay.ChronosDelay {
			m = newDelayMessage("orders", nowS+10, "v")
		}
		m.UniqDelayMsgId = ptr("d-1")
		edit(m)
		return m
	}
	cancel := func(id string) *producer.DelayMessage {
		m := producer.NewDelayMessage()
		m.Topic, m.Action, m.UniqDelayMsgId = "orders", delayActionCancel, &id
		return m
	}
	const loopID = "1536811267-3-1536911267-3-0-10-0-" + testUUID
	for _, tc := range []struct {
		name    string
		msg     *producer.DelayMessage
		ddmq    string // the ProxySendResult; "" for mqgate's own 16
		wantMsg string
	}{
		// Topic first, whatever else is wrong, as DDMQ checks it first.
		{"empty topic", add(2, func(m *producer.DelayMessage) { m.Topic = "" }), "FAIL_ILLEGAL_MSG", "delayMessage.topic: must not be empty"},
		{"illegal topic", add(2, func(m *producer.DelayMessage) { m.Topic = "a b" }), "FAIL_ILLEGAL_MSG", "delayMessage.topic: character ' ' at byte 1"},
		{"a reserved topic before a malformed id", func() *producer.DelayMessage { m := cancel("x"); m.Topic = "mqgate_delay_cancel"; return m }(),
			"FAIL_TOPIC_NOT_ALLOWED", `topic "mqgate_delay_cancel" is reserved`},
		{"a reserved topic before a bad timestamp", add(2, func(m *producer.DelayMessage) { m.Topic, m.Timestamp = "mqgate_delay_1s", nil }),
			"FAIL_TOPIC_NOT_ALLOWED", `topic "mqgate_delay_1s" is reserved`},

		{"action unset", add(2, func(m *producer.DelayMessage) { m.Action = 0 }), "FAIL_ILLEGAL_DELAY_ACTION", "delayMessage.action: must be 1 (add) or 2 (cancel); got 0"},
		{"unknown action", add(2, func(m *producer.DelayMessage) { m.Action = 3 }), "FAIL_ILLEGAL_DELAY_ACTION", "delayMessage.action: must be 1 (add) or 2 (cancel); got 3"},

		{"cancel without an id", add(2, func(m *producer.DelayMessage) { m.Action, m.UniqDelayMsgId = delayActionCancel, nil }), "FAIL_ILLEGAL_UNIQ_DELAY_MSG_ID", "delayMessage.uniqDelayMsgId: required to cancel"},
		{"cancel with an empty id", cancel(""), "FAIL_ILLEGAL_UNIQ_DELAY_MSG_ID", "delayMessage.uniqDelayMsgId: required to cancel"},
		{"cancel with a blank id", cancel(" \t"), "FAIL_ILLEGAL_UNIQ_DELAY_MSG_ID", "delayMessage.uniqDelayMsgId: required to cancel"},
		{"cancel with an id of the HTTP API", cancel("6f1c0e6a9b2d4c3f8e7a1b2c3d4e5f60"), "FAIL_ILLEGAL_UNIQ_DELAY_MSG_ID", "delayMessage.uniqDelayMsgId: 1 fields separated by '-', not 12"},
		{"cancel with a 9-digit timestamp", cancel(loopID[1:]), "FAIL_ILLEGAL_UNIQ_DELAY_MSG_ID", `delayMessage.uniqDelayMsgId: its timestamp "536811267" has 9 digits`},
		{"cancel with an upper-case uuid", cancel(strings.ToUpper(loopID)), "FAIL_ILLEGAL_UNIQ_DELAY_MSG_ID", "its uuid"},
		{"cancel with Chronos's segment suffix", cancel(loopID + "-2-100"), "FAIL_ILLEGAL_UNIQ_DELAY_MSG_ID", "14 fields"},
		{"cancel with times over a Java int", cancel("1536811267-3-1536911267-2147483648-0-10-0-" + testUUID), "FAIL_ILLEGAL_UNIQ_DELAY_MSG_ID", `its times "2147483648" is out of range`},
		{"cancel with an id of type 1", cancel("1536811267-1-1536911267-3-0-10-0-" + testUUID), "FAIL_ILLEGAL_DELAY_MSG_TYPE", "delayMessage.uniqDelayMsgId: its type 1 is not 2 (delay), 3 (loop) or 4 (exponential loop)"},
		{"cancel with a tombstone's id", cancel("1536811267-0-1536911267-3-0-10-0-" + testUUID), "FAIL_ILLEGAL_DELAY_MSG_TYPE", "its type 0"},
		{"cancel of a second inner topic", cancel("1536811267-3-1536911267-3-0-10-1-" + testUUID), "FAIL_ILLEGAL_DELAY_INNER_TOPIC_SEQ", "delayMessage.uniqDelayMsgId: its innerTopicSeq 1 names an inner topic"},

		{"no timestamp", add(2, func(m *producer.DelayMessage) { m.Timestamp = nil }), "FAIL_ILLEGAL_DELAY_TIMESTAMP", "delayMessage.timestamp: required to add"},
		{"negative timestamp", add(2, func(m *producer.DelayMessage) { m.Timestamp = ptr(int64(-1000)) }), "FAIL_ILLEGAL_DELAY_TIMESTAMP", "delayMessage.timestamp: -1000 is before 2001"},
		{"zero timestamp", add(2, func(m *producer.DelayMessage) { m.Timestamp = ptr(int64(0)) }), "FAIL_ILLEGAL_DELAY_TIMESTAMP", "delayMessage.timestamp: 0 is before 2001"},
		{"a timestamp before 2001", add(2, func(m *producer.DelayMessage) { m.Timestamp = ptr(int64(999_999_999)) }), "FAIL_ILLEGAL_DELAY_TIMESTAMP", "delayMessage.timestamp: 999999999 is before 2001"},
		{"milliseconds before 2001", add(2, func(m *producer.DelayMessage) { m.Timestamp = ptr(int64(1e11)) }), "FAIL_ILLEGAL_DELAY_TIMESTAMP", "delayMessage.timestamp: 100000000000 is before 2001"},
		{"beyond delay.max in s", add(2, func(m *producer.DelayMessage) { m.Timestamp = ptr(nowS + 48*3600) }), "FAIL_ILLEGAL_DELAY_TIMESTAMP",
			fmt.Sprintf("delayMessage.timestamp: %d (seconds) is ", nowS+48*3600)},
		{"beyond delay.max in ms", add(2, func(m *producer.DelayMessage) { m.Timestamp = ptr(nowMs + 48*3600_000) }), "FAIL_ILLEGAL_DELAY_TIMESTAMP",
			"delayMessage.timestamp: " + strconv.FormatInt(nowMs+48*3600_000, 10) + " (milliseconds) is 48h0m0s from now, beyond delay.max (24h0m0s)"},

		{"dmsgtype unset", add(2, func(m *producer.DelayMessage) { m.Dmsgtype = nil }), "FAIL_ILLEGAL_DELAY_MSG_TYPE", "delayMessage.dmsgtype: must be 2 (delay), 3 (loop) or 4 (exponential loop); unset"},
		{"dmsgtype 0, a tombstone", add(2, func(m *producer.DelayMessage) { m.Dmsgtype = ptr(int32(0)) }), "FAIL_ILLEGAL_DELAY_MSG_TYPE", "got 0"},
		{"dmsgtype 1, real time", add(2, func(m *producer.DelayMessage) { m.Dmsgtype = ptr(int32(1)) }), "FAIL_ILLEGAL_DELAY_MSG_TYPE", "got 1"},
		{"dmsgtype 5", add(2, func(m *producer.DelayMessage) { m.Dmsgtype = ptr(int32(5)) }), "FAIL_ILLEGAL_DELAY_MSG_TYPE", "got 5"},

		{"a delay with times", add(2, func(m *producer.DelayMessage) { m.Times = ptr(int64(3)) }), "FAIL_ILLEGAL_DELAY_LOOP_TIMES", "delayMessage.times: must be 0 or unset for a delay (dmsgtype 2); got 3"},
		{"loop times unset", add(3, func(m *producer.DelayMessage) { m.Times = nil }), "FAIL_ILLEGAL_DELAY_LOOP_TIMES", "delayMessage.times: must be 1 to 2147483647 for a loop (dmsgtype 3); got 0"},
		{"loop times negative", add(3, func(m *producer.DelayMessage) { m.Times = ptr(int64(-2)) }), "FAIL_ILLEGAL_DELAY_LOOP_TIMES", "got -2"},
		{"loop times over a Java int", add(3, func(m *producer.DelayMessage) { m.Times = ptr(int64(math.MaxInt32) + 1) }), "FAIL_ILLEGAL_DELAY_LOOP_TIMES", "got 2147483648"},
		{"exponential loop times 0", add(4, func(m *producer.DelayMessage) { m.Times = ptr(int64(0)) }), "FAIL_ILLEGAL_DELAY_LOOP_TIMES", "for a loop (dmsgtype 4); got 0"},

		{"loop expire unset", add(3, func(m *producer.DelayMessage) { m.Expire = nil }), "FAIL_ILLEGAL_DELAY_LOOP_EXPIRE",
			fmt.Sprintf("delayMessage.expire: must be after timestamp %d for a loop (dmsgtype 3), in seconds as timestamp is; got 0", nowS+10)},
		{"loop expiring at its timestamp", add(3, func(m *producer.DelayMessage) { m.Expire = ptr(nowS + 10) }), "FAIL_ILLEGAL_DELAY_LOOP_EXPIRE", "delayMessage.expire: must be after timestamp"},
		{"loop expiring before it fires, in ms", add(3, func(m *producer.DelayMessage) {
			m.Timestamp, m.Interval, m.Expire = ptr(nowMs+10_000), ptr(int64(5000)), ptr(nowMs)
		}), "FAIL_ILLEGAL_DELAY_LOOP_EXPIRE", fmt.Sprintf("must be after timestamp %d for a loop (dmsgtype 3), in milliseconds as timestamp is; got %d", nowMs+10_000, nowMs)},
		{"exponential loop expiring before it fires", add(4, func(m *producer.DelayMessage) { m.Expire = ptr(nowS) }), "FAIL_ILLEGAL_DELAY_LOOP_EXPIRE", "for a loop (dmsgtype 4)"},
		{"loop expiring past a Chronos id's ten digits", add(3, func(m *producer.DelayMessage) { m.Expire = ptr(int64(1e10)) }), "FAIL_ILLEGAL_DELAY_LOOP_EXPIRE", "past what a Chronos id's ten digits hold"},

		{"loop interval unset", add(3, func(m *producer.DelayMessage) { m.Interval = nil }), "FAIL_ILLEGAL_DELAY_LOOP_INTERVAL",
			"delayMessage.interval: must be 3 to 2147483647 for a loop (dmsgtype 3), in seconds as timestamp is; got 0"},
		{"loop interval 2 s", add(3, func(m *producer.DelayMessage) { m.Interval = ptr(int64(2)) }), "FAIL_ILLEGAL_DELAY_LOOP_INTERVAL", "got 2"},
		{"loop interval negative", add(3, func(m *producer.DelayMessage) { m.Interval = ptr(int64(-1)) }), "FAIL_ILLEGAL_DELAY_LOOP_INTERVAL", "got -1"},
		{"loop interval 2999 ms", add(3, func(m *producer.DelayMessage) {
			m.Timestamp, m.Interval, m.Expire = ptr(nowMs+10_000), ptr(int64(2999)), ptr(nowMs+60_000)
		}), "FAIL_ILLEGAL_DELAY_LOOP_INTERVAL", "delayMessage.interval: must be 3000 to 2147483647000 for a loop (dmsgtype 3), in milliseconds as timestamp is; got 2999"},
		{"loop interval over a Java int", add(3, func(m *producer.DelayMessage) { m.Interval = ptr(int64(1) << 40) }), "FAIL_ILLEGAL_DELAY_LOOP_INTERVAL", "got 1099511627776"},
		{"a delay's interval negative", add(2, func(m *producer.DelayMessage) { m.Interval = ptr(int64(-1)) }), "FAIL_ILLEGAL_DELAY_LOOP_INTERVAL", "delayMessage.interval: -1 is out of range"},

		{"exponential base 1", add(4, func(m *producer.DelayMessage) { m.Interval = ptr(int64(1)) }), "FAIL_ILLEGAL_DELAY_LOOP_EXPONENT_BASE",
			"delayMessage.interval: the base of an exponential loop (dmsgtype 4) must be 2 to 2147483647; got 1"},
		{"exponential base unset", add(4, func(m *producer.DelayMessage) { m.Interval = nil }), "FAIL_ILLEGAL_DELAY_LOOP_EXPONENT_BASE", "got 0"},
		{"exponential base over a Java int", add(4, func(m *producer.DelayMessage) { m.Interval = ptr(int64(math.MaxInt32) + 1) }), "FAIL_ILLEGAL_DELAY_LOOP_EXPONENT_BASE", "got 2147483648"},

		{"no body", add(2, func(m *producer.DelayMessage) { m.Body = nil }), "FAIL_ILLEGAL_MSG", "delayMessage.body: required to add"},
		{"an empty body", add(2, func(m *producer.DelayMessage) { m.Body = []byte{} }), "FAIL_ILLEGAL_MSG", "delayMessage.body: required to add, and not empty"},
		{"oversize", add(2, func(m *producer.DelayMessage) {
			m.Body = make([]byte, 1000)
			m.Properties = map[string]string{"p": strings.Repeat("x", 30)}
		}), "", "delayMessage is 1031 bytes (body, tags and properties), over the limit of 1024 bytes (http.max_message_bytes)"},
		// Last: a large id is slow to send under -race.
		{"cancel with a 1 MiB id", cancel(strings.Repeat("1", 1<<20)), "FAIL_ILLEGAL_UNIQ_DELAY_MSG_ID",
			"delayMessage.uniqDelayMsgId: 1048576 bytes, longer than any"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantCode, ok := ddmqCodes[tc.ddmq]
			if tc.ddmq == "" {
				wantCode, ok = int32(sdk.CodeTooLarge), true
			}
			if !ok {
				t.Fatalf("no code for %s", tc.ddmq)
			}
			beforeAdds, beforeCancels := fd.calls()
			res, err := client.SendDelaySync(context.Background(), tc.msg, 1000)
			if err != nil {
				t.Fatalf("call failed: %v", err)
			}
			if res.Code != wantCode || !strings.Contains(res.Msg, tc.wantMsg) {
				t.Errorf("result = {%d %q}, want code %d (%s) and a msg containing %q", res.Code, res.Msg, wantCode, tc.ddmq, tc.wantMsg)
			}
			id := tc.msg.GetUniqDelayMsgId()
			if len(id) > delay.MaxIDBytes {
				if res.UniqDelayMsgId != "" {
					t.Errorf("uniqDelayMsgId of %d bytes echoed for an id of %d bytes; want none", len(res.UniqDelayMsgId), len(id))
				}
			} else if res.UniqDelayMsgId != id {
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
// panics reach the client with their codes and the message's id: an
// add's Chronos id, a cancel's.
func TestSendDelaySyncErrors(t *testing.T) {
	down := sdk.Errorf(sdk.CodeUnavailable, "broker down")
	ts := time.Now().Unix() + 60
	addID := chronosID(ts, 2, ts+2*24*3600, 0, 0)
	cancelID := "1536811267-3-1536911267-3-0-10-0-" + testUUID
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
		}}, wantCode: 17, wantMsg: "broker down", wantID: addID},
		{name: "message error keeps its code and id", fd: &fakeDelayer{add: func(_ context.Context, msgs []delay.Message) ([]delay.Result, error) {
			return []delay.Result{{ID: msgs[0].ID, Err: down}}, nil
		}}, wantCode: 17, wantMsg: "broker down", wantID: addID},
		{name: "a result count that does not match is internal", fd: &fakeDelayer{add: func(context.Context, []delay.Message) ([]delay.Result, error) {
			return nil, nil
		}}, wantCode: 100, wantMsg: "internal error", wantID: addID},
		{name: "past the call's timeout", timeout: 50, fd: &fakeDelayer{add: func(ctx context.Context, _ []delay.Message) ([]delay.Result, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}}, wantCode: 12, wantMsg: "timed out after 50ms (the sendDelaySync timeout)", wantID: addID},
		{name: "panic is internal", fd: &fakeDelayer{add: func(context.Context, []delay.Message) ([]delay.Result, error) {
			panic("bug")
		}}, wantCode: 100, wantMsg: "internal error", wantID: ""},
		{name: "cancel error keeps its code", cancel: true, fd: &fakeDelayer{cancel: func(context.Context, string, string) error {
			return down
		}}, wantCode: 17, wantMsg: "broker down", wantID: cancelID},
		{name: "cancel past the call's timeout", cancel: true, timeout: 50, fd: &fakeDelayer{cancel: func(ctx context.Context, _, _ string) error {
			<-ctx.Done()
			return ctx.Err()
		}}, wantCode: 12, wantMsg: "timed out after 50ms (the sendDelaySync timeout)", wantID: cancelID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startServer(t, Options{Delayer: tc.fd}, &fakeProducer{})
			client := dial(t, srv.addr, TransportFramed, ProtocolCompact)
			m := newDelayMessage("orders", ts, "v")
			if tc.cancel {
				m.Action, m.UniqDelayMsgId = delayActionCancel, &cancelID
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
// that decoding never panics, refuses only with code 11, 16 or DDMQ's 30
// to 38 naming delayMessage, and otherwise yields a request within the
// rules: a cancel of a Chronos id of type 2 to 4 and inner topic 0, or an
// add of a Chronos message whose id reads back and states its schedule.
func FuzzDelayMessageMapping(f *testing.F) {
	now := time.UnixMilli(1_700_000_000_000)
	f.Add("orders", "id", testUUID, []byte("v"), int32(1), int64(1_700_000_090_000), int32(2), int64(0), int64(0), int64(0), true)
	f.Add("orders", "", "", []byte("v"), int32(1), int64(1_700_000_090), int32(3), int64(60), int64(3), int64(1_700_003_600), true)
	f.Add("orders", "", "x", []byte("v"), int32(1), int64(1_700_000_090), int32(4), int64(2), int64(3), int64(1_700_003_600), true)
	f.Add("orders", "1536811267-3-1536911267-3-0-10-0-"+testUUID, "", []byte(nil), int32(2), int64(0), int32(0), int64(0), int64(0), int64(0), true)
	f.Add("orders", "x", "", []byte(nil), int32(2), int64(0), int32(0), int64(0), int64(0), int64(0), false)
	f.Add("", "", "", []byte(nil), int32(7), int64(-1), int32(9), int64(-1), int64(-1), int64(-1), false)
	f.Fuzz(func(t *testing.T, topic, id, uuid string, body []byte, action int32, ts int64, typ int32, interval, times, expire int64, optionals bool) {
		m := &producer.DelayMessage{Topic: topic, Body: body, Action: action, Timestamp: &ts}
		if optionals {
			m.UniqDelayMsgId, m.UUID, m.Dmsgtype, m.Interval, m.Times, m.Expire = &id, &uuid, &typ, &interval, &times, &expire
		}
		req, err := decodeDelayMessage(m, now, testMax, 1024)
		if err != nil {
			var e *sdk.Error
			if !errors.As(err, &e) || !strings.HasPrefix(e.Msg, "delayMessage") {
				t.Fatalf("error %v (%T) is not an *sdk.Error naming delayMessage", err, err)
			}
			if c := e.Code; c != sdk.CodeIllegal && c != sdk.CodeTooLarge && (c < sdk.CodeDelayID || c > sdk.CodeDelayExponentBase) {
				t.Fatalf("error %v has code %d, not 11, 16 or 30 to 38", err, c)
			}
			return
		}
		if req.msg.Topic != topic {
			t.Fatalf("topic %q, want %q", req.msg.Topic, topic)
		}
		c, err := delay.ParseChronosID(req.msg.ID)
		if err != nil || c.Type < delay.ChronosDelay || c.Type > delay.ChronosExponentialLoop || c.InnerTopicSeq != 0 {
			t.Fatalf("accepted id %q (%+v, %v): not a Chronos id DDMQ accepts", req.msg.ID, c, err)
		}
		if req.cancel {
			if action != delayActionCancel || req.msg.ID != id {
				t.Fatalf("cancel of %+v from action %d", req.msg, action)
			}
			return
		}
		msg := req.msg
		if action != delayActionAdd || !msg.Chronos || msg.DueAt.Sub(now) > testMax || len(msg.Msg.Value) == 0 {
			t.Fatalf("add of %+v from action %d", msg, action)
		}
		if c.String() != msg.ID || c.Timestamp != msg.DueAt.Unix() || int32(c.Type) != typ || c.Timed != 0 {
			t.Fatalf("id %q (%+v) of a message due %v, dmsgtype %d", msg.ID, c, msg.DueAt, typ)
		}
		switch l := msg.Loop; c.Type {
		case delay.ChronosDelay:
			if l != nil || c.Times != 0 || c.Expire != c.Timestamp+2*24*3600 {
				t.Fatalf("a delay with loop %+v, id %+v", l, c)
			}
		case delay.ChronosLoop:
			if l == nil || l.Base != 0 || l.Interval < 3*time.Second || c.Interval != int64(l.Interval/time.Second) || c.Times != l.Times || c.Expire != l.Expire.Unix() || !l.Expire.After(msg.DueAt) {
				t.Fatalf("a loop with loop %+v, id %+v", l, c)
			}
		case delay.ChronosExponentialLoop:
			if l == nil || l.Base < 2 || c.Interval != l.Base || c.Times != l.Times || c.Expire != l.Expire.Unix() || !l.Expire.After(msg.DueAt) {
				t.Fatalf("an exponential loop with loop %+v, id %+v", l, c)
			}
		}
		if err := msg.Validate(now, testMax); err != nil {
			t.Fatalf("accepted a message Validate refuses: %v", err)
		}
	})
}
