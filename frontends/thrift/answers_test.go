package thriftapi

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/mqgate/mqgate/core/consume"
	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/frontends/thrift/gen-go/consumer"
	"github.com/mqgate/mqgate/frontends/thrift/gen-go/producer"
	"github.com/mqgate/mqgate/sdk"
)

// The tests of this file hold the services to DDMQ's answers: each case
// names the file of DDMQ's source (didi/DDMQ) its expectation comes from,
// under carrera-producer/.../pproxy or carrera-consumer/.../cproxy.

// answer is what a call should get: a code, a substring of its msg, and
// how many messages reach the producer.
type answer struct {
	code     int32
	msg      string
	produced int
}

// TestDDMQProducerAnswers checks ProducerService's answers where DDMQ's
// differ from what mqgate would answer on its own, in both modes of
// thrift.ddmq_answers.
func TestDDMQProducerAnswers(t *testing.T) {
	type client = producer.ProducerServiceClient
	ctx := context.Background()
	sendSync := func(edit func(m *producer.Message)) func(c *client) (*producer.Result_, error) {
		return func(c *client) (*producer.Result_, error) {
			m := newMessage("orders", "k", "v")
			edit(m)
			return c.SendSync(ctx, m, 1000)
		}
	}
	withProps := func(props map[string]string) func(c *client) (*producer.Result_, error) {
		return sendSync(func(m *producer.Message) { m.Properties = props })
	}
	for _, tc := range []struct {
		name                string
		call                func(c *client) (*producer.Result_, error)
		strict, informative answer
	}{
		// producer/CarreraRequest.java, checkValid: a body of 0 bytes is
		// FAIL_ILLEGAL_MSG (11, "FAILED: Message is too large or illegal
		// or the length is 0"), value or body alike.
		{"empty body", sendSync(func(m *producer.Message) { m.Body = []byte{} }),
			answer{11, "message.body: empty", 0}, answer{11, "message.body: empty", 0}},
		{"empty value", sendSync(func(m *producer.Message) { m.Value = "" }),
			answer{11, "message.body: required", 0}, answer{11, "message.body: required", 0}},
		// utils/MsgCheckUtils.java, checkProperties: RocketMQ's reserved
		// names (MessageConst.STRING_HASH_SET), and names or values that
		// trim to nothing, are FAIL_ILLEGAL_MSG (11).
		{"property KEYS", withProps(map[string]string{"KEYS": "k2", "a": "1"}),
			answer{11, `message.properties["KEYS"]: the name is RocketMQ's own`, 0}, answer{11, `properties["KEYS"]`, 0}},
		{"property UNIQ_KEY", withProps(map[string]string{"UNIQ_KEY": "x"}),
			answer{11, `message.properties["UNIQ_KEY"]`, 0}, answer{11, `message.properties["UNIQ_KEY"]`, 0}},
		{"reserved names are matched with case", withProps(map[string]string{"keys": "x", "Tags": "y"}),
			answer{0, "OK", 1}, answer{0, "OK", 1}},
		{"blank property name", withProps(map[string]string{" \t": "x"}),
			answer{11, "an empty name", 0}, answer{11, "an empty name", 0}},
		{"empty property value", withProps(map[string]string{"a": ""}),
			answer{11, `message.properties["a"]: an empty value`, 0}, answer{11, "an empty value", 0}},
		{"whitespace property value", withProps(map[string]string{"a": " \r\n\x00"}),
			answer{11, "an empty value", 0}, answer{11, "an empty value", 0}},
		{"the first bad property by name", withProps(map[string]string{"z": "", "TAGS": "t", "b": "1"}),
			answer{11, `properties["TAGS"]`, 0}, answer{11, `properties["TAGS"]`, 0}},
		{"sendAsync property TAGS", func(c *client) (*producer.Result_, error) {
			m := newMessage("orders", "", "v")
			m.Properties = map[string]string{"TAGS": "x"}
			return c.SendAsync(ctx, m)
		}, answer{11, `message.properties["TAGS"]`, 0}, answer{11, `message.properties["TAGS"]`, 0}},
		// server/ProducerAsyncServerImpl.java, sendBatchSync: one message
		// with a reserved property refuses the batch before any is sent.
		{"batch with a reserved property", func(c *client) (*producer.Result_, error) {
			bad := newMessage("orders", "", "b")
			bad.Properties = map[string]string{"DELAY": "3"}
			return c.SendBatchSync(ctx, []*producer.Message{newMessage("orders", "", "a"), bad})
		}, answer{11, `messages[1].properties["DELAY"]`, 0}, answer{11, `messages[1].properties["DELAY"]`, 0}},
		// server/ProducerAsyncServerImpl.java, sendSync: the heartbeat
		// topic is answered OK first thing, nothing produced; its other
		// methods do not know it.
		{"heartbeat", sendSync(func(m *producer.Message) { m.Topic, m.Value = heartbeatTopic, "" }),
			answer{0, "OK", 0}, answer{0, "OK", 0}},
		{"heartbeat by sendAsync is a message", func(c *client) (*producer.Result_, error) {
			return c.SendAsync(ctx, newMessage(heartbeatTopic, "", "v"))
		}, answer{0, "OK", 1}, answer{0, "OK", 1}},
		// server/ProducerAsyncServerImpl.java, sendBatchSync: an empty
		// list is ProxySendResult.OK.
		{"empty batch", func(c *client) (*producer.Result_, error) { return c.SendBatchSync(ctx, nil) },
			answer{0, "OK", 0}, answer{11, "messages: must not be empty", 0}},
		// producer/RmqSender.java, RMQ_MQ_SELECTOR, and
		// KafkaClusterProducer.java via CarreraRequest.toKafkaRecord: a
		// partitionId below -1 is a random partition.
		{"partitionId -3", sendSync(func(m *producer.Message) { m.PartitionId = -3 }),
			answer{0, "OK", 1}, answer{11, "message.partitionId", 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, mode := range []struct {
				answers string
				want    answer
			}{{AnswersStrict, tc.strict}, {AnswersInformative, tc.informative}} {
				fake := &fakeProducer{}
				srv := startServer(t, Options{Answers: mode.answers}, fake)
				res, err := tc.call(dial(t, srv.addr, TransportFramed, ProtocolCompact))
				if err != nil {
					t.Fatalf("%s: %v", mode.answers, err)
				}
				if res.Code != mode.want.code || !strings.Contains(res.Msg, mode.want.msg) {
					t.Errorf("%s: {%d %q}, want code %d with %q", mode.answers, res.Code, res.Msg, mode.want.code, mode.want.msg)
				}
				produced := 0
				for _, c := range fake.Calls() {
					produced += len(c.msgs)
				}
				if produced != mode.want.produced {
					t.Errorf("%s: %d messages produced, want %d", mode.answers, produced, mode.want.produced)
				}
			}
		})
	}
}

