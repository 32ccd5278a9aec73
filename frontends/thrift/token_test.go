package thriftapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mqgate/mqgate/core/auth"
	"github.com/mqgate/mqgate/core/config"
	"github.com/mqgate/mqgate/core/consume"
	"github.com/mqgate/mqgate/frontends/thrift/gen-go/consumer"
	"github.com/mqgate/mqgate/frontends/thrift/gen-go/producer"
	"github.com/mqgate/mqgate/internal/syncbuf"
	"github.com/mqgate/mqgate/sdk"
)

var testCarrier = &CallToken{Property: "mqgate-token", GroupSeparator: "@"}

// A producer call's token is taken out of its messages' properties, in
// any case; every message must carry the same one, or none.
func TestCallTokenProperty(t *testing.T) {
	for _, tc := range []struct {
		name  string
		props []map[string]string
		token string
		err   string // "": accepted
	}{
		{"none", []map[string]string{{"a": "1"}}, "", ""},
		{"nil properties", []map[string]string{nil}, "", ""},
		{"one", []map[string]string{{"a": "1", "mqgate-token": "k"}}, "k", ""},
		{"any case", []map[string]string{{"MQGate-Token": "k"}}, "k", ""},
		{"same in every message", []map[string]string{{"mqgate-token": "k"}, {"mqgate-token": "k", "b": "2"}}, "k", ""},
		{"empty", []map[string]string{{"mqgate-token": ""}}, "", `m[0].properties["mqgate-token"]: empty; set an API key or JWT, or leave the property out`},
		{"twice in two cases", []map[string]string{{"mqgate-token": "k", "Mqgate-Token": "k"}}, "", `m[0].properties["mqgate-token"]: given more than once`},
		{"another token", []map[string]string{{"mqgate-token": "k"}, {"mqgate-token": "j"}}, "",
			`m[1].properties["mqgate-token"]: carries another token than m[0].properties["mqgate-token"]; every field of one call must carry the same token`},
		{"one without", []map[string]string{{"mqgate-token": "k"}, {}}, "", `m[1].properties["mqgate-token"]: carries no token while m[0]`},
		{"only a later one", []map[string]string{{}, {"mqgate-token": "k"}}, "", `m[1].properties["mqgate-token"]: carries a token while m[0]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ct := &callToken{carrier: testCarrier}
			var err error
			for i, p := range tc.props {
				if err = ct.property("m["+string(rune('0'+i))+"].properties", p); err != nil {
					break
				}
			}
			if tc.err != "" {
				if sdk.CodeOf(err) != sdk.CodeIllegal || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v; want code 11 with %q", err, tc.err)
				}
				if strings.Contains(err.Error(), `"k"`) || strings.Contains(err.Error(), `"j"`) {
					t.Fatalf("the error holds a token: %v", err)
				}
				return
			}
			if err != nil || ct.token != tc.token {
				t.Fatalf("token %q, %v; want %q", ct.token, err, tc.token)
			}
			for _, p := range tc.props {
				for k := range p {
					if strings.EqualFold(k, "mqgate-token") {
						t.Errorf("the property %q is still there: %v", k, p)
					}
				}
			}
		})
	}
	// Off, the property is a property like any other.
	props := map[string]string{"mqgate-token": "k"}
	ct := &callToken{}
	if err := ct.property("message.properties", props); err != nil || ct.token != "" || props["mqgate-token"] != "k" {
		t.Errorf("without a carrier: %q, %v, %v", ct.token, err, props)
	}
}

// A consumer call's token is the prefix of its group names, up to the last
// separator; the rest must be a group name.
func TestCallTokenGroup(t *testing.T) {
	for _, tc := range []struct {
		name         string
		groups       []string
		group, token string
		err          string
	}{
		{"plain", []string{"billing"}, "billing", "", ""},
		{"token", []string{"k@billing"}, "billing", "k", ""},
		{"a token holding the separator", []string{"k@ey@billing"}, "billing", "k@ey", ""},
		{"a JWT", []string{"eyJh.eyJz.c2ln@billing"}, "billing", "eyJh.eyJz.c2ln", ""},
		{"separator only", []string{"@"}, "", "", `g0: nothing before "@"`},
		{"empty token", []string{"@billing"}, "", "", `g0: nothing before "@"; send "<API key or JWT>@<group>", or the group alone`},
		{"empty group", []string{"k@"}, "", "", "g0: must not be empty"},
		{"bad group", []string{"k@a b"}, "", "", "g0: character ' ' at byte 1 is not allowed"},
		{"empty", []string{""}, "", "", "g0: must not be empty"},
		{"same token twice", []string{"k@a", "k@b"}, "a", "k", ""},
		{"another token", []string{"k@a", "j@a"}, "", "", "g1: carries another token than g0"},
		{"token then none", []string{"k@a", "a"}, "", "", "g1: carries no token while g0 does"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ct := &callToken{carrier: testCarrier, inGroups: true}
			var group string
			var err error
			for i, g := range tc.groups {
				var got string
				if got, err = ct.group("g"+string(rune('0'+i)), g); err != nil {
					break
				}
				if i == 0 {
					group = got
				}
			}
			if tc.err != "" {
				if sdk.CodeOf(err) != sdk.CodeIllegal || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v; want code 11 with %q", err, tc.err)
				}
				return
			}
			if err != nil || group != tc.group || ct.token != tc.token {
				t.Fatalf("group %q token %q, %v; want %q, %q", group, ct.token, err, tc.group, tc.token)
			}
			if want := map[bool]string{true: tc.token + "@", false: ""}[tc.token != ""]; ct.prefix() != want {
				t.Errorf("prefix %q; want %q", ct.prefix(), want)
			}
		})
	}
	// Off, a group is checked as it is.
	if _, err := (&callToken{}).group("g", "k@billing"); sdk.CodeOf(err) != sdk.CodeIllegal {
		t.Errorf("without a carrier, k@billing: %v; want code 11", err)
	}
}

// FuzzCallToken feeds arbitrary group names and properties to the token
// parsers: a group taken apart puts back together as it came, holds no
// separator and is a valid name; a token is never empty, nor in an error;
// the property is never left behind.
func FuzzCallToken(f *testing.F) {
	for _, s := range [][3]string{
		{"k@billing", "mqgate-token", "k"}, {"@", "MQGATE-TOKEN", ""}, {"a@b@c", "x", "y"},
		{"@g", "mqgate-token", strings.Repeat("k", 20000)}, {"k@", "Mqgate-token", "v"}, {"plain", "", ""},
	} {
		f.Add(s[0], s[1], s[2], "@")
	}
	f.Add("k::g", "mqgate-token", "k", "::")
	f.Fuzz(func(t *testing.T, name, key, value, sep string) {
		if sep == "" || !strings.ContainsFunc(sep, func(r rune) bool { return checkGroup("g", string(r)) != nil }) {
			return // config refuses such a separator
		}
		carrier := &CallToken{Property: "mqgate-token", GroupSeparator: sep}
		token, group, found := splitGroup(name, sep)
		if found && token+sep+group != name || !found && (group != name || token != "") {
			t.Fatalf("splitGroup(%q, %q) = %q, %q, %v", name, sep, token, group, found)
		}
		ct := &callToken{carrier: carrier, inGroups: true}
		if g, err := ct.group("g", name); err == nil {
			if checkGroup("g", g) != nil || strings.Contains(g, sep) || found && ct.token == "" || ct.prefix()+g != name {
				t.Fatalf("group(%q) = %q with token %q", name, g, ct.token)
			}
		} else if sdk.CodeOf(err) != sdk.CodeIllegal {
			t.Fatalf("group(%q): %v", name, err)
		} else if found && token != "" {
			// The error is the same for any token: it never holds one.
			other := strings.Repeat("x", len(token)) + sep + group
			if _, err2 := (&callToken{carrier: carrier, inGroups: true}).group("g", other); err2 == nil || err2.Error() != err.Error() {
				t.Fatalf("group(%q): %v, but group(%q): %v", name, err, other, err2)
			}
		}

		props := map[string]string{key: value, "other": value}
		ct = &callToken{carrier: carrier}
		err := ct.property("message.properties", props)
		for k := range props {
			if strings.EqualFold(k, carrier.Property) {
				t.Fatalf("property %q left in %v", k, props)
			}
		}
		switch {
		case err != nil:
			if sdk.CodeOf(err) != sdk.CodeIllegal {
				t.Fatalf("property: %v", err)
			}
		case strings.EqualFold(key, carrier.Property):
			if ct.token != value || value == "" {
				t.Fatalf("property %q=%q taken as token %q", key, value, ct.token)
			}
		case ct.token != "":
			t.Fatalf("no property %q, but token %q", carrier.Property, ct.token)
		}
	})
}

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// tokenGate is a gate with the API keys k-orders (orders-svc, may produce
// to orders and consume it as billing) and k-ops (ops, may do nothing),
// logging to a buffer.
func tokenGate(t *testing.T, networks ...*config.Network) (*auth.Gate, *syncbuf.Buffer) {
	t.Helper()
	log := &syncbuf.Buffer{}
	g, err := auth.New(context.Background(), &config.Config{
		Auth: &config.Auth{
			APIKeys: []*config.APIKey{
				{Principal: "orders-svc", SHA256: sha256Hex("k-orders")},
				{Principal: "ops", SHA256: sha256Hex("k-ops")},
			},
			Networks: networks,
		},
		ACL: []*config.ACLRule{
			{Principal: "orders-svc", Effect: "allow", Operations: []string{"produce", "produce-delayed"}, Topics: []string{"orders"}},
			{Principal: "orders-svc", Effect: "allow", Operations: []string{"consume", "commit", "read-stats"}, Topics: []string{"orders"}, Groups: []string{"billing"}},
			{Principal: "lan", Effect: "allow", Operations: []string{"produce"}, Topics: []string{"public"}},
		},
	}, slog.New(slog.NewTextHandler(log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return g, log
}

// Over the wire, with auth.thrift_token on: a connection with no
// principal of its own stays open, and each producer call is its token's;
// the token never reaches the producer.
func TestProducerCallToken(t *testing.T) {
	gate, log := tokenGate(t)
	p := &fakeProducer{}
	srv := startServer(t, Options{Gate: gate, Token: testCarrier}, p)
	c := dial(t, srv.addr, TransportFramed, ProtocolCompact)
	ctx := context.Background()
	withToken := func(topic, token string) *producer.Message {
		m := newMessage(topic, "k", "v")
		m.Properties = map[string]string{"trace": "t1", "mqgate-token": token}
		return m
	}
	for _, tc := range []struct {
		name string
		send func() (*producer.Result_, error)
		code int32
		msg  string
	}{
		{"sendSync", func() (*producer.Result_, error) { return c.SendSync(ctx, withToken("orders", "k-orders"), 1000) }, 0, ""},
		{"sendAsync", func() (*producer.Result_, error) { return c.SendAsync(ctx, withToken("orders", "k-orders")) }, 0, ""},
		{"sendBatchSync", func() (*producer.Result_, error) {
			return c.SendBatchSync(ctx, []*producer.Message{withToken("orders", "k-orders"), withToken("orders", "k-orders")})
		}, 0, ""},
		{"no token", func() (*producer.Result_, error) { return c.SendSync(ctx, newMessage("orders", "k", "v"), 1000) },
			18, `unauthenticated: no credential: set the message property "mqgate-token" to an API key or JWT (this gateway accepts API keys)`},
		{"unknown token", func() (*producer.Result_, error) { return c.SendSync(ctx, withToken("orders", "k-wrong"), 1000) },
			18, "not a known API key"},
		{"token over the limit", func() (*producer.Result_, error) {
			return c.SendSync(ctx, withToken("orders", strings.Repeat("k", 16<<10+1)), 1000)
		}, 18, "token of 16385 bytes is over the limit of 16384"},
		{"empty token", func() (*producer.Result_, error) { return c.SendSync(ctx, withToken("orders", ""), 1000) },
			11, `message.properties["mqgate-token"]: empty`},
		{"not allowed", func() (*producer.Result_, error) { return c.SendSync(ctx, withToken("orders", "k-ops"), 1000) },
			13, `principal "ops"`},
		{"tokens differ in a batch", func() (*producer.Result_, error) {
			return c.SendBatchSync(ctx, []*producer.Message{withToken("orders", "k-orders"), withToken("orders", "k-ops")})
		}, 11, `messages[1].properties["mqgate-token"]: carries another token than messages[0]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := tc.send()
			if err != nil || res.Code != tc.code || !strings.Contains(res.Msg, tc.msg) {
				t.Fatalf("%+v, %v; want code %d with %q", res, err, tc.code, tc.msg)
			}
		})
	}
	calls := p.takeCalls()
	if len(calls) != 3 {
		t.Fatalf("%d produce calls; want the 3 that were allowed", len(calls))
	}
	for _, call := range calls {
		for _, m := range call.msgs {
			if len(m.Headers) != 1 || m.Headers[0].Key != "trace" {
				t.Errorf("headers %v reached the producer; want trace alone", m.Headers)
			}
		}
	}
	// The connection is still in step after the refusals.
	if res, err := c.SendSync(ctx, withToken("orders", "k-orders"), 1000); err != nil || res.Code != 0 {
		t.Fatalf("after the refusals: %+v, %v", res, err)
	}
	text := log.String()
	if !strings.Contains(text, `action="authentication refused"`) || !strings.Contains(text, `no credential: set the message property`) {
		t.Errorf("refusals not audited:\n%s", text)
	}
	if strings.Contains(text, "k-orders") || strings.Contains(text, "k-wrong") {
		t.Errorf("the log holds a token:\n%s", text)
	}
}

