package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/mqgate/mqgate/frontends/thrift/gen-go/producer"
)

// startThriftGateway runs a gateway on a local broker of kind whose
// ProducerService speaks transport and protocol, and returns it with a
// connected generated client.
func startThriftGateway(t *testing.T, kind brokerKind, transport, protocol string) (*gateway, *producer.ProducerServiceClient) {
	t.Helper()
	dir := t.TempDir()
	g := startGateway(t, writeConfig(t, dir, kind.local(t, dir), options{thrift: "transport: " + transport + ", protocol: " + protocol, delay: true}))
	thriftAddr := g.thriftAddr

	conf := &thrift.TConfiguration{}
	var trans thrift.TTransport = thrift.NewTSocketConf(thriftAddr, conf)
	if transport == "framed" {
		trans = thrift.NewTFramedTransportConf(trans, conf)
	} else {
		trans = thrift.NewTBufferedTransport(trans, 8192)
	}
	if err := trans.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = trans.Close() })
	var pf thrift.TProtocolFactory = thrift.NewTCompactProtocolFactoryConf(conf)
	if protocol == "binary" {
		pf = thrift.NewTBinaryProtocolFactoryConf(conf)
	}
	return g, producer.NewProducerServiceClientFactory(trans, pf)
}

// A DDMQ client's messages, through every method, over both wire setups,
// read back from the broker by a plain Kafka client.
func TestThriftProducerServiceEndToEnd(t *testing.T) {
	forEachBroker(t, func(t *testing.T, kind brokerKind) {
		for _, wire := range []struct{ transport, protocol string }{{"framed", "compact"}, {"buffered", "binary"}} {
			t.Run(wire.transport+"+"+wire.protocol, func(t *testing.T) { testThriftProducer(t, kind, wire.transport, wire.protocol) })
		}
	})
}

func testThriftProducer(t *testing.T, kind brokerKind, transport, protocol string) {
	g, client := startThriftGateway(t, kind, transport, protocol)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	body := make([]byte, 256)
	for i := range body {
		body[i] = byte(i)
	}
	m := producer.NewMessage()
	m.Topic, m.Key, m.Body, m.Tags = "ddmq", "order-1", body, "paid"
	m.Properties = map[string]string{"trace": "abc", "来源": "app"}
	r, err := client.SendSync(ctx, m, 5000)
	if err != nil || r.Code != 0 || r.Key == nil || *r.Key != "order-1" {
		t.Fatalf("sendSync = %+v, %v; want code 0 echoing the key", r, err)
	}

	var batch []*producer.Message
	for i := range 3 {
		bm := producer.NewMessage()
		bm.Topic, bm.Value = "ddmq", fmt.Sprintf("batch-%d", i)
		batch = append(batch, bm)
	}
	if r, err := client.SendBatchSync(ctx, batch); err != nil || r.Code != 0 {
		t.Fatalf("sendBatchSync = %+v, %v", r, err)
	}

	am := producer.NewMessage()
	am.Topic, am.Value = "ddmq", "spooled"
	if r, err := client.SendAsync(ctx, am); err != nil || r.Code != 0 {
		t.Fatalf("sendAsync = %+v, %v; want code 0 once spooled", r, err)
	}

	dm := producer.NewDelayMessage()
	due := time.Now().Add(1500 * time.Millisecond).UnixMilli()
	dm.Topic, dm.Body, dm.Tags, dm.Action, dm.Timestamp, dm.Dmsgtype = "ddmq", []byte("later"), "delayed", 1, &due, thrift.Int32Ptr(2)
	dr, err := client.SendDelaySync(ctx, dm, 5000)
	if err != nil || dr.Code != 0 || dr.UniqDelayMsgId == "" {
		t.Fatalf("sendDelaySync = %+v, %v; want code 0 and an id", dr, err)
	}

	bad := producer.NewMessage()
	bad.Topic, bad.Value = "", "x"
	if r, err := client.SendSync(ctx, bad, 5000); err != nil || r.Code != 11 {
		t.Fatalf("sendSync with an empty topic = %+v, %v; want code 11", r, err)
	}

	recs := g.read("ddmq", 6) // with the one the spool forwards and the delayed one
	got := map[string]bool{}
	for _, rec := range recs {
		got[rec.Value] = true
		if rec.Key != "order-1" {
			continue
		}
		if rec.Value != string(body) {
			t.Fatalf("the binary body arrived as %x", rec.Value)
		}
		if rec.Headers["trace"] != "abc" || rec.Headers["来源"] != "app" || rec.Tags != "paid" {
			t.Fatalf("properties arrived as %v, tags as %q", rec.Headers, rec.Tags)
		}
	}
	for _, rec := range recs {
		if rec.Value == "later" && (rec.Key != dr.UniqDelayMsgId || rec.Headers["from_chronos"] != "from_chronos" ||
			rec.Headers["mqgate-delay-id"] != dr.UniqDelayMsgId || rec.Headers["mqgate-delay-due-ms"] != fmt.Sprint(due) || rec.Tags != "delayed") {
			t.Fatalf("the delayed message arrived as %+v; want key and delay id %s, from_chronos, due %d, tags delayed", rec, dr.UniqDelayMsgId, due)
		}
	}
	for _, v := range []string{"batch-0", "batch-1", "batch-2", "spooled", "later"} {
		if !got[v] {
			t.Fatalf("%s is missing; read %d records", v, len(recs))
		}
	}
}