// TestDDMQPlacement checks where DDMQ's answers place a message by
// partitionId and hashId, on a topic of n partitions (or RocketMQ write
// queues): produce.Placement's hash taken modulo n, as both backends do.
func TestDDMQPlacement(t *testing.T) {
	const random = -1 // want: any partition
	fake := &fakeProducer{}
	srv := startServer(t, Options{}, fake)
	client := dial(t, srv.addr, TransportFramed, ProtocolCompact)
	for _, tc := range []struct {
		name        string
		partitionID int32
		hashID      int64
		key         string
		n           uint64
		want        int
	}{
		// producer/RmqSender.java, RMQ_MQ_SELECTOR, partitionId -1:
		// Math.abs(hashId) % n; hashId 0 is partition 0, whatever the key.
		{"hashId 0", -1, 0, "", 4, 0},
		{"hashId 0 with a key", -1, 0, "order-42", 4, 0},
		{"hashId 7", -1, 7, "", 4, 3},
		{"hashId 7 of 3", -1, 7, "", 3, 1},
		{"hashId -7", -1, -7, "k", 4, 3},
		{"hashId max", -1, math.MaxInt64, "", 3, 1},
		// server/ProducerAsyncServerImpl.java, sendBatchSync:
		// Math.abs((int) (hashId % n)), for the one hashId whose
		// absolute value Java cannot hold.
		{"hashId min of 4", -1, math.MinInt64, "", 4, 0},
		{"hashId min of 3", -1, math.MinInt64, "", 3, 2},
		// RmqSender, partitionId >= 0: partitionId % n, a partition the
		// topic does not have included.
		{"partition 3", 3, 7, "k", 4, 3},
		{"partition 6 of 4", 6, 0, "", 4, 2},
		{"partition max of 3", math.MaxInt32, 0, "", 3, 1},
		// RmqSender, any other partitionId: RandomUtils.pick.
		{"partitionId -2", -2, 7, "k", 4, random},
		{"partitionId min", math.MinInt32, 7, "", 4, random},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMessage("orders", tc.key, "v")
			m.PartitionId, m.HashId = tc.partitionID, tc.hashID
			before := len(fake.Calls())
			if res, err := client.SendSync(context.Background(), m, 1000); err != nil || res.Code != 0 {
				t.Fatalf("SendSync = %v, %v", res, err)
			}
			got := fake.Calls()[before].msgs[0]
			part, hash := produce.Placement(&got)
			switch {
			case tc.want == random && part != sdk.PartitionRandom:
				t.Errorf("placed (%d, %d), want random", part, hash)
			case tc.want != random && (part != sdk.PartitionHash || int(hash%tc.n) != tc.want):
				t.Errorf("placed (%d, %d): partition %d of %d, want %d", part, hash, hash%tc.n, tc.n, tc.want)
			}
		})
	}
}

