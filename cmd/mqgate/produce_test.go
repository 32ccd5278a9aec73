package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/protobuf/proto"

	"github.com/mqgate/mqgate/frontends/http/httppb"
	"github.com/mqgate/mqgate/frontends/thrift/gen-go/producer"
	"github.com/mqgate/mqgate/internal/testport"
)

// externalBroker is a Kafka broker the test controls, standing in for a
// production cluster: no topic auto-creation, and produce requests that can
// be swallowed, as by a broker that stopped answering.
type externalBroker struct {
	cluster *kfake.Cluster
	paused  atomic.Bool
}

func startExternalBroker(t *testing.T, topics ...string) *externalBroker {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	b := &externalBroker{cluster: c}
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		// Handled with no answer: the client waits, as on a hung broker.
		return nil, nil, b.paused.Load()
	})
	return b
}

// startOnExternal runs a gateway whose only cluster is broker, with the
// options o.
func startOnExternal(t *testing.T, broker *testBroker, o options) *gateway {
	t.Helper()
	return startGateway(t, writeConfig(t, t.TempDir(), broker, o))
}

func checkAPIError(t *testing.T, what string, status int, body []byte, wantStatus, wantCode int, wantMsg string) {
	t.Helper()
	var e apiError
	if json.Unmarshal(body, &e) != nil || status != wantStatus || e.Error.Code != wantCode || !strings.Contains(e.Error.Message, wantMsg) {
		t.Fatalf("%s: %d %s; want %d with code %d containing %q", what, status, body, wantStatus, wantCode, wantMsg)
	}
}

func TestProduceRefusals(t *testing.T) {
	forEachBroker(t, func(t *testing.T, kind brokerKind) {
		g := startOnExternal(t, kind.external(t, "orders", "limited"), options{extra: "topics:\n  limited: {rate_limit: 1, burst: 5}\n"})

		g.produceOK("orders", `{"value": "fine"}`)

		status, body := g.produce("nope", `{"value": "x"}`)
		checkAPIError(t, "a topic the cluster does not have", status, body, 404, 14, "nope")

		g.produceOK("limited", `{"messages": [{"value": "1"}, {"value": "2"}, {"value": "3"}, {"value": "4"}, {"value": "5"}]}`)
		// The bucket refills a message a second: however slow this
		// machine, requests sent one after the other soon outrun it.
		accepted := 5
		for {
			var header http.Header
			status, header, body = g.exchange("POST", "/v1/topics/limited/messages", `{"value": "more"}`, nil)
			if status != 200 {
				checkAPIError(t, "past the rate limit", status, body, 429, 15, "topics.limited.rate_limit")
				if ra := header.Get("Retry-After"); ra != "1" {
					t.Errorf("past the rate limit of 1 message/s: Retry-After %q; want 1", ra)
				}
				break
			}
			accepted++
		}
		status, body = g.produce("limited", `{"messages": [{"value": "1"}, {"value": "2"}, {"value": "3"}, {"value": "4"}, {"value": "5"}, {"value": "6"}]}`)
		checkAPIError(t, "larger than the burst", status, body, 429, 15, "burst of 5")

		// Nothing refused was written: "limited" holds exactly what was
		// accepted.
		if got := len(g.read("limited", accepted)); got != accepted {
			t.Fatalf("limited holds %d records, want the %d accepted", got, accepted)
		}
	})
}

// A broker that stops answering turns a sync produce into 504 with code 12
// at the request timeout, not a hang.
func TestProducePausedBrokerTimesOut(t *testing.T) {
	forEachBroker(t, func(t *testing.T, kind brokerKind) {
		broker := kind.external(t, "orders")
		g := startOnExternal(t, broker, options{requestTimeout: "2s"}) // waited out below
		g.produceOK("orders", `{"value": "before"}`)

		broker.pause(true)
		defer broker.pause(false)
		status, body := g.produce("orders", `{"value": "during"}`)
		checkAPIError(t, "a paused broker", status, body, 504, 12, "timed out")
	})
}

// An external Kafka cluster none of whose brokers can be dialed: produce
// answers 503 with code 17 naming the dial error, within the request
// timeout, and /readyz says which cluster cannot reach its brokers and
// why, while /v1/plugins shows the plugin up with that reason.
func TestUnreachableKafkaIs503(t *testing.T) {
	dead := testport.Reserve(t) // dials are refused
	broker := &testBroker{plugin: "kafka", config: fmt.Sprintf("{brokers: [%q]}", dead.Addr), addr: dead.Addr}
	g := startGatewayUnready(t, writeConfig(t, t.TempDir(), broker, options{requestTimeout: "3s"}))

	status, body := g.produce("orders", `{"value": "x"}`)
	dialErr := "dial tcp " + dead.Addr + ": connect: connection refused"
	checkAPIError(t, "produce with every broker down", status, body, 503, 17, "kafka brokers unreachable")
	if !strings.Contains(string(body), dialErr) {
		t.Errorf("the answer does not say why: %s; want it to hold %q", body, dialErr)
	}

	code, body := g.do("GET", "/readyz", "", nil)
	checkAPIError(t, "/readyz", code, body, 503, 17, "brokers unreachable for local: kafka brokers unreachable")
	if !strings.Contains(string(body), dialErr) {
		t.Errorf("/readyz does not say why: %s; want it to hold %q", body, dialErr)
	}
	ps := g.plugins()
	if len(ps) != 1 || ps[0].State != "up" || !strings.Contains(ps[0].BrokerError, "connection refused") {
		t.Fatalf("/v1/plugins = %+v; want the plugin up, with the dial error", ps)
	}
}

