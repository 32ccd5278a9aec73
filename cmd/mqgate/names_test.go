package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/mqgate/mqgate/frontends/thrift/gen-go/consumer"
	"github.com/mqgate/mqgate/frontends/thrift/gen-go/producer"
)

// No client route, HTTP or Thrift, reaches the delay tiers, their groups
// or the cancel topic: each is refused with code 13 naming
// delay.topic_prefix. Delays still arrive, their tier workers untouched,
// while a client tries to join a tier's group.
func TestGatewayNamesRefusedOnEveryRoute(t *testing.T) {
	kind := brokerKinds[0]
	dir := t.TempDir()
	g := startGateway(t, writeConfig(t, dir, kind.local(t, dir), options{delay: true}))
	const tier, cancelTopic = "mqgate_delay_1s", "mqgate_delay_cancel"

	// HTTP: every route that names a topic or a group.
	for _, tc := range []struct {
		name, method, path, body string
		header                   map[string]string
	}{
		{"produce a forged cancel", "POST", "/v1/topics/" + cancelTopic + "/messages", `{"key":"later/x","value":"32503680000000"}`, nil},
		{"produce into a tier", "POST", "/v1/topics/" + tier + "/messages?mode=async", `{"value":"x","headers":{"a":"b"}}`, nil},
		{"delay to a tier", "POST", "/v1/topics/" + tier + "/delayed", `{"value":"x","delay_ms":1000}`, nil},
		{"cancel on the cancel topic", "DELETE", "/v1/topics/" + cancelTopic + "/delayed/x", "", nil},
		{"kafka send", "POST", "/v1/kafka/send", `{"topic":"` + cancelTopic + `","payload":"x"}`, nil},
		{"kafka send delayed", "POST", "/v1/kafka/send", `{"topic":"` + tier + `","payload":"x"}`, map[string]string{"x-delay": "1"}},
		{"pull as the tier's group", "POST", "/v1/groups/" + tier + "/topics/" + tier + "/pull", `{"max_messages":10,"max_wait_ms":0}`, nil},
		{"ack", "POST", "/v1/groups/" + tier + "/topics/" + tier + "/ack", `{"qid":"0","success":[0]}`, nil},
		{"stats", "GET", "/v1/groups/" + tier + "/stats", "", nil},
		{"fetch", "POST", "/v1/fetch", `{"offsets":{"` + tier + `":{"0":0}}}`, nil},
		{"commit", "POST", "/v1/commit", `{"group":"` + tier + `","offsets":{"orders":{"0":0}}}`, nil},
		{"batch fetch_new", "GET", "/v1/groups/mine/topics/" + tier + "/batches/fetch_new?batch_size=10", "", nil},
	} {
		status, body := g.do(tc.method, tc.path, tc.body, tc.header)
		checkAPIError(t, tc.name, status, body, 403, 13, "delay.topic_prefix")
	}
	status, body := g.do("POST", "/v1/topics/orders/messages", `{"value":"x","headers":{"mqgate-delay-id":"forged"}}`, nil)
	checkAPIError(t, "a forged delay header", status, body, 400, 11, `"mqgate-delay-id" is reserved`)

	// Thrift ProducerService and ConsumerService.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pt := thrift.NewTFramedTransportConf(thrift.NewTSocketConf(g.thriftAddr, nil), nil)
	ct := thrift.NewTFramedTransportConf(thrift.NewTSocketConf(g.consumerAddr, nil), nil)
	for _, tr := range []thrift.TTransport{pt, ct} {
		if err := tr.Open(); err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
	}
	pf := thrift.NewTCompactProtocolFactoryConf(nil)
	prod := producer.NewProducerServiceClientFactory(pt, pf)
	cons := consumer.NewConsumerServiceClientFactory(ct, pf)
	res, err := prod.SendSync(ctx, &producer.Message{Topic: cancelTopic, Key: "later/x", Value: "32503680000000", PartitionId: -1}, 5000)
	if err != nil || res.Code != 13 || !strings.Contains(res.Msg, "delay.topic_prefix") {
		t.Errorf("sendSync to the cancel topic: %+v, %v; want code 13", res, err)
	}
	res, err = prod.SendBatchSync(ctx, []*producer.Message{{Topic: tier, Value: "x", PartitionId: -1}})
	if err != nil || res.Code != 13 {
		t.Errorf("sendBatchSync to a tier: %+v, %v; want code 13", res, err)
	}
	res, err = prod.SendAsync(ctx, &producer.Message{Topic: "orders", Value: "x", PartitionId: -1, Properties: map[string]string{"mqgate-dlq-attempts": "3"}})
	if err != nil || res.Code != 11 || !strings.Contains(res.Msg, "reserved") {
		t.Errorf("sendAsync with a dead-letter header: %+v, %v; want code 11", res, err)
	}
	id, ts := "x", time.Now().Add(time.Minute).UnixMilli()
	dres, err := prod.SendDelaySync(ctx, &producer.DelayMessage{Topic: cancelTopic, Action: 2, UniqDelayMsgId: &id}, 5000)
	if err != nil || dres.Code != 13 {
		t.Errorf("sendDelaySync cancel on the cancel topic: %+v, %v; want code 13", dres, err)
	}
	dres, err = prod.SendDelaySync(ctx, &producer.DelayMessage{Topic: tier, Action: 1, Timestamp: &ts, Body: []byte("x")}, 5000)
	if err != nil || dres.Code != 13 {
		t.Errorf("sendDelaySync to a tier: %+v, %v; want code 13", dres, err)
	}
	topic, zero := tier, int32(0)
	var pe *consumer.PullException
	if _, err := cons.Pull(ctx, &consumer.PullRequest{GroupId: tier, Topic: &topic, MaxLingerTime: &zero}); !errors.As(err, &pe) || pe.Code != 13 {
		t.Errorf("pull as a tier's group: %v; want code 13", err)
	}
	if _, err := cons.GetConsumeStats(ctx, &consumer.ConsumeStatsRequest{Group: tier, Topic: &topic}); !errors.As(err, &pe) || pe.Code != 13 {
		t.Errorf("getConsumeStats of a tier: %v; want code 13", err)
	}
	if ok, err := cons.Ack(ctx, &consumer.AckResult_{GroupId: tier, Offsets: map[string]map[string]int64{"orders": {"0": 0}}}); err == nil && ok {
		t.Errorf("ack (commit) as a tier's group succeeded")
	}

	// The delay service itself, through the backend, still works.
	status, body = g.do("POST", "/v1/topics/later/delayed", `{"value":"still delivered","delay_ms":1500}`, nil)
	if status != 200 {
		t.Fatalf("POST delayed: %d %s", status, body)
	}
	g.broker.readUntil(t, "later", func(rs []brokerRecord) bool { return valuesOf(rs)["still delivered"] })
}