// partitionedProducer is a Producer of topics with n partitions each,
// which refuses an explicit partition past them as both backends do, and
// permits only the topics of allowed (nil: any) as the router does.
type partitionedProducer struct {
	fakeProducer
	n       int32
	allowed []string

	mu     sync.Mutex
	placed map[string]int32 // value -> partition
}

func (p *partitionedProducer) Permit(topic string) error {
	if p.allowed == nil || slices.Contains(p.allowed, topic) {
		return nil
	}
	return sdk.Errorf(sdk.CodeNotAllowed, "topic %q is not allowed", topic)
}

func (p *partitionedProducer) Produce(ctx context.Context, topic string, msgs []produce.Message) ([]sdk.ProduceResult, error) {
	if err := p.Permit(topic); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.placed == nil {
		p.placed = map[string]int32{}
	}
	out := make([]sdk.ProduceResult, len(msgs))
	var landed []produce.Message
	for i := range msgs {
		part, hash := produce.Placement(&msgs[i])
		switch {
		case part >= p.n:
			out[i].Err = sdk.Errorf(sdk.CodeIllegal, "partition %d out of range: topic %s has %d partitions", part, topic, p.n)
			continue
		case part == sdk.PartitionHash:
			part = int32(hash % uint64(p.n))
		case part == sdk.PartitionRandom:
			part = 0
		}
		out[i].Partition = part
		p.placed[string(msgs[i].Value)] = part
		landed = append(landed, msgs[i])
	}
	p.record(ctx, false, topic, landed)
	return out, nil
}

// TestDDMQBatchOutOfRange checks a sendBatchSync with an explicit
// partition its topic does not have. DDMQ places it on partitionId % n
// and answers OK (server/ProducerAsyncServerImpl.java, sendBatchSync,
// which groups messages by partitionId % n; producer/RmqSender.java,
// which sends there): every message lands once. Informative answers
// refuse that one message with code 11, and DDMQ's Java SDK, which sends
// a batch again on any code but 0 (CarreraProducerBase.sendBatchSync),
// would produce the others again.
func TestDDMQBatchOutOfRange(t *testing.T) {
	batch := func() []*producer.Message {
		var ms []*producer.Message
		for i, p := range []int32{0, 9, -2, 3} {
			m := newMessage("orders", "", fmt.Sprint("m", i))
			m.PartitionId = p
			ms = append(ms, m)
		}
		return ms
	}
	for _, tc := range []struct {
		answers  string
		want     answer
		wantPart map[string]int32
	}{
		{AnswersStrict, answer{0, "OK", 4}, map[string]int32{"m0": 0, "m1": 1, "m2": 0, "m3": 3}},
		{AnswersInformative, answer{11, "1 of 4 failed: [1] code 11 partition 9 out of range: topic orders has 4 partitions", 3},
			map[string]int32{"m0": 0, "m2": 0, "m3": 3}},
	} {
		t.Run(tc.answers, func(t *testing.T) {
			p := &partitionedProducer{n: 4}
			srv := startServer(t, Options{Answers: tc.answers}, p)
			res, err := dial(t, srv.addr, TransportFramed, ProtocolCompact).SendBatchSync(context.Background(), batch())
			if err != nil || res.Code != tc.want.code || !strings.Contains(res.Msg, tc.want.msg) {
				t.Fatalf("SendBatchSync = %+v, %v; want code %d with %q", res, err, tc.want.code, tc.want.msg)
			}
			p.mu.Lock()
			defer p.mu.Unlock()
			if len(p.placed) != len(tc.wantPart) {
				t.Errorf("landed %v, want %v", p.placed, tc.wantPart)
			}
			for v, part := range tc.wantPart {
				if got, ok := p.placed[v]; !ok || got != part {
					t.Errorf("%s landed on %d (%v), want %d", v, got, ok, part)
				}
			}
		})
	}
}