// A delayed message already due, to a topic a production cluster does not
// have (it creates none on produce), is answered as a produce would be: 404
// with code 14 naming the topic, not a timeout.
func TestDueDelayToMissingTopicIs404(t *testing.T) {
	forEachBroker(t, func(t *testing.T, kind brokerKind) {
		g := startOnExternal(t, kind.external(t, "orders"), options{delay: true})
		code, body := g.do("POST", "/v1/topics/nope/delayed", `{"value": "now", "delay_ms": 0}`, nil)
		checkAPIError(t, "a due delay to a missing topic", code, body, 404, 14, "nope")
	})
}

// Produce bodies are read into buffers the gateway reuses for later
// bodies once the backend has let go of their messages, Thrift
// sendBatchSync frames too, and a plugin process reads the batches the
// gateway sends it into buffers it reuses the same way. Concurrent
// protobuf and Thrift batches, whose messages are their buffer's own
// bytes on each side until the broker's client has sent them, each come
// back from the broker as they were sent, with the Kafka backend in a
// plugin process and in the gateway's: no buffer was written over while
// its messages were on their way.
func TestConcurrentBatchesKeepTheirBytes(t *testing.T) {
	// With max_batch_messages under a request's 25, each request makes a
	// plugin call of its own, and the calls overlap; with the default,
	// concurrent requests share calls.
	alone := "max_batch_messages: 20"
	for _, tc := range []struct{ name, plugin, producer string }{
		{"plugin process", "", alone},
		{"in process", inProcessKafka, alone},
		{"in process, shared calls", inProcessKafka, ""},
	} {
		for _, front := range []string{"http", "thrift"} {
			t.Run(tc.name+", "+front, func(t *testing.T) {
				dir := t.TempDir()
				g := startGateway(t, writeConfig(t, dir, embeddedKafka(t, dir), options{plugin: tc.plugin, producer: tc.producer}))
				send := sendProtobufBatches(g)
				if front == "thrift" {
					send = sendThriftBatches(t, g)
				}
				sendBatchesAndReadThemBack(t, g, send)
			})
		}
	}
}

// batchSender sends the messages ids (keys; their values are bodyValue)
// in one request, as sender s.
type batchSender func(s int, ids []string) error

// sendBatchesAndReadThemBack sends concurrent batches through g with
// send and reads every message back from the broker, checking each came
// back once and whole.
func sendBatchesAndReadThemBack(t *testing.T, g *gateway, send batchSender) {
	const senders, batches, per = 6, 10, 25
	errs := make(chan error, senders*batches)
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			for b := range batches {
				var ids []string
				for i := range per {
					ids = append(ids, fmt.Sprintf("%d-%d-%d", s, b, i))
				}
				if err := send(s, ids); err != nil {
					errs <- fmt.Errorf("batch %d of sender %d: %w", b, s, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Another body written over a batch's would bring back some
	// messages twice, others never, or a key with another's value.
	seen := map[string]bool{}
	for _, r := range g.read("bodies", senders*batches*per) {
		if r.Value != bodyValue(r.Key) {
			t.Fatalf("message %s came back as %.60q...; want %.60q...", r.Key, r.Value, bodyValue(r.Key))
		}
		if seen[r.Key] {
			t.Fatalf("message %s came back twice", r.Key)
		}
		seen[r.Key] = true
	}
}

// sendProtobufBatches sends batches as protobuf bodies: the messages'
// keys and values are the body's own bytes, as JSON strings without
// escapes are too.
func sendProtobufBatches(g *gateway) batchSender {
	client, url := g.httpURL("/v1/topics/bodies/messages")
	return func(_ int, ids []string) error {
		req := &httppb.ProduceRequest{}
		for _, id := range ids {
			req.Messages = append(req.Messages, &httppb.Message{Key: []byte(id), Value: []byte(bodyValue(id))})
		}
		body, err := proto.Marshal(req)
		if err != nil {
			return err
		}
		resp, err := client.Post(url, "application/x-protobuf", bytes.NewReader(body))
		if err != nil {
			return err
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || strings.Contains(string(out), `"code":1`) { // all 0 (ok)
			return fmt.Errorf("%d %s", resp.StatusCode, out)
		}
		return nil
	}
}

// sendThriftBatches sends batches as DDMQ's sendBatchSync calls, one
// connection per sender: the messages' bodies are the call's frame's own
// bytes.
func sendThriftBatches(t *testing.T, g *gateway) batchSender {
	var clients []*producer.ProducerServiceClient
	for range 6 {
		conf := &thrift.TConfiguration{}
		trans := thrift.NewTFramedTransportConf(thrift.NewTSocketConf(g.thriftAddr, conf), conf)
		if err := trans.Open(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = trans.Close() })
		clients = append(clients, producer.NewProducerServiceClientFactory(trans, thrift.NewTCompactProtocolFactoryConf(conf)))
	}
	return func(s int, ids []string) error {
		var ms []*producer.Message
		for _, id := range ids {
			m := producer.NewMessage()
			m.Topic, m.Key, m.Body = "bodies", id, []byte(bodyValue(id))
			ms = append(ms, m)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		r, err := clients[s].SendBatchSync(ctx, ms)
		if err == nil && r.Code != 0 {
			err = fmt.Errorf("code %d: %s", r.Code, r.Msg)
		}
		return err
	}
}

// bodyValue is a value of about 1 KiB that names its message.
func bodyValue(id string) string { return strings.Repeat(id+";", 1024/(len(id)+1)) }