// sendDelaySync carries its token in the delay message's properties, which
// the Delayer (and so the tier topics) never sees.
func TestDelayCallToken(t *testing.T) {
	gate, _ := tokenGate(t)
	fd := &fakeDelayer{}
	srv := startServer(t, Options{Gate: gate, Token: testCarrier, Delayer: fd}, &fakeProducer{})
	c := dial(t, srv.addr, TransportFramed, ProtocolCompact)
	ctx := context.Background()
	m := newDelayMessage("orders", time.Now().Add(time.Minute).UnixMilli(), "b")
	m.Properties = map[string]string{"Mqgate-Token": "k-orders", "trace": "t1"}
	if res, err := c.SendDelaySync(ctx, m, 1000); err != nil || res.Code != 0 {
		t.Fatalf("with a token: %+v, %v", res, err)
	}
	adds, _ := fd.calls()
	if len(adds) != 1 || len(adds[0].msgs[0].Msg.Headers) != 1 || adds[0].msgs[0].Msg.Headers[0].Key != "trace" {
		t.Fatalf("the Delayer got %+v; want the message with its trace header alone", adds)
	}
	cancel := producer.NewDelayMessage()
	cancel.Topic, cancel.Action, cancel.UniqDelayMsgId = "orders", delayActionCancel, ptr("id-1")
	res, err := c.SendDelaySync(ctx, cancel, 1000)
	if err != nil || res.Code != 18 || res.UniqDelayMsgId != "id-1" || !strings.Contains(res.Msg, `set the message property "mqgate-token"`) {
		t.Fatalf("a cancel without a token: %+v, %v; want code 18 echoing the id", res, err)
	}
}