// TestBatchTopicNotAllowed checks that a sendBatchSync naming a topic the
// gateway does not take (topics.auto_create: false) is refused whole with
// code 13, DDMQ's FAIL_TOPIC_NOT_ALLOWED for a topic outside its white
// list (producer/ProducerPool.java, send), before any message is
// produced: DDMQ's Java SDK sends a refused batch again.
func TestBatchTopicNotAllowed(t *testing.T) {
	p := &partitionedProducer{n: 4, allowed: []string{"orders"}}
	srv := startServer(t, Options{}, p)
	client := dial(t, srv.addr, TransportFramed, ProtocolCompact)
	ms := []*producer.Message{newMessage("orders", "", "a"), newMessage("payments", "", "b"), newMessage("orders", "", "c")}
	res, err := client.SendBatchSync(context.Background(), ms)
	if err != nil || res.Code != 13 || !strings.Contains(res.Msg, `messages[1]: topic "payments" is not allowed`) {
		t.Fatalf("SendBatchSync = %+v, %v; want code 13 naming messages[1]", res, err)
	}
	if calls := p.Calls(); len(calls) != 0 {
		t.Errorf("produced %+v, want nothing", calls)
	}
	res, err = client.SendSync(context.Background(), newMessage("payments", "", "b"), 1000)
	if err != nil || res.Code != 13 {
		t.Errorf("SendSync = %+v, %v; want code 13", res, err)
	}
}

// handedOut is a consumer's session as the Thrift service sees it:
// offsets handed out per qid of group g, topic t. Like a consume session,
// it refuses a whole Ack with code 11 when one of its offsets was not
// handed out (or is already acked), and with 19 a qid it does not hold.
type handedOut struct {
	mu      sync.Mutex
	out     map[string]map[int64]bool
	applied []string // "qid/offset", in order
}

func newHandedOut(qids map[string][]int64) *handedOut {
	h := &handedOut{out: map[string]map[int64]bool{}}
	for qid, offs := range qids {
		h.out[qid] = map[int64]bool{}
		for _, o := range offs {
			h.out[qid][o] = true
		}
	}
	return h
}

func (h *handedOut) ack(_ context.Context, acks []consume.Ack) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, a := range acks {
		out := h.out[a.Qid]
		if out == nil || a.Group != "g" || a.Topic != "t" {
			return sdk.Errorf(sdk.CodeNotFound, "qid %s of %s is not assigned to this gateway", a.Qid, a.Topic)
		}
		all := append(slices.Clone(a.Success), a.Fail...)
		for _, o := range all {
			if !out[o] {
				return sdk.Errorf(sdk.CodeIllegal, "offset %d of qid %s was not handed out, or is already acked or failed", o, a.Qid)
			}
		}
		for _, o := range all {
			delete(out, o)
			h.applied = append(h.applied, fmt.Sprintf("%s/%d", a.Qid, o))
		}
	}
	return nil
}

func (h *handedOut) appliedOffsets() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.applied)
}

