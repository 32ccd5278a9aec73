package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// An embedded broker at max_topics refuses a new topic with 404, code 14,
// naming the key, and keeps taking records for the topics it has.
func TestMaxTopicsRefusesNewTopics(t *testing.T) {
	dir := t.TempDir()
	b := embeddedKafka(t, dir)
	// Three: the gateway's own mqgate_subscriptions, and two of the test's.
	b.config = fmt.Sprintf("{brokers: embedded, listen: %q, data_dir: %q, max_topics: 3, default_partitions: 1}", anyPort, filepath.Join(dir, "data"))
	g := startGateway(t, writeConfig(t, dir, b, options{}))
	// Answered once the subscriptions topic exists and has been read.
	if code, body := g.do("GET", "/v1/admin/groups/probe/subscriptions", "", nil); code != 200 {
		t.Fatalf("reading subscriptions: %d %s", code, body)
	}
	g.produceOK("first", `{"value": "1"}`)
	g.produceOK("second", `{"value": "2"}`)
	code, body := g.produce("third", `{"value": "3"}`)
	if code != 404 || !strings.Contains(string(body), `"code":14`) || !strings.Contains(string(body), "max_topics (Kafka plugin config) is 3") {
		t.Errorf("producing to a third topic at max_topics 3: %d %s; want 404, code 14, naming max_topics", code, body)
	}
	g.produceOK("first", `{"value": "again"}`)
	if got := g.status("/readyz"); got != 200 {
		t.Errorf("/readyz at max_topics = %d; want 200: the broker is fine", got)
	}
}

// A plugin whose process runs out of file descriptors makes produce 503
// (code 17) naming the cause, never 500, and /readyz 503 with
// /v1/plugins naming it in broker_error.
func TestOutOfDescriptorsIs503(t *testing.T) {
	dir := t.TempDir()
	b := embeddedKafka(t, dir)
	// 1 partition per topic, 2 descriptors each: a limit of 256 runs out
	// after about a hundred topics, before max_topics.
	b.config = fmt.Sprintf("{brokers: embedded, listen: %q, data_dir: %q, max_topics: 1000, default_partitions: 1}", anyPort, filepath.Join(dir, "data"))
	s := writeConfig(t, dir, b, options{})
	s.nofile = 256
	g := startGateway(t, s)
	var code int
	var body []byte
	for i := 0; i < 256; i++ {
		code, body = g.produce(fmt.Sprintf("t%d", i), `{"value": "v"}`)
		if code != 200 {
			t.Logf("topic %d refused: %d %s", i, code, body)
			break
		}
	}
	if code != 503 || !strings.Contains(string(body), `"code":17`) || !strings.Contains(string(body), "too many open files") {
		t.Fatalf("producing to new topics until the plugin runs out of descriptors: last %d %s; want 503, code 17, naming too many open files", code, body)
	}
	if got := g.status("/readyz"); got != 503 {
		t.Errorf("/readyz out of descriptors = %d; want 503", got)
	}
	ps := g.plugins()
	if len(ps) != 1 || ps[0].State != "up" || !strings.Contains(ps[0].BrokerError, "out of file descriptors") {
		t.Errorf("/v1/plugins out of descriptors = %+v; want the plugin up with broker_error naming the shortage", ps)
	}
}