// A connection with a principal of its own (a network's) makes the calls
// that carry no token; a call's token names its principal instead.
func TestCallTokenOverridesNetwork(t *testing.T) {
	gate, _ := tokenGate(t, &config.Network{CIDRs: []string{"127.0.0.0/8"}, Principal: "lan"})
	srv := startServer(t, Options{Gate: gate, Token: testCarrier}, &fakeProducer{})
	c := dial(t, srv.addr, TransportFramed, ProtocolCompact)
	ctx := context.Background()
	if res, err := c.SendSync(ctx, newMessage("public", "k", "v"), 1000); err != nil || res.Code != 0 {
		t.Fatalf("lan to public: %+v, %v", res, err)
	}
	m := newMessage("public", "k", "v")
	m.Properties = map[string]string{"mqgate-token": "k-orders"}
	if res, err := c.SendSync(ctx, m, 1000); err != nil || res.Code != 13 || !strings.Contains(res.Msg, `principal "orders-svc"`) {
		t.Fatalf("orders-svc's token to public: %+v, %v; want code 13 for orders-svc", res, err)
	}
	m = newMessage("public", "k", "v")
	m.Properties = map[string]string{"mqgate-token": "k-wrong"}
	if res, err := c.SendSync(ctx, m, 1000); err != nil || res.Code != 18 {
		t.Fatalf("a wrong token from a trusted network: %+v, %v; want code 18", res, err)
	}
}

