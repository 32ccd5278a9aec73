package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mqgate/mqgate/frontends/thrift/gen-go/producer"
	"github.com/mqgate/mqgate/internal/testport"
	"github.com/mqgate/mqgate/plugins/rocketmq/rmqfake"
)

// One gateway in front of a Kafka cluster and a RocketMQ cluster: topics
// route by their topics: entries through both frontends, and each broker's
// own client finds its topic there and only there.
func TestMultiClusterRouting(t *testing.T) {
	dir := t.TempDir()
	fake, err := rmqfake.Start(rmqfake.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fake.Close() })
	if err := fake.CreateTopic("payments", 2); err != nil {
		t.Fatal(err)
	}
	kafka := embeddedKafka(t, dir)
	cfg := fmt.Sprintf(`version: 1
plugins:
  kafka: {builtin: kafka}
  rocketmq: {builtin: rocketmq}
clusters:
  events: {plugin: kafka, config: %s}
  trade: {plugin: rocketmq, config: {nameservers: [%q]}}
default_cluster: events
topics:
  payments: {cluster: trade}
http: {listen: %q}
thrift: {producer_listen: %q, consumer_listen: %q}
producer: {spool_dir: %q}
delay: {enabled: false}
`, kafka.config, fake.Addr(), anyPort, anyPort, anyPort, filepath.Join(dir, "spool"))
	s := &setup{cfgPath: filepath.Join(dir, "plugins.yaml"), broker: kafka}
	if err := os.WriteFile(s.cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, s)

	g.produceOK("orders", `{"key": "o1", "value": "order over http"}`)
	g.produceOK("payments", `{"key": "p1", "value": "payment over http", "tags": "card"}`)

	trans := thrift.NewTFramedTransportConf(thrift.NewTSocketConf(g.thriftAddr, nil), nil)
	if err := trans.Open(); err != nil {
		t.Fatal(err)
	}
	defer trans.Close()
	client := producer.NewProducerServiceClientFactory(trans, thrift.NewTCompactProtocolFactoryConf(nil))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, m := range []struct{ topic, key, value string }{
		{"orders", "o2", "order over thrift"},
		{"payments", "p2", "payment over thrift"},
	} {
		msg := producer.NewMessage()
		msg.Topic, msg.Key, msg.Value = m.topic, m.key, m.value
		if r, err := client.SendSync(ctx, msg, 5000); err != nil || r.Code != 0 {
			t.Fatalf("sendSync to %s = %+v, %v", m.topic, r, err)
		}
	}

	orders := valuesOf(readKafka(t, kafka.addr, "orders", func(rs []brokerRecord) bool { return len(rs) >= 2 }))
	if !orders["order over http"] || !orders["order over thrift"] {
		t.Errorf("franz-go read orders %v", orders)
	}
	payments := readRocketMQ(t, fake, "payments", func(rs []brokerRecord) bool { return len(rs) >= 2 })
	if got := valuesOf(payments); !got["payment over http"] || !got["payment over thrift"] {
		t.Errorf("rocketmq-client-go read payments %v", got)
	}
	for _, p := range payments {
		if p.Value == "payment over http" && (p.Key != "p1" || p.Tags != "card") {
			t.Errorf("the HTTP payment arrived with keys %q, tags %q", p.Key, p.Tags)
		}
	}

	// Each topic exists on its own cluster only.
	if slices.Contains(fake.Topics(), "orders") {
		t.Errorf("RocketMQ has topic orders: %v", fake.Topics())
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafka.addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	topics, err := kadm.NewClient(cl).ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if topics.Has("payments") {
		t.Errorf("Kafka has topic payments: %v", topics.Names())
	}
}

// A RocketMQ name server that is down when the gateway starts leaves the
// gateway up but unready, answering 503 with code 17; once the name server
// comes up the plugin is configured again and produce works.
func TestNameserverDownAtStartup(t *testing.T) {
	dir := t.TempDir()
	ns := testport.Reserve(t) // nothing listens here yet: dials are refused
	broker := &testBroker{plugin: "rocketmq", config: fmt.Sprintf("{nameservers: [%q]}", ns.Addr), addr: ns.Addr}
	s := writeConfig(t, dir, broker, options{})

	g := startGatewayUnready(t, s)
	if code := g.status("/readyz"); code != 503 {
		t.Fatalf("/readyz = %d with the name server down; want 503", code)
	}
	code, body := g.produce("orders", `{"value": "too early"}`)
	checkAPIError(t, "produce with the name server down", code, body, 503, 17, "rocketmq name servers unreachable")

	fake, err := rmqfake.Start(rmqfake.Options{Listener: ns.Listen(), AutoCreateTopics: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fake.Close() })
	waitFor(t, "the gateway to become ready", func() bool { return g.status("/readyz") == 200 })
	g.produceOK("orders", `{"value": "on time"}`)
	if got := valuesOf(readRocketMQ(t, fake, "orders", func(rs []brokerRecord) bool { return len(rs) >= 1 })); !got["on time"] {
		t.Fatalf("read back %v", got)
	}
}

// A RocketMQ cluster without name servers stops the gateway at start-up
// with the file, line and key.
func TestRocketMQConfigErrorNamesKey(t *testing.T) {
	dir := t.TempDir()
	s := writeConfig(t, dir, &testBroker{plugin: "rocketmq", config: "{nameservers: []}"}, options{})
	out, err := exec.Command(mqgateBin, "serve", "-c", s.cfgPath).CombinedOutput()
	if err == nil {
		t.Fatal("the gateway started with a RocketMQ cluster without name servers")
	}
	if want := s.cfgPath + ":7: clusters.local.config.nameservers: required"; !strings.Contains(string(out), want) {
		t.Fatalf("output lacks %q:\n%s", want, out)
	}
}