// TestDDMQConsumerAnswers checks ConsumerService's answers where DDMQ's
// differ from what mqgate would answer on its own, in both modes.
func TestDDMQConsumerAnswers(t *testing.T) {
	ctx := context.Background()
	result := func(qid string, success ...int64) *consumer.ConsumeResult_ {
		return &consumer.ConsumeResult_{Context: &consumer.Context{GroupId: "g", Topic: "t", Qid: qid}, SuccessOffsets: success}
	}
	chain := func(rs ...*consumer.ConsumeResult_) *consumer.ConsumeResult_ {
		for i := len(rs) - 2; i >= 0; i-- {
			rs[i].NextResult_ = rs[i+1]
		}
		return rs[0]
	}
	submit := func(r *consumer.ConsumeResult_) func(c *consumer.ConsumerServiceClient) (bool, error) {
		return func(c *consumer.ConsumerServiceClient) (bool, error) { return c.Submit(ctx, r) }
	}
	ack := func(offsets map[string]map[string]int64) func(c *consumer.ConsumerServiceClient) (bool, error) {
		return func(c *consumer.ConsumerServiceClient) (bool, error) {
			return c.Ack(ctx, &consumer.AckResult_{GroupId: "g", Offsets: offsets})
		}
	}
	type want struct {
		ok   bool
		code int32 // of the PullException; 0: none
		msg  string
	}
	for _, tc := range []struct {
		name                string
		call                func(c *consumer.ConsumerServiceClient) (bool, error)
		strict, informative want
		applied             []string
	}{
		// server/ConsumerServiceImpl.java, ack: no offsets is true at once.
		{"ack of no offsets", ack(nil), want{ok: true}, want{}, nil},
		{"ack of topics without qids", ack(map[string]map[string]int64{"t": {}}), want{ok: true}, want{}, nil},
		// server/ConsumerServiceImpl.java, submit and doSubmit;
		// actions/util/UpstreamGroupJobBuffer.java, processResult: the
		// offsets it has are applied, the others logged
		// ("offset not exists"), and submit answers true.
		{"submit of an offset never handed out", submit(result("0", 1, 9, 2)),
			want{ok: true}, want{code: 11, msg: "offset 9 of qid 0 was not handed out"}, []string{"0/1", "0/2"}},
		{"submit of a qid not held", submit(result("5", 1)),
			want{ok: true}, want{code: 19, msg: "qid 5 of t is not assigned"}, nil},
		{"submit of a chain past a refused link", submit(chain(result("5", 1), result("0", 9), result("0", 2, 3))),
			want{ok: true}, want{code: 19, msg: "qid 5"}, []string{"0/2", "0/3"}},
		{"submit of offsets handed out", submit(result("0", 3, 1)), want{ok: true}, want{ok: true}, []string{"0/3", "0/1"}},
		// UpstreamGroupJobBuffer.processResult takes the successes first:
		// the failure of the same offset finds it gone.
		{"submit of an offset both acked and failed", submit(&consumer.ConsumeResult_{
			Context: &consumer.Context{GroupId: "g", Topic: "t", Qid: "0"}, SuccessOffsets: []int64{1, 2}, FailOffsets: []int64{2, 3},
		}), want{ok: true}, want{code: 11, msg: "offset 2 of qid 0 is in both"}, []string{"0/1", "0/2", "0/3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, mode := range []struct {
				answers string
				want    want
			}{{AnswersStrict, tc.strict}, {AnswersInformative, tc.informative}} {
				session := newHandedOut(map[string][]int64{"0": {1, 2, 3}})
				fake := &fakeConsumer{ackFn: session.ack}
				srv := startConsumerServer(t, Options{Answers: mode.answers}, fake)
				ok, err := tc.call(dialConsumer(t, srv.addr, TransportFramed, ProtocolCompact))
				var pe *consumer.PullException
				switch {
				case mode.want.code == 0 && (err != nil || ok != mode.want.ok):
					t.Errorf("%s: %v, %v; want %v", mode.answers, ok, err, mode.want.ok)
				case mode.want.code != 0 && (!errors.As(err, &pe) || pe.Code != mode.want.code || !strings.Contains(pe.Message, mode.want.msg)):
					t.Errorf("%s: %v, %v; want PullException code %d with %q", mode.answers, ok, err, mode.want.code, mode.want.msg)
				}
				if got := session.appliedOffsets(); !slices.Equal(got, tc.applied) {
					t.Errorf("%s: applied %v, want %v", mode.answers, got, tc.applied)
				}
				if len(fake.commitCalls()) != 0 {
					t.Errorf("%s: committed %+v, want nothing", mode.answers, fake.commitCalls())
				}
			}
		})
	}
}

// TestPullWithStaleAck checks that a pull whose piggybacked result names
// offsets not handed out here still pulls, with the offsets it can
// applied, in both modes: DDMQ's cproxy pulls whatever doSubmit skipped
// (server/ConsumerServiceImpl.java, pull), and its SDK sends the same
// result again after an exception, which would stop the consumer.
func TestPullWithStaleAck(t *testing.T) {
	for _, answers := range []string{AnswersStrict, AnswersInformative} {
		t.Run(answers, func(t *testing.T) {
			session := newHandedOut(map[string][]int64{"0": {1, 2, 3}})
			fake := &fakeConsumer{ackFn: session.ack}
			srv := startConsumerServer(t, Options{Answers: answers}, fake)
			client := dialConsumer(t, srv.addr, TransportFramed, ProtocolCompact)
			req := consumer.NewPullRequest()
			req.GroupId, req.Topic, req.MaxLingerTime = "g", ptr("t"), ptr(int32(0))
			req.Result_ = &consumer.ConsumeResult_{
				Context:        &consumer.Context{GroupId: "g", Topic: "t", Qid: "0"},
				SuccessOffsets: []int64{7, 2},
				FailOffsets:    []int64{3},
				NextResult_: &consumer.ConsumeResult_{
					Context: &consumer.Context{GroupId: "g", Topic: "t", Qid: "4"}, SuccessOffsets: []int64{1},
				},
			}
			if _, err := client.Pull(context.Background(), req); err != nil {
				t.Fatalf("Pull: %v; want a pull", err)
			}
			if got := fake.callOrder(); got[len(got)-1] != "pull" {
				t.Errorf("calls %v, want a pull last", got)
			}
			if got, want := session.appliedOffsets(), []string{"0/2", "0/3"}; !slices.Equal(got, want) {
				t.Errorf("applied %v, want %v", got, want)
			}
		})
	}
}