// Consumer calls carry their token in their group names: the consumer sees
// the plain group, and pull's context echoes the token so that the SDK's
// acks carry it back.
func TestConsumerCallToken(t *testing.T) {
	gate, _ := tokenGate(t)
	fc := &fakeConsumer{pull: func(ctx context.Context, group, topic string, max int, wait time.Duration) (consume.Batch, error) {
		return consume.Batch{Qid: "0", Messages: []consume.Message{{Offset: 5, Value: []byte("v")}}}, nil
	}}
	srv := startConsumerServer(t, Options{Gate: gate, Token: testCarrier}, fc)
	c := dialConsumer(t, srv.addr, TransportFramed, ProtocolCompact)
	ctx := context.Background()
	topic := "orders"
	resp, err := c.Pull(ctx, &consumer.PullRequest{GroupId: "k-orders@billing", Topic: &topic})
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	if got := fc.pullCalls(); len(got) != 1 || got[0].group != "billing" {
		t.Fatalf("the consumer was asked %+v; want group billing", got)
	}
	if resp.Context.GroupId != "k-orders@billing" {
		t.Errorf("context group %q; want the group as sent", resp.Context.GroupId)
	}
	result := &consumer.ConsumeResult_{Context: resp.Context, SuccessOffsets: []int64{5}}
	if ok, err := c.Submit(ctx, result); err != nil || !ok {
		t.Fatalf("submit with the echoed context: %v, %v", ok, err)
	}
	if got := fc.ackCalls(); len(got) != 1 || got[0][0].Group != "billing" {
		t.Fatalf("acks %+v; want group billing", got)
	}
	if ok, err := c.Ack(ctx, &consumer.AckResult_{GroupId: "k-orders@billing", Offsets: map[string]map[string]int64{"orders": {"0": 6}}}); err != nil || !ok {
		t.Fatalf("ack: %v, %v", ok, err)
	}
	if got := fc.commitCalls(); len(got) != 1 || got[0].group != "billing" {
		t.Fatalf("commits %+v; want group billing", got)
	}
	if _, err := c.GetConsumeStats(ctx, &consumer.ConsumeStatsRequest{Group: "k-orders@billing", Topic: &topic}); err != nil {
		t.Fatalf("getConsumeStats: %v", err)
	}
	fr, err := c.Fetch(ctx, &consumer.FetchRequest{GroupId: "k-orders@billing", FetchOffset: map[string]map[string]int64{"orders": {"0": 0}}})
	if err != nil || fr.GetCode() != 0 {
		t.Fatalf("fetch: %+v, %v", fr, err)
	}
	for _, tc := range []struct {
		name string
		req  *consumer.PullRequest
		code int32
		msg  string
	}{
		{"no token", &consumer.PullRequest{GroupId: "billing", Topic: &topic}, 18,
			`no credential: prefix the group name with an API key or JWT and "@" ("<token>@<group>")`},
		{"wrong token", &consumer.PullRequest{GroupId: "k-wrong@billing", Topic: &topic}, 18, "not a known API key"},
		{"not allowed", &consumer.PullRequest{GroupId: "k-ops@billing", Topic: &topic}, 13, `principal "ops"`},
		{"separator only", &consumer.PullRequest{GroupId: "@billing", Topic: &topic}, 11, `request.groupId: nothing before "@"`},
		{"the ack carries another token", &consumer.PullRequest{GroupId: "k-orders@billing", Topic: &topic, Result_: &consumer.ConsumeResult_{
			Context: &consumer.Context{GroupId: "k-ops@billing", Topic: topic, Qid: "0"}, SuccessOffsets: []int64{6},
		}}, 11, "request.result.context.groupId: carries another token than request.groupId"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Pull(ctx, tc.req)
			var pe *consumer.PullException
			if !errors.As(err, &pe) || pe.Code != tc.code || !strings.Contains(pe.Message, tc.msg) {
				t.Fatalf("%v; want code %d with %q", err, tc.code, tc.msg)
			}
		})
	}
	if ok, err := c.Ack(ctx, &consumer.AckResult_{GroupId: "billing", Offsets: map[string]map[string]int64{"orders": {"0": 6}}}); err != nil || ok {
		t.Fatalf("ack without a token: %v, %v; want false", ok, err)
	}
}
