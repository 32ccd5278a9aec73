package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/golang-jwt/jwt/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mqgate/mqgate/frontends/thrift/gen-go/consumer"
	"github.com/mqgate/mqgate/frontends/thrift/gen-go/producer"
	"github.com/mqgate/mqgate/internal/testjwt"
)

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// jwtIssuer signs ES256 tokens with a key whose JWKS it writes to a file.
type jwtIssuer struct {
	*testjwt.Issuer
	jwks string
}

func newJWTIssuer(t *testing.T, dir string) jwtIssuer {
	t.Helper()
	iss, err := testjwt.New("k1")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(path, iss.JWKS, 0o644); err != nil {
		t.Fatal(err)
	}
	return jwtIssuer{iss, path}
}

func (j jwtIssuer) token(t *testing.T, sub string) string {
	t.Helper()
	s, err := j.Sign(jwt.MapClaims{
		"iss": "https://idp.example", "aud": "mqgate", "sub": sub, "exp": time.Now().Add(time.Hour).Unix(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// authConfig is an auth: and acl: section: API keys for orders-svc and
// ops, JWTs of the issuer, and the network 127.0.0.2 as principal dc.
func authConfig(jwks string) string {
	return fmt.Sprintf(`auth:
  api_keys:
    - {principal: orders-svc, sha256: %q}
    - {principal: ops, sha256: %q}
  jwt: {jwks_file: %q, issuer: "https://idp.example", audience: mqgate}
  networks: [{cidrs: ["127.0.0.2/32"], principal: dc}]
acl:
  - {principal: orders-svc, operations: [produce, produce-delayed, cancel-delay], topics: ["orders*"]}
  - {principal: alice, operations: [consume, commit, read-stats], topics: [orders], groups: ["billing-*"]}
  - {principal: ops, operations: [metrics, read-stats]}
  - {principal: dc, operations: [produce], topics: [orders]}
  - {principal: "*", effect: deny, operations: [produce], topics: [orders-frozen]}
`, sha256Hex("k-orders"), sha256Hex("k-ops"), jwks)
}

// Each way of authenticating is accepted and refused over HTTP, and each
// operation is allowed or refused by the ACL, with 401/18 and 403/13
// naming what was refused; the probes answer anyone.
func TestHTTPAuthAndACL(t *testing.T) {
	forEachBroker(t, func(t *testing.T, kind brokerKind) {
		dir := t.TempDir()
		iss := newJWTIssuer(t, dir)
		g := startGateway(t, writeConfig(t, dir, kind.local(t, dir), options{extra: authConfig(iss.jwks)}))
		bearer := func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }
		orders, ops, alice := bearer("k-orders"), bearer("k-ops"), bearer(iss.token(t, "alice"))
		basic := map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("orders-svc:k-orders"))}
		const msg = `{"value":"v"}`
		for _, c := range []struct {
			name, method, path, body string
			header                   map[string]string
			status, code             int
			names                    string
		}{
			{"no credential", "POST", "/v1/topics/orders/messages", msg, nil, 401, 18, "no credential"},
			{"unknown key", "POST", "/v1/topics/orders/messages", msg, bearer("k-wrong"), 401, 18, "not a known API key"},
			{"forged JWT", "POST", "/v1/topics/orders/messages", msg, bearer(iss.token(t, "alice") + "x"), 401, 18, "JWT refused"},
			{"API key", "POST", "/v1/topics/orders/messages", msg, orders, 200, 0, ""},
			{"Basic", "POST", "/v1/topics/orders-eu/messages", msg, basic, 200, 0, ""},
			{"API key, topic not allowed", "POST", "/v1/topics/payments/messages", msg, orders, 403, 13, `produce on topic "payments"`},
			{"deny wins", "POST", "/v1/topics/orders-frozen/messages", msg, orders, 403, 13, "acl[4] denies produce"},
			{"JWT may consume", "POST", "/v1/groups/billing-eu/topics/orders/pull", `{"max_messages":1,"max_wait_ms":0}`, alice, 200, 0, ""},
			{"JWT, group not allowed", "POST", "/v1/groups/other/topics/orders/pull", `{"max_messages":1,"max_wait_ms":0}`, alice, 403, 13, `consume on topic "orders" as group "other"`},
			{"JWT may not produce", "POST", "/v1/topics/orders/messages", msg, alice, 403, 13, `principal "alice"`},
			{"commit in the body", "POST", "/v1/commit", `{"group":"billing-eu","offsets":{"payments":{"0":0}}}`, alice, 403, 13, `commit on topic "payments"`},
			{"stats", "GET", "/v1/groups/billing-eu/stats", "", ops, 200, 0, ""},
			{"metrics refused", "GET", "/metrics", "", orders, 403, 13, "metrics on the gateway"},
			{"metrics", "GET", "/metrics", "", ops, 200, 0, ""},
			{"plugins refused", "GET", "/v1/plugins", "", nil, 401, 18, ""},
			{"mqproxy send, topic not allowed", "POST", "/v1/kafka/send", `{"topic":"payments","payload":"p"}`, orders, 403, 13, `produce on topic "payments"`},
			{"probe", "GET", "/healthz", "", nil, 200, 0, ""},
		} {
			status, body := g.do(c.method, c.path, c.body, c.header)
			var e apiError
			_ = json.Unmarshal(body, &e)
			if status != c.status || e.Error.Code != c.code || !strings.Contains(e.Error.Message, c.names) {
				t.Errorf("%s: %d %s; want %d, code %d, naming %q", c.name, status, body, c.status, c.code, c.names)
			}
		}
		// A commit is audited when it moves offsets (a group with no
		// session here; RocketMQ's qids name their broker).
		qid := map[string]string{"kafka": "0", "rocketmq": "broker-a:0"}[kind.name]
		if code, body := g.do("POST", "/v1/commit", fmt.Sprintf(`{"group":"billing-idle","offsets":{"orders":{%q:0}}}`, qid), alice); code != 200 {
			t.Errorf("alice's commit of billing-idle on orders: %d %s", code, body)
		}
		if !g.eventuallyLogged("authorization refused") {
			t.Errorf("no audit line for the refusals in the gateway's log")
		}
		if !g.eventuallyLogged(`action="offsets committed" principal=alice method=jwt`) {
			t.Errorf("no audit line for alice's commit in the gateway's log")
		}
	})
}

// A Thrift connection takes its principal from its source network: from
// 127.0.0.2 (dc) a DDMQ client produces to what dc may; from 127.0.0.1,
// which has no principal and no anonymous one, the connection is closed.
func TestThriftAuthByNetwork(t *testing.T) {
	kind := brokerKinds[0]
	dir := t.TempDir()
	iss := newJWTIssuer(t, dir)
	g := startGateway(t, writeConfig(t, dir, kind.local(t, dir), options{extra: authConfig(iss.jwks)}))
	client := func(local string) *producer.ProducerServiceClient {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
		conn, err := d.Dial("tcp", g.thriftAddr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		conf := &thrift.TConfiguration{SocketTimeout: 30 * time.Second}
		trans := thrift.NewTFramedTransportConf(thrift.NewTSocketFromConnConf(conn, conf), conf)
		return producer.NewProducerServiceClientFactory(trans, thrift.NewTCompactProtocolFactoryConf(conf))
	}
	ctx := context.Background()
	dc := client("127.0.0.2")
	res, err := dc.SendSync(ctx, &producer.Message{Topic: "orders", Body: []byte("x")}, 5000)
	if err != nil || res.Code != 0 {
		t.Fatalf("sendSync from dc to orders: %+v, %v; want code 0", res, err)
	}
	res, err = dc.SendSync(ctx, &producer.Message{Topic: "payments", Body: []byte("x")}, 5000)
	if err != nil || res.Code != 13 || !strings.Contains(res.Msg, `produce on topic "payments"`) {
		t.Fatalf("sendSync from dc to payments: %+v, %v; want code 13 naming the operation and topic", res, err)
	}
	if res, err := client("127.0.0.1").SendSync(ctx, &producer.Message{Topic: "orders", Body: []byte("x")}, 5000); err == nil {
		t.Fatalf("an unauthenticated connection was answered: %+v", res)
	}
}

// With auth.thrift_token, a DDMQ client whose connection has no principal
// authenticates each call: a producer by a message property, which never
// reaches the broker, a consumer by a "<token>@" group prefix, which the
// broker never sees. A call without a token, or with one the gate refuses,
// is code 18; one the ACL refuses to the token's principal, 13.
func TestThriftAuthByToken(t *testing.T) {
	kind := brokerKinds[0]
	dir := t.TempDir()
	iss := newJWTIssuer(t, dir)
	extra := strings.Replace(authConfig(iss.jwks), "acl:\n", "  thrift_token: {}\nacl:\n", 1)
	g := startGateway(t, writeConfig(t, dir, kind.local(t, dir), options{extra: extra}))
	alice := iss.token(t, "alice")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	conf := &thrift.TConfiguration{SocketTimeout: 30 * time.Second}
	open := func(addr string) thrift.TTransport {
		t.Helper()
		trans := thrift.NewTFramedTransportConf(thrift.NewTSocketConf(addr, conf), conf)
		if err := trans.Open(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { trans.Close() })
		return trans
	}
	pc := producer.NewProducerServiceClientFactory(open(g.thriftAddr), thrift.NewTCompactProtocolFactoryConf(conf))
	message := func(token string) *producer.Message {
		props := map[string]string{"trace": "t1"}
		if token != "" {
			props["mqgate-token"] = token
		}
		return &producer.Message{Topic: "orders", Key: "k", Body: []byte("with a token"), PartitionId: -1, Properties: props}
	}
	for _, c := range []struct {
		name  string
		token string
		code  int32
		names string
	}{
		{"no token", "", 18, `set the message property "mqgate-token" to an API key or JWT`},
		{"unknown key", "k-wrong", 18, "not a known API key"},
		{"forged JWT", alice + "x", 18, "JWT refused"},
		{"a principal that may not produce", alice, 13, `no acl rule allows produce on topic "orders" to principal "alice"`},
		{"API key", "k-orders", 0, ""},
	} {
		res, err := pc.SendSync(ctx, message(c.token), 5000)
		if err != nil || res.Code != c.code || !strings.Contains(res.Msg, c.names) {
			t.Errorf("%s: %+v, %v; want code %d naming %q", c.name, res, err, c.code, c.names)
		}
	}
	rec := g.read("orders", 1)[0]
	if rec.Value != "with a token" || rec.Headers["trace"] != "t1" {
		t.Errorf("the broker holds %+v; want the message with its trace property", rec)
	}
	for k := range rec.Headers {
		if strings.EqualFold(k, "mqgate-token") {
			t.Errorf("the broker holds the token property: %+v", rec.Headers)
		}
	}

	cc := consumer.NewConsumerServiceClientFactory(open(g.consumerAddr), thrift.NewTCompactProtocolFactoryConf(conf))
	topic, linger := "orders", int32(500)
	pull := func(group string, result *consumer.ConsumeResult_) (*consumer.PullResponse, error) {
		return cc.Pull(ctx, &consumer.PullRequest{GroupId: group, Topic: &topic, MaxLingerTime: &linger, Result_: result})
	}
	for _, c := range []struct {
		name, group string
		code        int32
		names       string
	}{
		{"no token", "billing-eu", 18, `prefix the group name with an API key or JWT and "@"`},
		{"unknown key", "k-wrong@billing-eu", 18, "not a known API key"},
		{"a group the principal may not consume as", alice + "@other", 13, `consume on topic "orders" as group "other"`},
	} {
		_, err := pull(c.group, nil)
		var pe *consumer.PullException
		if !errors.As(err, &pe) || pe.Code != c.code || !strings.Contains(pe.Message, c.names) {
			t.Errorf("pull, %s: %v; want code %d naming %q", c.name, err, c.code, c.names)
		}
	}
	var resp *consumer.PullResponse
	waitFor(t, "alice's pull to get the message", func() bool {
		r, err := pull(alice+"@billing-eu", nil)
		if err != nil {
			t.Fatalf("alice's pull: %v", err)
		}
		resp = r
		return len(r.Messages) > 0
	})
	if string(resp.Messages[0].Value) != "with a token" {
		t.Errorf("pulled %q", resp.Messages[0].Value)
	}
	if resp.Context.GroupId != alice+"@billing-eu" {
		t.Errorf("the context's group is not the group as sent")
	}
	// DDMQ's SDK acks with the context it was given, token and all.
	result := &consumer.ConsumeResult_{Context: resp.Context, SuccessOffsets: []int64{resp.Messages[0].Offset}, FailOffsets: []int64{}}
	if ok, err := cc.Submit(ctx, result); err != nil || !ok {
		t.Fatalf("submit with the context of the pull: %v, %v", ok, err)
	}

	// The broker knows the group by its plain name.
	cl, err := kgo.NewClient(kgo.SeedBrokers(g.broker.latest()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var groups []string
	waitFor(t, "the broker to list group billing-eu", func() bool {
		listed, err := kadm.NewClient(cl).ListGroups(ctx)
		groups = listed.Groups()
		return err == nil && slices.Contains(groups, "billing-eu")
	})
	for _, name := range groups {
		if strings.Contains(name, "@") {
			t.Errorf("the broker has group %q", name)
		}
	}
	if !g.eventuallyLogged(`action="authentication refused"`) {
		t.Errorf("no audit line for the refused tokens")
	}
	if log := g.log.String(); strings.Contains(log, "k-orders") || strings.Contains(log, "k-wrong") || strings.Contains(log, alice) {
		t.Errorf("the gateway's log holds a token")
	}
}
