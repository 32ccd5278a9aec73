package rocketmq

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-client-go/v2"
	rmqerrors "github.com/apache/rocketmq-client-go/v2/errors"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"

	"github.com/mqgate/mqgate/plugins/rocketmq/internal/remoting"
	"github.com/mqgate/mqgate/plugins/rocketmq/rmqfake"
	"github.com/mqgate/mqgate/sdk"
)

func TestParseConfigErrors(t *testing.T) {
	for _, tc := range []struct{ config, key, msg string }{
		{`{}`, "nameservers", "required"},
		{`{"nameservers": []}`, "nameservers", "required"},
		{`{"nameservers": "127.0.0.1:9876"}`, "nameservers", "want a []string"},
		{`{"nameservers": ["localhost"]}`, "nameservers.0", "host:port"},
		{`{"nameservers": ["a:1", ":9876"]}`, "nameservers.1", "missing host"},
		{`{"nameservers": ["a:1"], "brokers": ["x"]}`, "brokers", "unknown key"},
		{`{"nameservers": ["a:1"], "access_key": "ak"}`, "secret_key", "set both"},
		{`{"nameservers": ["a:1"], "secret_key": "sk"}`, "access_key", "set both"},
		{`{"nameservers": ["a:1"], "send_timeout": "soon"}`, "send_timeout", "duration"},
		{`{"nameservers": ["a:1"], "send_timeout": "-1s"}`, "send_timeout", "positive"},
		{`{"nameservers": ["a:1"], "retries": -1}`, "retries", "0 or more"},
		{`{"nameservers": ["a:1"], "default_queues": 0}`, "default_queues", "1..1024"},
		{`{"nameservers": ["a:1"], "producer_group": ""}`, "producer_group", "empty"},
		{`[]`, "", "JSON object"},
	} {
		_, err := parseConfig([]byte(tc.config))
		ce, ok := errors.AsType[*sdk.ConfigError](err)
		if !ok || ce.Key != tc.key || !strings.Contains(ce.Msg, tc.msg) {
			t.Errorf("%s: got %v; want a ConfigError on key %q containing %q", tc.config, err, tc.key, tc.msg)
		}
	}
	cfg, err := parseConfig([]byte(`{"nameservers": ["10.0.0.1:9876", "10.0.0.2:9876"], "namespace": "prod", "retries": 0}`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.retries != 0 || cfg.defaultQueues != defaultQueues || cfg.sendTimeout != defaultSendTimeout || len(cfg.nameservers) != 2 {
		t.Errorf("defaults not applied as documented: %+v", cfg)
	}
}

// Every mistake of a config is reported at once, each naming its key and
// what is wanted.
func TestParseConfigReportsEveryProblem(t *testing.T) {
	for _, tc := range []struct {
		name   string
		config string
		// want holds "key: text the message contains", in order.
		want []string
	}{
		{"misspelt nameservers and more", `{"nameserver": ["127.0.0.1:9876"], "send_timeout": "10", "retries": -1, "access_key": "ak"}`, []string{
			"nameserver: unknown key; did you mean nameservers?",
			`nameservers: required; want a list of "host:port"`,
			"secret_key: access_key and secret_key go together",
			`send_timeout: want a duration like "168h" or "30s", got "10"`,
			"retries: must be 0 or more, got -1",
		}},
		{"every name server checked", `{"nameservers": ["a", "b:1", ":9876"], "default_queues": 2000, "producer_group": ""}`, []string{
			`nameservers.0: want host:port, got "a"`,
			`nameservers.2: missing host in ":9876"`,
			"default_queues: must be 1..1024, got 2000",
			"producer_group: must not be empty",
		}},
		{"wrong types are reported once", `{"nameservers": "127.0.0.1:9876", "retries": "2", "secret_key": 1, "access_key": "ak"}`, []string{
			"nameservers: want a []string, got a JSON string",
			"retries: want a int, got a JSON string",
			"secret_key: want a string, got a JSON number",
		}},
		{"valid", `{"nameservers": ["127.0.0.1:9876"], "send_timeout": "3s", "retries": 0}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errs := parseConfig([]byte(tc.config))
			if len(errs) != len(tc.want) {
				t.Fatalf("parseConfig(%s) = %v; want %d problems %q", tc.config, errs, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				key, text, _ := strings.Cut(w, ": ")
				if errs[i].Key != key || !strings.Contains(errs[i].Msg, text) {
					t.Errorf("problem %d = %s: %s; want %s: ...%s...", i, errs[i].Key, errs[i].Msg, key, text)
				}
			}
			// ValidateConfig is what mqgate check asks; it must say the same.
			if got := New(nil).ValidateConfig([]byte(tc.config)); len(got) != len(errs) {
				t.Errorf("ValidateConfig = %v; parseConfig = %v", got, errs)
			}
		})
	}
}

func TestNamespaceWrap(t *testing.T) {
	cfg := config{namespace: "prod"}
	for _, tc := range []struct{ name, wrapped string }{
		{"orders", "prod%orders"},
		{"%RETRY%g1", "%RETRY%prod%g1"},
		{"%DLQ%g1", "%DLQ%prod%g1"},
	} {
		if got := cfg.wrap(tc.name); got != tc.wrapped {
			t.Errorf("wrap(%q) = %q; want %q", tc.name, got, tc.wrapped)
		}
		if got := cfg.unwrap(tc.wrapped); got != tc.name {
			t.Errorf("unwrap(%q) = %q; want %q", tc.wrapped, got, tc.name)
		}
	}
	if got := (config{}).wrap("orders"); got != "orders" {
		t.Errorf("no namespace: wrap gave %q", got)
	}
}

// Java name servers write broker ids as bare integer keys.
func TestParseRouteJavaKeys(t *testing.T) {
	body := `{"orderTopicConf":null,"queueDatas":[{"brokerName":"broker-b","readQueueNums":2,"writeQueueNums":2,"perm":6,"topicSysFlag":0},` +
		`{"brokerName":"broker-a","readQueueNums":2,"writeQueueNums":1,"perm":6,"topicSysFlag":0}],` +
		`"brokerDatas":[{"cluster":"c","brokerName":"broker-a","brokerAddrs":{0:"10.0.0.1:10911",1:"10.0.0.2:10911"}},` +
		`{"cluster":"c","brokerName":"broker-b","brokerAddrs":{ 0 : "10.0.0.3:10911"}}],"filterServerTable":{}}`
	r, err := parseRoute([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if r.addrs["broker-a"] != "10.0.0.1:10911" || r.addrs["broker-b"] != "10.0.0.3:10911" {
		t.Errorf("masters %v", r.addrs)
	}
	var read, write []string
	for _, q := range r.read {
		read = append(read, q.qid())
	}
	for _, q := range r.write {
		write = append(write, q.qid())
	}
	if fmt.Sprint(read) != "[broker-a:0 broker-a:1 broker-b:0 broker-b:1]" || fmt.Sprint(write) != "[broker-a:0 broker-b:0 broker-b:1]" {
		t.Errorf("read %v write %v", read, write)
	}
	if p := r.partition(queue{"broker-b", 0}); p != 2 {
		t.Errorf("broker-b:0 is partition %d; want 2", p)
	}
	// String contents that look like integer keys are left alone.
	if got := string(quoteIntKeys([]byte(`{"a":"{1:2,3:4}",5:"x"}`))); got != `{"a":"{1:2,3:4}","5":"x"}` {
		t.Errorf("quoteIntKeys: %s", got)
	}
}

func TestParseQid(t *testing.T) {
	q, err := parseQid("broker:with:colons:7")
	if err != nil || q.broker != "broker:with:colons" || q.id != 7 || q.qid() != "broker:with:colons:7" {
		t.Errorf("parseQid: %+v %v", q, err)
	}
	for _, bad := range []string{"", "3", ":3", "b:", "b:-1", "b:x"} {
		if _, err := parseQid(bad); err == nil {
			t.Errorf("parseQid(%q) accepted", bad)
		}
	}
}

// The allocation must match RocketMQ's AllocateMessageQueueAveragely, so
// mqgate members and Java or Go clients in one group agree.
func TestAllocateAveragely(t *testing.T) {
	qs := func(n int) []queue {
		var out []queue
		for i := range n {
			out = append(out, queue{"b", i})
		}
		return out
	}
	ids := func(got []queue) []int {
		var out []int
		for _, q := range got {
			out = append(out, q.id)
		}
		return out
	}
	for _, tc := range []struct {
		queues  int
		members []string
		want    map[string][]int
	}{
		{4, []string{"a"}, map[string][]int{"a": {0, 1, 2, 3}}},
		{4, []string{"a", "b"}, map[string][]int{"a": {0, 1}, "b": {2, 3}}},
		{5, []string{"a", "b"}, map[string][]int{"a": {0, 1, 2}, "b": {3, 4}}},
		{8, []string{"a", "b", "c"}, map[string][]int{"a": {0, 1, 2}, "b": {3, 4, 5}, "c": {6, 7}}},
		{2, []string{"a", "b", "c"}, map[string][]int{"a": {0}, "b": {1}, "c": nil}},
	} {
		seen := map[int]bool{}
		for _, m := range tc.members {
			got := ids(allocateAveragely(qs(tc.queues), tc.members, m))
			if !slices.Equal(got, tc.want[m]) {
				t.Errorf("%d queues, members %v: %s gets %v; want %v", tc.queues, tc.members, m, got, tc.want[m])
			}
			for _, q := range got {
				if seen[q] {
					t.Errorf("%d queues, members %v: queue %d allocated twice", tc.queues, tc.members, q)
				}
				seen[q] = true
			}
		}
		if len(seen) != tc.queues {
			t.Errorf("%d queues, members %v: %d allocated", tc.queues, tc.members, len(seen))
		}
	}
	if got := allocateAveragely(qs(4), []string{"a"}, "z"); got != nil {
		t.Errorf("a non-member got %v", got)
	}
}

// Records become messages and back: keys and headers a property cannot
// hold travel encoded and return exactly.
func TestMessageConversion(t *testing.T) {
	bin := []byte{0, 1, 2, 0xff}
	r := &route{read: []queue{{"b", 0}, {"b", 1}}}
	for _, tc := range []struct {
		name string
		in   sdk.Record
		// plain reports whether the key and headers are plain properties.
		plain bool
	}{
		{"text", sdk.Record{Key: []byte("order-1"), Value: []byte("v"), Tags: "t1",
			Headers: []sdk.Header{{Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("x y")}}}, true},
		{"no key", sdk.Record{Value: []byte("v")}, true},
		{"empty key", sdk.Record{Key: []byte{}, Value: []byte("v")}, false},
		{"binary key", sdk.Record{Key: bin, Value: []byte("v")}, false},
		{"repeated header", sdk.Record{Value: []byte("v"), Headers: []sdk.Header{{Key: "a", Value: []byte("1")}, {Key: "a", Value: []byte("2")}}}, false},
		{"binary header", sdk.Record{Value: []byte("v"), Headers: []sdk.Header{{Key: "a", Value: bin}}}, false},
		{"reserved header", sdk.Record{Value: []byte("v"), Headers: []sdk.Header{{Key: "KEYS", Value: []byte("k")}}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := toMessage("topic", &tc.in)
			_, encodedKey := m.GetProperties()[propKey]
			_, encodedHeaders := m.GetProperties()[propHeaders]
			if tc.plain == (encodedKey || encodedHeaders) {
				t.Errorf("properties %v; plain=%v", m.GetProperties(), tc.plain)
			}
			ext := &primitive.MessageExt{QueueOffset: 7}
			ext.Topic, ext.Body = m.Topic, m.Body
			ext.WithProperties(m.GetProperties())
			ext.Queue = &primitive.MessageQueue{BrokerName: "b", QueueId: 1}
			got := toRecord(ext, "topic", r)
			if got.Qid != "b:1" || got.Partition != 1 || got.Offset != 7 || string(got.Value) != "v" || got.Tags != tc.in.Tags {
				t.Errorf("position or content: %+v", got)
			}
			if (got.Key == nil) != (tc.in.Key == nil) || string(got.Key) != string(tc.in.Key) {
				t.Errorf("key %q; want %q", got.Key, tc.in.Key)
			}
			if fmt.Sprint(got.Headers) != fmt.Sprint(tc.in.Headers) {
				t.Errorf("headers %v; want %v", got.Headers, tc.in.Headers)
			}
		})
	}
}

// The plugin's own requests are signed as rocketmq-client-go signs its
// requests, so ACL-enabled brokers accept both: a request the library's
// producer sends, captured on the wire, gets the same signature from sign.
func TestSignMatchesClient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	prod, err := rmq.NewProducer(
		producer.WithNsResolver(primitive.NewPassthroughResolver([]string{ln.Addr().String()})),
		producer.WithInstanceName("sign-test"),
		producer.WithRetry(0),
		producer.WithCredentials(primitive.Credentials{AccessKey: "ak-1", SecretKey: "sk-secret"}),
	)
	if err != nil {
		t.Fatal(err)
	}
	if err := prod.Start(); err != nil {
		t.Fatal(err)
	}
	defer prod.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go prod.SendSync(ctx, primitive.NewMessage("signed-topic", []byte("x"))) // fails: nobody answers

	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	got, err := remoting.ReadCommand(bufio.NewReader(nc), remoting.MaxFrame)
	if err != nil {
		t.Fatal(err)
	}
	if got.ExtFields["AccessKey"] != "ak-1" || got.ExtFields["Signature"] == "" {
		t.Fatalf("the client sent no credentials: %+v", got.ExtFields)
	}
	mine := remoting.NewRequest(got.Code, map[string]string{}, got.Body)
	for k, v := range got.ExtFields {
		if k != "Signature" && k != "AccessKey" {
			mine.ExtFields[k] = v
		}
	}
	(&pool{cfg: config{accessKey: "ak-1", secretKey: "sk-secret"}}).sign(mine)
	if mine.ExtFields["Signature"] != got.ExtFields["Signature"] || mine.ExtFields["AccessKey"] != "ak-1" {
		t.Fatalf("signature %q; rocketmq-client-go signed the same request %q (fields %v)",
			mine.ExtFields["Signature"], got.ExtFields["Signature"], got.ExtFields)
	}
}

// A topic whose brokers take no writes (drained for maintenance, or no
// master up) is a passing condition: code 17, so that sync produce and
// the spool send again rather than refuse for good.
func TestNoWritableQueueIsRetriable(t *testing.T) {
	_, err := pickQueue(&sdk.Record{Topic: "t", Partition: sdk.PartitionRandom}, &route{})
	if sdk.CodeOf(err) != sdk.CodeUnavailable || !strings.Contains(err.Error(), "no writable queue") {
		t.Fatalf("pickQueue with no writable queue = %v (code %d); want code 17", err, sdk.CodeOf(err))
	}
}

// A send the broker did not answer in time is a timeout (12) whichever of
// the client's own timer and the context fired first: both mean the same
// to the caller.
func TestSendTimeoutIsTimeout(t *testing.T) {
	for _, err := range []error{rmqerrors.ErrRequestTimeout, context.DeadlineExceeded, fmt.Errorf("send: %w", rmqerrors.ErrRequestTimeout)} {
		if got := sendError(err, "orders", queue{"broker-a", 0}); sdk.CodeOf(got) != sdk.CodeTimeout {
			t.Errorf("sendError(%v) = %v (code %d); want code 12", err, got, sdk.CodeOf(got))
		}
	}
}

// failingSend is a producer whose every send fails with err.
type failingSend struct{ err error }

func (f failingSend) SendSync(context.Context, ...*primitive.Message) (*primitive.SendResult, error) {
	return nil, f.err
}

// A send rocketmq-client-go fails for want of a route it has not loaded
// yet, to a topic the name server has, passes: code 17, so the gateway
// sends again (concurrent first sends of a new process race in the
// client's route cache). A broker that says the topic is gone is code 14.
func TestSendBeforeTheClientHasTheRoute(t *testing.T) {
	f := startFake(t, rmqfake.Options{})
	b := newBackend(t, fmt.Sprintf(`{"nameservers": [%q]}`, f.Addr()))
	ctx := context.Background()
	if err := b.EnsureTopics(ctx, []sdk.TopicSpec{{Name: "routed", Partitions: 1}}); err != nil {
		t.Fatal(err)
	}
	_, _, rs, err := b.state()
	if err != nil {
		t.Fatal(err)
	}
	rt, err := rs.get(ctx, "routed", false)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		err  error
		want sdk.Code
	}{
		{"no broker address yet", errors.New("topic=routed route info not found"), sdk.CodeUnavailable},
		{"no queues yet", errors.New("the topic=routed route info not found"), sdk.CodeUnavailable},
		{"the broker has no such topic", errors.New("CODE: 17  DESC: topic[routed] not exist, apply first please!"), sdk.CodeTopicNotExist},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs := []sdk.Record{{Topic: "routed", Value: []byte("v")}}
			res := make([]sdk.ProduceResult, 1)
			b.sendBatch(ctx, failingSend{tc.err}, rs, "routed", rt.write[0], rt, recs, []int{0}, res)
			if sdk.CodeOf(res[0].Err) != tc.want {
				t.Errorf("a send failing with %q: %v (code %d); want code %d", tc.err, res[0].Err, sdk.CodeOf(res[0].Err), tc.want)
			}
		})
	}
}
