package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/mqgate/mqgate/frontends/thrift/gen-go/consumer"
	"github.com/mqgate/mqgate/frontends/thrift/gen-go/producer"
)

// ddmqClients are generated Thrift clients of a gateway's ProducerService
// and ConsumerService, framed and compact as DDMQ's SDKs speak.
type ddmqClients struct {
	prod *producer.ProducerServiceClient
	cons *consumer.ConsumerServiceClient
}

func dialDDMQ(t *testing.T, g *gateway) ddmqClients {
	t.Helper()
	conf := &thrift.TConfiguration{SocketTimeout: 30 * time.Second}
	open := func(addr string) thrift.TTransport {
		tr := thrift.NewTFramedTransportConf(thrift.NewTSocketConf(addr, conf), conf)
		if err := tr.Open(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		return tr
	}
	pf := thrift.NewTCompactProtocolFactoryConf(conf)
	return ddmqClients{
		prod: producer.NewProducerServiceClientFactory(open(g.thriftAddr), pf),
		cons: consumer.NewConsumerServiceClientFactory(open(g.consumerAddr), pf),
	}
}

// endOffsets returns topic's end offset per qid, from the HTTP stats of a
// group that has consumed nothing: how many records each qid holds.
func (g *gateway) endOffsets(topic string) map[string]int64 {
	g.t.Helper()
	code, body := g.do("GET", "/v1/groups/probe/stats?topic="+topic, "", nil)
	var st struct {
		Stats []struct {
			ProduceOffsets map[string]int64 `json:"produce_offsets"`
		} `json:"stats"`
	}
	if code != 200 || json.Unmarshal(body, &st) != nil || len(st.Stats) != 1 {
		g.t.Fatalf("stats of %s: %d %s", topic, code, body)
	}
	return st.Stats[0].ProduceOffsets
}

// readExactly reads every record of topic back with the broker's own
// client, after checking with the broker's end offsets that it holds
// want records, no more.
func (g *gateway) readExactly(topic string, want int) []brokerRecord {
	g.t.Helper()
	var total int64
	for _, end := range g.endOffsets(topic) {
		total += end
	}
	if total != int64(want) {
		g.t.Fatalf("%s holds %d records, want %d", topic, total, want)
	}
	seen := map[[2]int64]bool{} // a reader may deliver a record twice; the broker holds it once
	var out []brokerRecord
	for _, r := range g.read(topic, want) {
		if at := [2]int64{int64(r.Partition), r.Offset}; !seen[at] {
			seen[at] = true
			out = append(out, r)
		}
	}
	return out
}

// DDMQ's answers through the generated clients, on both backends: the
// heartbeat produces nothing; hashId places as DDMQ's pproxy places it,
// hashId % n with 0 on partition 0 and the key not looked at; a
// sendBatchSync with a partition the topic does not have answers OK and
// lands every message once; a submit with an offset never handed out is
// true and applies the others; ack({}) is true.
func TestDDMQAnswersEndToEnd(t *testing.T) {
	forEachBroker(t, func(t *testing.T, kind brokerKind) {
		dir := t.TempDir()
		g := startGateway(t, writeConfig(t, dir, kind.local(t, dir), options{}))
		c := dialDDMQ(t, g)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()

		// server/ProducerAsyncServerImpl.java, sendSync: OK, nothing
		// produced; not even the empty body is looked at.
		hb := producer.NewMessage()
		hb.Topic = "carrera_heartbeat"
		if r, err := c.prod.SendSync(ctx, hb, 5000); err != nil || r.Code != 0 || r.Msg != "OK" {
			t.Fatalf("heartbeat = %+v, %v; want code 0 OK", r, err)
		}
		if n := g.metric("mqgate_produce_batch_records_sum"); n != 0 {
			t.Fatalf("the heartbeat produced %v records", n)
		}

		// producer/RmqSender.java: Math.abs(hashId) % n, the key not
		// looked at; server/ProducerAsyncServerImpl.java: 2^63 % n for
		// hashId -2^63.
		hashIDs := []int64{0, 1, 2, 3, 5, 7, -3, -6, math.MinInt64, math.MaxInt64}
		var hashed []*producer.Message
		for _, h := range hashIDs {
			m := producer.NewMessage()
			m.Topic, m.Key, m.HashId, m.Value = "ddmq-hash", "same-key", h, fmt.Sprint(h)
			hashed = append(hashed, m)
		}
		if r, err := c.prod.SendSync(ctx, hashed[0], 5000); err != nil || r.Code != 0 {
			t.Fatalf("sendSync hashId 0 = %+v, %v", r, err)
		}
		if n := g.metric("mqgate_produce_batch_records_sum"); n < 1 {
			t.Fatalf("%v records produced after a sendSync, want at least 1", n)
		}
		if r, err := c.prod.SendBatchSync(ctx, hashed[1:]); err != nil || r.Code != 0 {
			t.Fatalf("sendBatchSync by hashId = %+v, %v", r, err)
		}
		n := uint64(len(g.endOffsets("ddmq-hash")))
		for _, r := range g.readExactly("ddmq-hash", len(hashIDs)) {
			var h int64
			fmt.Sscan(r.Value, &h)
			abs := uint64(h)
			if h < 0 {
				abs = -abs // two's complement: 2^63 for -2^63
			}
			if want := int32(abs % n); r.Partition != want {
				t.Errorf("hashId %d landed on partition %d of %d, want %d", h, r.Partition, n, want)
			}
		}

		// server/ProducerAsyncServerImpl.java, sendBatchSync, and
		// producer/RmqSender.java: partitionId % n, answered OK.
		var batch []*producer.Message
		for i, p := range []int32{0, 1001, -2, 1} {
			m := producer.NewMessage()
			m.Topic, m.Value, m.PartitionId = "ddmq-batch", fmt.Sprint("b", i), p
			batch = append(batch, m)
		}
		if r, err := c.prod.SendBatchSync(ctx, batch); err != nil || r.Code != 0 || r.Msg != "OK" {
			t.Fatalf("sendBatchSync with partition 1001 = %+v, %v; want code 0 OK", r, err)
		}
		n = uint64(len(g.endOffsets("ddmq-batch")))
		landed := map[string]int32{}
		for _, r := range g.readExactly("ddmq-batch", len(batch)) {
			if _, twice := landed[r.Value]; twice {
				t.Errorf("%s landed twice", r.Value)
			}
			landed[r.Value] = r.Partition
		}
		for v, want := range map[string]int32{"b0": 0, "b1": int32(1001 % n), "b3": 1} {
			if got, ok := landed[v]; !ok || got != want {
				t.Errorf("%s landed on %d (%v), want partition %d of %d", v, got, ok, want, n)
			}
		}

		// server/ConsumerServiceImpl.java, submit and ack: true.
		testDDMQConsumerAnswers(ctx, t, g, c.cons, "ddmq-batch", len(batch))
	})
}

// testDDMQConsumerAnswers consumes the want messages of topic, acking
// each pull's with the next pull and the last ones with a submit that
// adds an offset never handed out, and checks that the submit is true and
// the group's lag falls to zero: what was handed out is applied.
func testDDMQConsumerAnswers(ctx context.Context, t *testing.T, g *gateway, cons *consumer.ConsumerServiceClient, topic string, want int) {
	t.Helper()
	if ok, err := cons.Ack(ctx, &consumer.AckResult_{GroupId: "ddmq-answers"}); err != nil || !ok {
		t.Errorf("ack({}) = %v, %v; want true", ok, err)
	}
	batch, linger := int32(2), int32(500)
	var result *consumer.ConsumeResult_
	for got := 0; got < want; {
		req := &consumer.PullRequest{GroupId: "ddmq-answers", Topic: &topic, MaxBatchSize: &batch, MaxLingerTime: &linger, Result_: result}
		resp, err := cons.Pull(ctx, req)
		if err != nil {
			t.Fatalf("pull: %v", err)
		}
		if len(resp.Messages) == 0 {
			result = nil
			continue
		}
		got += len(resp.Messages)
		var offsets []int64
		for _, m := range resp.Messages {
			offsets = append(offsets, m.Offset)
		}
		result = &consumer.ConsumeResult_{Context: resp.Context, SuccessOffsets: offsets}
	}
	// One offset this gateway never handed out, among those it did.
	result.SuccessOffsets = append(result.SuccessOffsets, 1<<40)
	if ok, err := cons.Submit(ctx, result); err != nil || !ok {
		t.Fatalf("submit with an offset never handed out = %v, %v; want true", ok, err)
	}
	waitFor(t, "the lag of ddmq-answers to reach zero", func() bool {
		stats, err := cons.GetConsumeStats(ctx, &consumer.ConsumeStatsRequest{Group: "ddmq-answers", Topic: &topic})
		if err != nil || len(stats) != 1 {
			return false
		}
		var lag int64
		for qid, end := range stats[0].ProduceOffsets {
			lag += end - stats[0].ConsumeOffsets[qid]
		}
		return lag == 0
	})
}

// With topics.auto_create: false, the gateway takes only the topics listed
// under topics:, as DDMQ's pproxy takes only its white list: any other is
// code 13 (FAIL_TOPIC_NOT_ALLOWED, producer/ProducerPool.java) naming the
// setting, over Thrift and HTTP, and a sendBatchSync holding one is
// refused before any of it is produced.
func TestDDMQTopicAllowlist(t *testing.T) {
	kind := brokerKinds[0]
	dir := t.TempDir()
	g := startGateway(t, writeConfig(t, dir, kind.local(t, dir), options{extra: "topics: {auto_create: false, listed: {}}\n"}))
	c := dialDDMQ(t, g)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	m := func(topic, value string) *producer.Message {
		msg := producer.NewMessage()
		msg.Topic, msg.Value, msg.PartitionId = topic, value, -2
		return msg
	}
	if r, err := c.prod.SendSync(ctx, m("unlisted", "x"), 5000); err != nil || r.Code != 13 || !strings.Contains(r.Msg, "topics.auto_create") {
		t.Errorf("sendSync to an unlisted topic = %+v, %v; want code 13 naming topics.auto_create", r, err)
	}
	if r, err := c.prod.SendAsync(ctx, m("unlisted", "x")); err != nil || r.Code != 13 {
		t.Errorf("sendAsync to an unlisted topic = %+v, %v; want code 13", r, err)
	}
	r, err := c.prod.SendBatchSync(ctx, []*producer.Message{m("listed", "early"), m("unlisted", "x")})
	if err != nil || r.Code != 13 || !strings.Contains(r.Msg, `messages[1]: topic "unlisted" is not allowed`) {
		t.Errorf("sendBatchSync with an unlisted topic = %+v, %v; want code 13 naming messages[1]", r, err)
	}
	status, body := g.produce("unlisted", `{"value":"x"}`)
	checkAPIError(t, "HTTP produce to an unlisted topic", status, body, 403, 13, "topics.auto_create")
	status, body = g.do("POST", "/v1/kafka/send", `{"topic":"unlisted","payload":"x"}`, nil)
	checkAPIError(t, "HTTP kafka/send to an unlisted topic", status, body, 403, 13, "topics.auto_create")

	if r, err := c.prod.SendSync(ctx, m("listed", "ok"), 5000); err != nil || r.Code != 0 {
		t.Fatalf("sendSync to a listed topic = %+v, %v", r, err)
	}
	g.produceOK("listed", `{"value":"http"}`)
	// The refused batch produced nothing: listed holds the two accepted.
	got := valuesOf(g.readExactly("listed", 2))
	if !got["ok"] || !got["http"] {
		t.Errorf("listed holds %v, want ok and http", got)
	}
}
