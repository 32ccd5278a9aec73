package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/mqgate/mqgate/frontends/thrift/gen-go/consumer"
	"github.com/mqgate/mqgate/frontends/thrift/gen-go/producer"
)

// quotaConfig is an auth: and quotas: section: API keys for p1 and p2, the
// network 127.0.0.2 as dc, anyone else as visitor, who has no quota. Each
// of dc, p1 and p2 may produce 1 message a second in bursts of 100: a
// burst spent by one request of 100 comes back only 100 s later, so what
// the tests refuse does not depend on how fast the machine is.
func quotaConfig() string {
	return fmt.Sprintf(`auth:
  api_keys:
    - {principal: p1, sha256: %q}
    - {principal: p2, sha256: %q}
  networks: [{cidrs: ["127.0.0.2/32"], principal: dc}]
  anonymous: {principal: visitor}
quotas:
  - {principal: dc, messages_per_second: 1, burst: 100, max_sessions: 1}
  - {principal: "p*", messages_per_second: 1, burst: 100, max_sessions: 2}
`, sha256Hex("k-1"), sha256Hex("k-2"))
}

// messagesBody is a produce body of n messages.
func messagesBody(n int) string {
	msgs := make([]string, n)
	for i := range msgs {
		msgs[i] = fmt.Sprintf(`{"value":"m%d"}`, i)
	}
	return `{"messages":[` + strings.Join(msgs, ",") + `]}`
}

// Two principals under one quota rule each have their own bucket: p1
// spending its burst is refused with 429, code 15 and a Retry-After, while
// p2 produces as much; a request larger than the burst is 413, code 16.
// Each principal opens at most its max_sessions, by pull or by batch
// fetch, and may pull a session another principal opened.
func TestHTTPQuotaPerPrincipal(t *testing.T) {
	kind := brokerKinds[0]
	dir := t.TempDir()
	g := startGateway(t, writeConfig(t, dir, kind.local(t, dir), options{extra: quotaConfig()}))
	p1 := map[string]string{"Authorization": "Bearer k-1"}
	p2 := map[string]string{"Authorization": "Bearer k-2"}
	const path = "/v1/topics/quota/messages"

	if status, body := g.do("POST", path, messagesBody(100), p1); status != 200 {
		t.Fatalf("p1's burst of 100: %d %s", status, body)
	}
	status, header, body := g.exchange("POST", path, messagesBody(100), p1)
	var e apiError
	_ = json.Unmarshal(body, &e)
	if status != 429 || e.Error.Code != 15 || !strings.Contains(e.Error.Message, `principal "p1" is over its quota of 1 messages/s (quotas[1].messages_per_second)`) {
		t.Errorf("p1's second 100: %d %s; want 429, code 15, naming p1 and quotas[1].messages_per_second", status, body)
	}
	if secs, err := strconv.Atoi(header.Get("Retry-After")); err != nil || secs < 1 || secs > 100 {
		t.Errorf("Retry-After %q; want whole seconds from 1 to 100", header.Get("Retry-After"))
	}
	if status, body := g.do("POST", path, messagesBody(100), p2); status != 200 {
		t.Errorf("p2's burst of 100 while p1 is refused: %d %s; want 200", status, body)
	}
	status, header, body = g.exchange("POST", path, messagesBody(101), p2)
	e = apiError{}
	_ = json.Unmarshal(body, &e)
	if status != 413 || e.Error.Code != 16 || !strings.Contains(e.Error.Message, `101 messages exceed the burst of 100 of principal "p2" (quotas[1].burst)`) || header.Get("Retry-After") != "" {
		t.Errorf("p2's 101 messages: %d %s, Retry-After %q; want 413, code 16 naming quotas[1].burst, no Retry-After", status, body, header.Get("Retry-After"))
	}
	if n := g.metric(`mqgate_quota_refused_total{limit="messages_per_second"}`); n != 1 {
		t.Errorf("mqgate_quota_refused_total{limit=\"messages_per_second\"} = %v; want 1", n)
	}

	pull := func(who map[string]string, group string) (int, []byte) {
		return g.do("POST", "/v1/groups/"+group+"/topics/quota/pull", `{"max_messages":1,"max_wait_ms":0}`, who)
	}
	for _, group := range []string{"g1", "g2"} {
		if status, body := pull(p1, group); status != 200 {
			t.Fatalf("p1's pull of %s within max_sessions: %d %s", group, status, body)
		}
	}
	refused := func(what string, status int, body []byte) {
		t.Helper()
		var e apiError
		_ = json.Unmarshal(body, &e)
		if status != 429 || e.Error.Code != 15 || !strings.Contains(e.Error.Message, `principal "p1" already holds 2 consume sessions, its limit (quotas[1].max_sessions)`) {
			t.Errorf("%s: %d %s; want 429, code 15, naming p1 and quotas[1].max_sessions", what, status, body)
		}
	}
	status, body = pull(p1, "g3")
	refused("p1's third session by pull", status, body)
	status, body = g.do("GET", "/v1/groups/g4/topics/quota/batches/fetch_new?batch_size=1", "", p1)
	refused("p1's third session by batch fetch", status, body)
	if status, body := pull(p2, "g3"); status != 200 {
		t.Fatalf("p2's first session: %d %s", status, body)
	}
	if status, body := pull(p1, "g3"); status != 200 {
		t.Errorf("p1 pulling the session p2 opened: %d %s; want 200, not counted against p1", status, body)
	}
	if n := g.metric(`mqgate_quota_refused_total{limit="max_sessions"}`); n != 2 {
		t.Errorf("mqgate_quota_refused_total{limit=\"max_sessions\"} = %v; want 2", n)
	}
}

