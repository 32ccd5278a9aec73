package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mqgate/mqgate/core/delay"
	"github.com/mqgate/mqgate/frontends/thrift/gen-go/producer"
	"github.com/mqgate/mqgate/plugins/rocketmq/rmqfake"
)

// do sends a JSON body and returns the status and body.
func (g *gateway) do(method, path, body string, header map[string]string) (int, []byte) {
	g.t.Helper()
	status, _, b := g.exchange(method, path, body, header)
	return status, b
}

// exchange is do returning the answer's headers too.
func (g *gateway) exchange(method, path, body string, header map[string]string) (int, http.Header, []byte) {
	g.t.Helper()
	req, err := http.NewRequest(method, "http://"+g.httpAddr+path, strings.NewReader(body))
	if err != nil {
		g.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// Delayed messages through HTTP and mqproxy's x-delay arrive, read back
// with the broker's own client, carrying their delay id; a cancelled one
// does not.
func TestDelayedMessagesEndToEnd(t *testing.T) {
	forEachBroker(t, func(t *testing.T, kind brokerKind) {
		dir := t.TempDir()
		g := startGateway(t, writeConfig(t, dir, kind.local(t, dir), options{delay: true}))
		code, body := g.do("POST", "/v1/topics/later/delayed", `{"key":"k1","value":"in a second and a half","delay_ms":1500,"headers":{"h":"v"}}`, nil)
		var added struct {
			ID          string `json:"id"`
			DeliverAtMs int64  `json:"deliver_at_ms"`
		}
		if code != 200 || json.Unmarshal(body, &added) != nil || added.ID == "" {
			t.Fatalf("POST delayed: %d %s", code, body)
		}
		code, body = g.do("POST", "/v1/topics/later/delayed", `{"id":"never","value":"cancelled","delay_ms":4000}`, nil)
		if code != 200 {
			t.Fatalf("POST delayed: %d %s", code, body)
		}
		code, body = g.do("DELETE", "/v1/topics/later/delayed/never", "", nil)
		if code != 200 || !strings.Contains(string(body), `"cancelled":true`) {
			t.Fatalf("DELETE delayed: %d %s", code, body)
		}
		code, body = g.do("POST", "/v1/kafka/send", `{"topic":"later","payload":"mqproxy, a second later","headers":{"content":"goods"}}`, map[string]string{"x-delay": "1"})
		if code != 200 || !strings.Contains(string(body), `"code":0`) {
			t.Fatalf("kafka/send with x-delay: %d %s", code, body)
		}
		code, body = g.do("POST", "/v1/topics/later/delayed", `{"value":"x","delay_ms":-5}`, nil)
		checkAPIError(t, "a negative delay", code, body, 400, 11, "delay_ms")

		// A sentinel due after the cancelled one: once it is in, the
		// cancelled one would have been too.
		g.do("POST", "/v1/topics/later/delayed", `{"value":"sentinel","delay_ms":5000}`, nil)
		got := g.broker.readUntil(t, "later", func(rs []brokerRecord) bool {
			return valuesOf(rs)["sentinel"] && len(rs) >= 3
		})
		vals := map[string]brokerRecord{}
		for _, r := range got {
			if _, dup := vals[r.Value]; dup {
				t.Errorf("%q delivered twice", r.Value)
			}
			vals[r.Value] = r
		}
		if _, ok := vals["cancelled"]; ok {
			t.Fatal("a cancelled message was delivered")
		}
		r, ok := vals["in a second and a half"]
		if !ok || r.Key != "k1" || r.Headers["h"] != "v" || r.Headers["mqgate-delay-id"] != added.ID ||
			r.Headers["mqgate-delay-due-ms"] != fmt.Sprint(added.DeliverAtMs) {
			t.Fatalf("the HTTP delayed message arrived as %+v; want key k1, header h, delay id %s, due %d", r, added.ID, added.DeliverAtMs)
		}
		m, ok := vals["mqproxy, a second later"]
		if !ok || m.Headers["content"] != "goods" || m.Headers["x-delay"] != "" {
			t.Fatalf("the x-delay message arrived as %+v; want header content and no x-delay", m)
		}
	})
}

// A gateway killed with pending delayed messages loses none of them: a new
// gateway on the same broker delivers them all.
func TestKilledGatewayKeepsPendingDelays(t *testing.T) {
	forEachBroker(t, func(t *testing.T, kind brokerKind) {
		dir := t.TempDir()
		broker := kind.local(t, dir)
		if kind.name == "rocketmq" {
			// The killed gateway's tier workers hold queue locks that must
			// expire before the new gateway's may take the queues: 60 s on
			// a default broker, which with a loaded machine's start-up ran
			// past the reader's guard.
			broker = startRocketMQ(t, rmqfake.Options{AutoCreateTopics: true, LockLifetime: 2 * time.Second})
		}
		s := writeConfig(t, dir, broker, options{delay: true})
		g := startGateway(t, s)
		var msgs []string
		for i := range 30 {
			msgs = append(msgs, fmt.Sprintf(`{"value":"d%02d","delay_ms":%d}`, i, 1000+100*i))
		}
		code, body := g.do("POST", "/v1/topics/pending/delayed", `{"messages":[`+strings.Join(msgs, ",")+`]}`, nil)
		var added struct {
			Results []struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"results"`
		}
		if code != 200 || json.Unmarshal(body, &added) != nil || len(added.Results) != 30 {
			t.Fatalf("POST delayed batch: %d %s", code, body)
		}
		for i, r := range added.Results {
			if r.Code != 0 {
				t.Fatalf("POST delayed batch: d%02d refused with code %d: %s", i, r.Code, r.Message)
			}
		}
		g.kill9()

		g2 := startGateway(t, s)
		got := g2.broker.readUntil(t, "pending", func(rs []brokerRecord) bool {
			v := valuesOf(rs)
			for i := range 30 {
				if !v[fmt.Sprintf("d%02d", i)] {
					return false
				}
			}
			return true
		})
		t.Logf("%d deliveries of 30 messages after a kill -9", len(got))
	})
}

// Two gateway processes on one broker share the tiers and deliver each
// delayed message once, whichever gateway took it.
func TestTwoGatewaysShareDelays(t *testing.T) {
	forEachBroker(t, func(t *testing.T, kind brokerKind) {
		dir := t.TempDir()
		broker := kind.local(t, dir)
		a := startGateway(t, writeConfig(t, dir, broker, options{delay: true}))
		// The second gateway reaches the same broker as an external one.
		other := *broker
		if other.plugin == "kafka" {
			other.config = fmt.Sprintf("{brokers: [%q]}", broker.addr)
			other.embedded = false
		}
		dirB := t.TempDir()
		b := startGateway(t, writeConfig(t, dirB, &other, options{delay: true}))
		const n = 40
		for i := range n {
			g := a
			if i%2 == 1 {
				g = b
			}
			code, body := g.do("POST", "/v1/topics/shared/delayed", fmt.Sprintf(`{"value":"m%02d","delay_ms":%d}`, i, 1000+50*i), nil)
			if code != 200 {
				t.Fatalf("POST delayed to gateway %d: %d %s", i%2, code, body)
			}
		}
		// A sentinel due after all of them: once it is in, every message
		// and any duplicate of one would be too.
		a.do("POST", "/v1/topics/shared/delayed", `{"value":"sentinel","delay_ms":5000}`, nil)
		got := a.broker.readUntil(t, "shared", func(rs []brokerRecord) bool { return valuesOf(rs)["sentinel"] && len(rs) > n })
		seen := map[string]int{}
		for _, r := range got {
			seen[r.Value]++
		}
		for i := range n {
			if v := fmt.Sprintf("m%02d", i); seen[v] != 1 {
				t.Errorf("%s delivered %d times", v, seen[v])
			}
		}
	})
}

// A DDMQ client's delay messages through Thrift arrive as DDMQ's Chronos
// delivers them, read back with the broker's own client: keyed by their
// uniqDelayMsgId, with from_chronos set. A consumer that cancels a loop
// with the key of the firing it received stops the loop's firings still
// to come.
func TestThriftChronosDelaysEndToEnd(t *testing.T) {
	forEachBroker(t, func(t *testing.T, kind brokerKind) {
		g, client := startThriftGateway(t, kind, "framed", "compact")
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		send := func(m *producer.DelayMessage) string {
			t.Helper()
			r, err := client.SendDelaySync(ctx, m, 5000)
			if err != nil || r.Code != 0 {
				t.Fatalf("sendDelaySync of %q = %+v, %v; want code 0", m.Body, r, err)
			}
			return r.UniqDelayMsgId
		}
		add := func(body string, at time.Time, typ int32) *producer.DelayMessage {
			m := producer.NewDelayMessage()
			ts := at.UnixMilli() // mqgate's milliseconds, for a short test
			m.Topic, m.Action, m.Timestamp, m.Dmsgtype, m.Body = "chronos", 1, &ts, &typ, []byte(body)
			return m
		}
		start := time.Now()
		once := add("once", start.Add(1500*time.Millisecond), 2)
		once.Properties = map[string]string{"trace": "t-1", "from_chronos": "the client's"}
		onceID := send(once)
		// A loop firing at +1 s and +9 s: the key of its first firing
		// cancels it before its second.
		loop := add("loop", start.Add(time.Second), 3)
		interval, times, expire := int64(8000), int64(2), start.Add(time.Minute).UnixMilli()
		loop.Interval, loop.Times, loop.Expire = &interval, &times, &expire
		loopID := send(loop)
		for _, id := range []string{onceID, loopID} {
			if _, err := delay.ParseChronosID(id); err != nil {
				t.Fatalf("sendDelaySync answered id %q: %v", id, err)
			}
		}

		rs := g.broker.readUntil(t, "chronos", func(rs []brokerRecord) bool { return valuesOf(rs)["loop"] })
		var fired brokerRecord
		for _, r := range rs {
			if r.Value == "loop" {
				fired = r
			}
		}
		c := producer.NewDelayMessage()
		c.Topic, c.Action, c.UniqDelayMsgId = "chronos", 2, &fired.Key
		if id := send(c); id != fired.Key {
			t.Fatalf("the cancel answered id %q; want the key %q echoed", id, fired.Key)
		}
		// Due after the loop's second firing would be: once it is in, that
		// firing would be too.
		send(add("sentinel", start.Add(11*time.Second), 2))

		rs = g.broker.readUntil(t, "chronos", func(rs []brokerRecord) bool { return valuesOf(rs)["sentinel"] && valuesOf(rs)["once"] })
		got := map[string][]brokerRecord{}
		for _, r := range rs {
			got[r.Value] = append(got[r.Value], r)
		}
		for _, tc := range []struct{ value, id string }{{"once", onceID}, {"loop", loopID}} {
			rs := got[tc.value]
			if len(rs) != 1 {
				t.Fatalf("%q delivered %d times; want once (the loop cancelled after its first firing)", tc.value, len(rs))
			}
			r := rs[0]
			if r.Key != tc.id || r.Headers["from_chronos"] != "from_chronos" || r.Headers["mqgate-delay-id"] != tc.id {
				t.Errorf("%q delivered as %+v; want key and mqgate-delay-id %s, from_chronos=from_chronos", tc.value, r, tc.id)
			}
		}
		if h := got["once"][0].Headers; h["trace"] != "t-1" {
			t.Errorf("the delay's properties arrived as %v; want trace t-1", h)
		}
		// An id not in Chronos's format is refused with DDMQ's code 30
		// (FAIL_ILLEGAL_UNIQ_DELAY_MSG_ID in its ProxySendResult.java).
		bad := "order-42"
		c.UniqDelayMsgId = &bad
		if r, err := client.SendDelaySync(ctx, c, 5000); err != nil || r.Code != 30 || r.UniqDelayMsgId != bad {
			t.Errorf("a cancel of %q = %+v, %v; want code 30 echoing the id", bad, r, err)
		}
	})
}
