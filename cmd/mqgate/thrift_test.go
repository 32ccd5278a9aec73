package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/mqgate/mqgate/frontends/thrift/gen-go/producer"
)

// startThriftGateway runs a gateway whose ProducerService speaks transport
// and protocol, and returns it with a connected generated client.
func startThriftGateway(t *testing.T, transport, protocol string) (*gateway, *producer.ProducerServiceClient) {
	t.Helper()
	dir := t.TempDir()
	httpAddr, kafkaAddr, thriftAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	cfg := fmt.Sprintf(`version: 1
plugins: {kafka: {builtin: kafka}}
clusters:
  local: {plugin: kafka, config: {brokers: embedded, listen: %q, data_dir: %q}}
default_cluster: local
http: {listen: %q}
thrift: {producer_listen: %q, consumer_listen: %q, transport: %s, protocol: %s}
producer: {spool_dir: %q}
`, kafkaAddr, filepath.Join(dir, "data"), httpAddr, thriftAddr, freeAddr(t), transport, protocol, filepath.Join(dir, "spool"))
	path := filepath.Join(dir, "plugins.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, path, httpAddr, kafkaAddr)

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
	for _, wire := range []struct{ transport, protocol string }{{"framed", "compact"}, {"buffered", "binary"}} {
		t.Run(wire.transport+"+"+wire.protocol, func(t *testing.T) {
			g, client := startThriftGateway(t, wire.transport, wire.protocol)
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
			dm.Topic, dm.Body, dm.Action = "ddmq", []byte("later"), 1
			if r, err := client.SendDelaySync(ctx, dm, 5000); err != nil || r.Code != 11 {
				t.Fatalf("sendDelaySync = %+v, %v; want code 11 until delay messages land", r, err)
			}

			bad := producer.NewMessage()
			bad.Topic, bad.Value = "", "x"
			if r, err := client.SendSync(ctx, bad, 5000); err != nil || r.Code != 11 {
				t.Fatalf("sendSync with an empty topic = %+v, %v; want code 11", r, err)
			}

			recs := readAll(t, g.kafka, "ddmq", 5) // with the one the spool forwards
			got := map[string]bool{}
			for _, rec := range recs {
				got[string(rec.Value)] = true
				if string(rec.Key) != "order-1" {
					continue
				}
				if string(rec.Value) != string(body) {
					t.Fatalf("the binary body arrived as %x", rec.Value)
				}
				headers := map[string]string{}
				for _, h := range rec.Headers {
					headers[h.Key] = string(h.Value)
				}
				if headers["trace"] != "abc" || headers["来源"] != "app" || headers["tags"] != "paid" {
					t.Fatalf("properties and tags arrived as headers %v", headers)
				}
			}
			for _, v := range []string{"batch-0", "batch-1", "batch-2", "spooled"} {
				if !got[v] {
					t.Fatalf("%s is missing; read %d records", v, len(recs))
				}
			}
		})
	}
}