// A Thrift connection's principal comes from its network (dc, from
// 127.0.0.2): a sendBatchSync past its quota answers code 15 naming dc and
// the key, and a pull past its max_sessions a PullException with code 15.
func TestThriftQuota(t *testing.T) {
	kind := brokerKinds[0]
	dir := t.TempDir()
	g := startGateway(t, writeConfig(t, dir, kind.local(t, dir), options{extra: quotaConfig()}))
	dialFrom := func(addr string) thrift.TTransport {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
		conn, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		conf := &thrift.TConfiguration{SocketTimeout: 30 * time.Second}
		return thrift.NewTFramedTransportConf(thrift.NewTSocketFromConnConf(conn, conf), conf)
	}
	ctx := context.Background()
	prod := producer.NewProducerServiceClientFactory(dialFrom(g.thriftAddr), thrift.NewTCompactProtocolFactoryConf(nil))
	batch := make([]*producer.Message, 100)
	for i := range batch {
		batch[i] = &producer.Message{Topic: "quota", Body: fmt.Appendf(nil, "m%d", i), PartitionId: -1}
	}
	if res, err := prod.SendBatchSync(ctx, batch); err != nil || res.Code != 0 {
		t.Fatalf("dc's burst of 100: %+v, %v", res, err)
	}
	res, err := prod.SendBatchSync(ctx, batch)
	if err != nil || res.Code != 15 || !strings.Contains(res.Msg, `principal "dc" is over its quota of 1 messages/s (quotas[0].messages_per_second)`) {
		t.Errorf("dc's second 100: %+v, %v; want code 15 naming dc and quotas[0].messages_per_second", res, err)
	}

	cons := consumer.NewConsumerServiceClientFactory(dialFrom(g.consumerAddr), thrift.NewTCompactProtocolFactoryConf(nil))
	topic, max, linger := "quota", int32(1), int32(0)
	if _, err := cons.Pull(ctx, &consumer.PullRequest{GroupId: "t1", Topic: &topic, MaxBatchSize: &max, MaxLingerTime: &linger}); err != nil {
		t.Fatalf("dc's first session: %v", err)
	}
	_, err = cons.Pull(ctx, &consumer.PullRequest{GroupId: "t2", Topic: &topic, MaxBatchSize: &max, MaxLingerTime: &linger})
	pe, ok := err.(*consumer.PullException)
	if !ok || pe.Code != 15 || !strings.Contains(pe.Message, `principal "dc" already holds 1 consume sessions, its limit (quotas[0].max_sessions)`) {
		t.Errorf("dc's second session: %v; want a PullException with code 15 naming dc and quotas[0].max_sessions", err)
	}
}
