package push

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mqgate/mqgate/core/config"
	"github.com/mqgate/mqgate/core/consume"
	"github.com/mqgate/mqgate/sdk"
)

// ddmqConfig is a push entry with envelope ddmq and CProxy's defaults,
// as plugins.yaml gives them, changed by edit.
func ddmqConfig(edit func(c *config.PushDDMQ)) *config.Push {
	cfg := &config.Push{
		Name: "hook", Group: "g", Topics: []string{"orders"}, Targets: []string{"http://h/"},
		Method: "POST", Envelope: "ddmq", Concurrency: 1, Order: "key",
		Retry: config.PushRetry{Max: 3, Backoff: []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}},
		DDMQ: config.PushDDMQ{
			AppendContext:   []string{"TOPIC", "GROUP", "OFFSET", "QID", "SOURCE", "MSG_KEY", "TOKEN", "PROPERTIES"},
			RetryIntervals:  []time.Duration{100 * time.Millisecond, 150 * time.Millisecond, 300 * time.Millisecond},
			HTTPCallbackURL: true,
		},
	}
	if edit != nil {
		edit(&cfg.DDMQ)
	}
	return cfg
}

func ddmqMessage(key, value string, headers ...string) *consume.Message {
	m := &consume.Message{Topic: "orders", Qid: "3", Offset: 42, Value: []byte(value)}
	if key != "" {
		m.Key = []byte(key)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		m.Headers = append(m.Headers, sdk.Header{Key: headers[i], Value: []byte(headers[i+1])})
	}
	return m
}

var kafkaOrigin = Origin{Cluster: "local", Source: "KAFKA"}

// The form, field by field, as DDMQ's CProxy builds it: FormParams
// (carrera-consumer's cproxy/actions/FormParamsExtractAction.java) puts
// the value in params, then the append-context fields in the
// subscription's order, TOKEN falling through to MSG_KEY; FormParams2
// (FormParamsExtractAction2.java) opens a JSON object's first level, and
// sends a value that is not JSON as params without context;
// CarreraAsyncRequest.java adds carrera_req_cnt last. Values are encoded
// as async-http-client's Utf8UrlEncoder does for forms: -._* and
// alphanumerics as they are, space as +.
func TestDDMQForm(t *testing.T) {
	const (
		tokenK1   = "61b556184ef6cb0e28c327534f0008a6" // md5("k1" + "tk")
		tokenNull = "7b21cbcc41670a55f19d98c488005b1c" // md5("null" + "tk"): Java's null + "tk"
	)
	for _, tc := range []struct {
		name   string
		edit   func(c *config.PushDDMQ)
		msg    *consume.Message
		origin Origin
		want   []string // the form's fields, in order, as encoded
	}{
		{"every context field, in the default order", func(c *config.PushDDMQ) { c.TokenKey = "tk" },
			ddmqMessage("k1", `{"id":1}`, "b", "2", "a", "x y"), kafkaOrigin, []string{
				"params=%7B%22id%22%3A1%7D",
				"carrera_topic=orders",
				"carrera_group=g",
				"carrera_offset=42",
				"carrera_qid=local_3",
				"carrera_source=KAFKA",
				"carrera_msg_key=k1",
				"carrera_token=" + tokenK1,
				"carrera_properties=%7B%22a%22%3A%22x+y%22%2C%22b%22%3A%222%22%7D",
			}},
		{"a message without a key: token of null, the key field a bare name", func(c *config.PushDDMQ) {
			c.TokenKey, c.AppendContext = "tk", []string{"TOKEN", "MSG_KEY"}
		}, ddmqMessage("", "v"), kafkaOrigin, []string{"params=v", "carrera_token=" + tokenNull, "carrera_msg_key"}},
		{"TOKEN alone brings the key", func(c *config.PushDDMQ) { c.TokenKey, c.AppendContext = "tk", []string{"TOKEN"} },
			ddmqMessage("k1", "v"), kafkaOrigin, []string{"params=v", "carrera_token=" + tokenK1, "carrera_msg_key=k1"}},
		{"MSG_KEY before TOKEN: the key once", func(c *config.PushDDMQ) { c.TokenKey, c.AppendContext = "tk", []string{"MSG_KEY", "TOKEN"} },
			ddmqMessage("k1", "v"), kafkaOrigin, []string{"params=v", "carrera_msg_key=k1", "carrera_token=" + tokenK1}},
		{"no properties are {}", func(c *config.PushDDMQ) { c.AppendContext = []string{"PROPERTIES"} },
			ddmqMessage("k1", "v"), kafkaOrigin, []string{"params=v", "carrera_properties=%7B%7D"}},
		{"no context", func(c *config.PushDDMQ) { c.AppendContext = nil },
			ddmqMessage("k1", "v"), kafkaOrigin, []string{"params=v"}},
		{"RocketMQ qid and source", func(c *config.PushDDMQ) { c.AppendContext = []string{"QID", "SOURCE"} },
			&consume.Message{Topic: "orders", Qid: "broker-a:3", Value: []byte("v")}, Origin{Cluster: "rmq", Source: "RMQ"},
			[]string{"params=v", "carrera_qid=rmq_broker-a_3", "carrera_source=RMQ"}},
		{"form encoding", func(c *config.PushDDMQ) { c.AppendContext = nil },
			ddmqMessage("", "a*b-c._~ é&=+%\n"), kafkaOrigin, []string{"params=a*b-c._%7E+%C3%A9%26%3D%2B%25%0A"}},
		{"invalid UTF-8 becomes U+FFFD, as Java decodes it", func(c *config.PushDDMQ) { c.AppendContext = nil },
			ddmqMessage("", "a\xffb"), kafkaOrigin, []string{"params=a%EF%BF%BDb"}},
		{"FormParams2 opens the first level", func(c *config.PushDDMQ) {
			c.FormParams2, c.AppendContext = true, []string{"OFFSET"}
		}, ddmqMessage("k1", `{"s": "a b", "n": 1.50, "o": {"x": [1]}, "b": true, "z": null}`), kafkaOrigin, []string{
			"b=true", "n=1.50", "o=%7B%22x%22%3A%5B1%5D%7D", "s=a+b", "z=null", "carrera_offset=42",
		}},
		{"FormParams2 of a value that is not JSON: params, no context", func(c *config.PushDDMQ) { c.FormParams2 = true },
			ddmqMessage("k1", "plain"), kafkaOrigin, []string{"params=plain"}},
		{"FormParams2 of a JSON array: the same", func(c *config.PushDDMQ) { c.FormParams2 = true },
			ddmqMessage("k1", "[1]"), kafkaOrigin, []string{"params=%5B1%5D"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := newDDMQEnvelope(ddmqConfig(tc.edit))
			if err != nil {
				t.Fatal(err)
			}
			r, err := e.build(tc.msg, tc.origin, tc.msg.Value)
			if err != nil {
				t.Fatal(err)
			}
			want := strings.Join(tc.want, "&")
			if string(r.form) != want {
				t.Errorf("form\n got %s\nwant %s", r.form, want)
			}
			if got, want := string(r.body(2)), want+"&carrera_req_cnt=2"; got != want {
				t.Errorf("body(2) = %s, want %s", got, want)
			}
			// What a receiver's form parser reads back.
			if _, err := url.ParseQuery(string(r.body(0))); err != nil {
				t.Errorf("the form does not parse: %v", err)
			}
		})
	}
}

func TestDDMQQueryParams(t *testing.T) {
	e, err := newDDMQEnvelope(ddmqConfig(func(c *config.PushDDMQ) {
		c.QueryParams = map[string]string{"uid": "$.user.id", "tag": "$.tags[0]", "obj": "$.user", "n": "$.n"}
	}))
	if err != nil {
		t.Fatal(err)
	}
	r, err := e.build(ddmqMessage("k", ""), kafkaOrigin, []byte(`{"user": {"id": 7}, "tags": ["a b", "c"], "n": 1e3}`))
	if err != nil {
		t.Fatal(err)
	}
	// Names in order; spaces as %20, as async-http-client encodes query
	// elements.
	if want := "n=1e3&obj=%7B%22id%22%3A7%7D&tag=a%20b&uid=7"; r.query != want {
		t.Errorf("query = %s, want %s", r.query, want)
	}
	for base, want := range map[string]string{
		"http://h/in":        "http://h/in?" + r.query,
		"http://h/in?src=mq": "http://h/in?src=mq&" + r.query,
		"http://h/in?":       "http://h/in?" + r.query,
	} {
		if got := r.target(base); got != want {
			t.Errorf("target(%s) = %s, want %s", base, got, want)
		}
	}
}

// Messages a setting cannot read are refused, as CProxy fails them: the
// push sends them to the dead-letter topic.
func TestDDMQMalformed(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(c *config.PushDDMQ)
		msg   *consume.Message
		error string
	}{
		{"query params of a value that is not JSON", func(c *config.PushDDMQ) { c.QueryParams = map[string]string{"a": "$.a"} },
			ddmqMessage("", "plain"), "not a JSON object"},
		{"query params of a JSON array", func(c *config.PushDDMQ) { c.QueryParams = map[string]string{"a": "$[0]"} },
			ddmqMessage("", "[1]"), "not a JSON object"},
		{"order key path of a value that is not JSON", func(c *config.PushDDMQ) { c.OrderKey = "$.a" },
			ddmqMessage("", "{"), "not a JSON object"},
		{"a query param path that finds nothing", func(c *config.PushDDMQ) { c.QueryParams = map[string]string{"a": "$.a"} },
			ddmqMessage("", `{"b": 1}`), "ddmq.query_params.a: $.a finds nothing"},
		{"a query param that is null", func(c *config.PushDDMQ) { c.QueryParams = map[string]string{"a": "$.a"} },
			ddmqMessage("", `{"a": null}`), "finds nothing"},
		{"a callback URL that is not http", nil,
			ddmqMessage("", "v", PropCallbackURL, "ftp://h/x"), "not an http(s) URL"},
		{"an empty callback URL", nil,
			ddmqMessage("", "v", PropCallbackURL, ""), "not an http(s) URL"},
		{"too many callback URLs", nil,
			ddmqMessage("", "v", PropCallbackURL, strings.Repeat("http://h/<>", 16)+"http://h/"), "at most 16"},
		{"too many headers", nil,
			ddmqMessage("", "v", PropHeaders, manyHeaders(33)), "at most 32"},
		{"a form over the limit", func(c *config.PushDDMQ) { c.AppendContext = nil },
			ddmqMessage("", strings.Repeat("é", maxDDMQFormBytes/6+1)), "over the limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := newDDMQEnvelope(ddmqConfig(tc.edit))
			if err != nil {
				t.Fatal(err)
			}
			_, err = e.build(tc.msg, kafkaOrigin, tc.msg.Value)
			if err == nil || !strings.Contains(err.Error(), tc.error) {
				t.Errorf("build = %v; want an error with %q", err, tc.error)
			}
		})
	}
}

func manyHeaders(n int) string {
	var parts []string
	for i := range n {
		parts = append(parts, fmt.Sprintf(`"X-H%d": "v"`, i))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// carrera_http_callback_url replaces the targets (CarreraAsyncRequest's
// getUrl splits it on "<>"), unless http_callback_url is off;
// carrera_headers become headers when carrera_properties is sent.
func TestDDMQCallbackURLAndHeaders(t *testing.T) {
	msg := ddmqMessage("k", "v", PropCallbackURL, "http://a/x<>https://b:8443/y?z=1",
		PropHeaders, `{"X-Trace": "t1", "X-N": 5, "Host": "evil", "Bad Name": "x", "X-Mqgate-Offset": "1", "X-Ctl": "a\u0001"}`)
	e, err := newDDMQEnvelope(ddmqConfig(nil))
	if err != nil {
		t.Fatal(err)
	}
	r, err := e.build(msg, kafkaOrigin, msg.Value)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(r.urls) != "[http://a/x https://b:8443/y?z=1]" {
		t.Errorf("urls = %v", r.urls)
	}
	if fmt.Sprint(r.headers) != "[[X-N 5] [X-Trace t1]]" {
		t.Errorf("headers = %v", r.headers)
	}

	off, err := newDDMQEnvelope(ddmqConfig(func(c *config.PushDDMQ) {
		c.HTTPCallbackURL = false
		c.AppendContext = []string{"TOPIC"}
	}))
	if err != nil {
		t.Fatal(err)
	}
	r, err = off.build(msg, kafkaOrigin, msg.Value)
	if err != nil {
		t.Fatal(err)
	}
	if r.urls != nil || r.headers != nil {
		t.Errorf("with http_callback_url off and no PROPERTIES: urls %v, headers %v; want none", r.urls, r.headers)
	}

	// carrera_headers that are not a JSON object are ignored.
	if hs, err := propHeaders("not json"); hs != nil || err != nil {
		t.Errorf("propHeaders(not json) = %v, %v", hs, err)
	}
}

// order_key: QID and KEY as order: partition and key; a JSON path orders
// by what it finds, and leaves a message unordered when it finds nothing
// (CProxy's OrderAction with a null order value).
func TestDDMQOrderKey(t *testing.T) {
	lane := func(orderKey string, m *consume.Message) string {
		t.Helper()
		e, err := newDDMQEnvelope(ddmqConfig(func(c *config.PushDDMQ) { c.OrderKey = orderKey }))
		if err != nil {
			t.Fatal(err)
		}
		k, ok := e.laneKey(m)
		if !ok {
			t.Fatalf("order_key %q did not decide the lane", orderKey)
		}
		return k
	}
	at := func(off int64, key, value string) *consume.Message {
		m := ddmqMessage(key, value)
		m.Offset = off
		return m
	}
	same := func(what string, a, b string) {
		t.Helper()
		if a != b {
			t.Errorf("%s: lanes %q and %q differ", what, a, b)
		}
	}
	differ := func(what string, a, b string) {
		t.Helper()
		if a == b {
			t.Errorf("%s: both in lane %q", what, a)
		}
	}
	path := "$.user.id"
	same("the same user", lane(path, at(1, "a", `{"user": {"id": 7}}`)), lane(path, at(2, "b", `{"user": {"id": 7}, "x": 1}`)))
	differ("other users", lane(path, at(1, "a", `{"user": {"id": 7}}`)), lane(path, at(2, "a", `{"user": {"id": 8}}`)))
	differ("the string 7 and the number 7", lane(path, at(1, "", `{"user": {"id": "7"}}`)), lane(path, at(2, "", `{"user": {"id": 7}}`)))
	same("objects by content", lane(path, at(1, "", `{"user": {"id": {"a": 1, "b": 2}}}`)), lane(path, at(2, "", `{"user": {"id": {"b": 2, "a": 1}}}`)))
	differ("a missing id is unordered", lane(path, at(1, "", `{"user": {}}`)), lane(path, at(2, "", `{"user": {}}`)))
	differ("null is unordered", lane(path, at(1, "", `{"user": {"id": null}}`)), lane(path, at(2, "", `{"user": {"id": null}}`)))
	differ("not JSON is unordered", lane(path, at(1, "", `x`)), lane(path, at(2, "", `x`)))
	same("QID", lane("QID", at(1, "a", "")), lane("QID", at(2, "b", "")))
	same("KEY", lane("KEY", at(1, "a", "")), lane("KEY", at(2, "a", "")))
	differ("KEY without a key", lane("KEY", at(1, "", "")), lane("KEY", at(2, "", "")))
}

func TestPressureTraffic(t *testing.T) {
	for _, tc := range []struct {
		headers []string
		want    bool
	}{
		{nil, false},
		{[]string{PropPressureTraffic, "true"}, true},
		{[]string{PropPressureTraffic, "TRUE"}, true},
		{[]string{PropPressureTraffic, "yes"}, false},
		{[]string{PropPressureTraffic, "true", PropPressureTraffic, "false"}, false},
	} {
		if got := pressureTraffic(ddmqMessage("", "", tc.headers...)); got != tc.want {
			t.Errorf("pressureTraffic(%v) = %v, want %v", tc.headers, got, tc.want)
		}
	}
}

// errno as CProxy's processResponseContent reads it with fastjson 1.2
// (CarreraAsyncRequest.java): JSONObject.parseObject, then
// getInteger("errno") (TypeUtils.castToInt).
func TestDDMQErrno(t *testing.T) {
	const none, bad = "none", "bad"
	for _, tc := range []struct {
		reply string
		want  any // an int32, none or bad
	}{
		{"", none}, {" \n\t", none}, {"OK", none}, {"{}", none}, {"null", none}, {"[1]", none}, {`"errno"`, none},
		{`{"errno": 0}`, int32(0)},
		{`{"errno": 1000000}`, int32(1000000)},
		{`{"errno": 1000001, "errmsg": "x"}`, int32(1000001)},
		{`{"errno": 1000002}`, int32(1000002)},
		{`{"errno": 7}`, int32(7)},
		{`{"errno": -7}`, int32(-7)},
		{`{"errno": null}`, none},
		{`{"Errno": 1000002}`, none},
		{`{"errno": 1000002} trailing`, none},
		{`{"errno": 1000002`, none},
		{`{"errno": 1, "errno": 1000002}`, int32(1000002)},
		{`{"errno": {}}`, none},
		{`{"errno": [1000002]}`, none},
		{`{"errno": true}`, int32(1)},
		{`{"errno": false}`, int32(0)},
		{`{"errno": "1000002"}`, int32(1000002)},
		{`{"errno": "1,000,002"}`, int32(1000002)},
		{`{"errno": "1000002.00"}`, int32(1000002)},
		{`{"errno": "+5"}`, int32(5)},
		{`{"errno": ""}`, none},
		{`{"errno": "null"}`, none},
		{`{"errno": "NULL"}`, none},
		{`{"errno": "abc"}`, bad},
		{`{"errno": "1.5"}`, bad},
		{`{"errno": " 5"}`, bad},
		{`{"errno": "2147483648"}`, bad},
		{`{"errno": 1.9}`, int32(1)},
		{`{"errno": -1.9}`, int32(-1)},
		{`{"errno": 1e6}`, int32(1000000)},
		{`{"errno": 1000002.5e0}`, int32(1000002)},
		{`{"errno": 4294967296}`, int32(0)},           // Long.intValue: the low 32 bits
		{`{"errno": 4295967298}`, int32(1000002)},     // 2^32 + 1000002
		{`{"errno": 2147483648}`, int32(-2147483648)}, // wraps
		{`{"errno": 18446744073709551617}`, int32(1)}, // BigInteger: 2^64 + 1
		{`{"errno": 1e200}`, none},                    // intValueExact throws: CProxy takes it as no errno
		{`{"errno": 0e200}`, int32(0)},
		{`{"errno": 1e-200}`, none},
		{`{"errno": 1e99999999999999999999}`, none},
		{`{"errno": 1e-00000000000000000000001}`, int32(0)},
	} {
		v, found, isBad := ddmqErrno([]byte(tc.reply))
		var got any = v
		switch {
		case isBad:
			got = bad
		case !found:
			got = none
		}
		if got != tc.want {
			t.Errorf("errno of %s = %v, want %v", tc.reply, got, tc.want)
		}
	}
}

// What each reply means for the message: CProxy's onCompleted and
// proceedErrCode.
func TestDDMQOutcome(t *testing.T) {
	for _, tc := range []struct {
		code      int
		reply     string
		verdict   verdict
		rule      retryRule
		slow      bool
		unhealthy bool
	}{
		{200, "", verdictOK, 0, false, false},
		{200, "success", verdictOK, 0, false, false},
		{200, `{"errno": 0}`, verdictOK, 0, false, false},
		{200, `{"errno": 1000000}`, verdictOK, 0, true, false},
		{200, `{"errno": 1000001}`, verdictOK, 0, false, false},
		{200, `{"errno": 1000002}`, verdictRetry, retrySoon, false, false},
		{200, `{"errno": 500}`, verdictRetry, retryErrno, false, false},
		{200, `{"errno": -1}`, verdictRetry, retryErrno, false, false},
		{200, `{"errno": "x"}`, verdictReject, 0, false, false},
		{201, `{"errno": 0}`, verdictRetry, retryBackoff, false, false}, // only 200 is an answer
		{204, "", verdictRetry, retryBackoff, false, false},
		{302, "", verdictRetry, retryBackoff, false, false},
		{404, "", verdictRetry, retryBackoff, false, false},
		{500, `{"errno": 0}`, verdictRetry, retryBackoff, false, false},
		{502, "", verdictRetry, retryBackoff, false, true},
		{503, "", verdictRetry, retryBackoff, false, true},
		{504, "", verdictRetry, retryBackoff, false, true},
	} {
		o := ddmqOutcome(tc.code, []byte(tc.reply))
		if o.verdict != tc.verdict || o.rule != tc.rule || o.slowDown != tc.slow || o.unhealthy != tc.unhealthy {
			t.Errorf("%d %s: %+v; want verdict %d rule %d slow %v unhealthy %v", tc.code, tc.reply, o, tc.verdict, tc.rule, tc.slow, tc.unhealthy)
		}
	}
	o := classifyDDMQ(reply(500, strings.Repeat("x", 1000)))
	if !strings.HasPrefix(o.why, "HTTP 500: xxx") || len(o.why) > 250 {
		t.Errorf("why = %q", o.why)
	}
}

// The waits and the give-up of a sequence of failures, as CProxy's
// CarreraAsyncRequest and UpstreamJob (canDoErrorRetry, nextRetryDelay)
// decide them.
func TestDDMQRetryPlan(t *testing.T) {
	errnoOther := outcome{verdict: verdictRetry, rule: retryErrno}
	soon := outcome{verdict: verdictRetry, rule: retrySoon}
	failed := outcome{verdict: verdictRetry, rule: retryBackoff}
	type step struct {
		o      outcome
		wait   time.Duration
		giveUp bool
	}
	ms := time.Millisecond
	for _, tc := range []struct {
		name    string
		canSkip bool
		steps   []step
	}{
		{"errnos walk retry_intervals, then give up", true, []step{
			{errnoOther, 100 * ms, false}, {errnoOther, 150 * ms, false}, {errnoOther, 300 * ms, false}, {errnoOther, 0, true},
		}},
		{"without can_skip the last interval repeats", false, []step{
			{errnoOther, 100 * ms, false}, {errnoOther, 150 * ms, false}, {errnoOther, 300 * ms, false},
			{errnoOther, 300 * ms, false}, {errnoOther, 300 * ms, false},
		}},
		{"1000002 waits a second, and does not count", true, []step{
			{soon, time.Second, false}, {soon, time.Second, false}, {soon, time.Second, false}, {soon, time.Second, false},
			{errnoOther, 100 * ms, false},
		}},
		{"errors walk retry.backoff up to retry.max - 1 retries", true, []step{
			{failed, time.Second, false}, {failed, 2 * time.Second, false}, {failed, 4 * time.Second, true},
		}},
		{"spent error retries end errno retries too (canDoErrorRetry)", true, []step{
			{failed, time.Second, false}, {failed, 2 * time.Second, false}, {soon, time.Second, true},
		}},
		{"without can_skip errors go on, the last backoff repeating", false, []step{
			{failed, time.Second, false}, {failed, 2 * time.Second, false}, {failed, 4 * time.Second, false},
			{failed, 4 * time.Second, false}, {soon, time.Second, false},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ddmqConfig(nil)
			cfg.CanSkip = tc.canSkip
			s := &subscription{cfg: cfg}
			it := &item{}
			for i, st := range tc.steps {
				wait, giveUp := s.ddmqRetryPlan(it, st.o)
				if giveUp != st.giveUp || (!giveUp && wait != st.wait) {
					t.Fatalf("step %d (rule %d): wait %v give up %v; want %v %v", i, st.o.rule, wait, giveUp, st.wait, st.giveUp)
				}
			}
		})
	}
}

// A slow-down reply sets rate_limit permits, each further one adds one,
// and each request while permits remain takes one.
func TestSlowDown(t *testing.T) {
	s := newSlowDown(50)
	if err := s.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, p := s.state(); p != 0 {
		t.Fatalf("permits %d before any slow-down", p)
	}
	now := time.Now()
	s.trigger(now)
	s.trigger(now)
	if total, p := s.state(); total != 2 || p != 51 {
		t.Fatalf("after two slow-downs: total %d permits %d; want 2 and 51", total, p)
	}
	if err := s.wait(context.Background()); err != nil { // the pace's first token is free
		t.Fatal(err)
	}
	if _, p := s.state(); p != 50 {
		t.Fatalf("permits %d after one request; want 50", p)
	}

	// Without a rate limit, the rate is the last whole second's.
	u := newSlowDown(0)
	base := time.Unix(1000, 0)
	for range 30 {
		u.sent(base)
	}
	u.trigger(base.Add(time.Second))
	if _, p := u.state(); p != 30 {
		t.Errorf("permits %d after 30 requests in the second before; want 30", p)
	}
	idle := newSlowDown(0)
	idle.trigger(base)
	if _, p := idle.state(); p != 1 {
		t.Errorf("permits %d with nothing sent; want 1", p)
	}
}

// FuzzDDMQReply reads any reply: no panic, and the verdict follows
// CProxy's rules in the cases that do not need fastjson's conversions.
func FuzzDDMQReply(f *testing.F) {
	for _, s := range []string{"", "OK", `{"errno":0}`, `{"errno":1000002}`, `{"errno":"1,000,002.0"}`, `{"errno":1e300}`,
		`{"errno":-12345678901234567890.5e-3}`, `{"errno":[]}`, `{"a":{"errno":1}}`, `{"errno":true}`} {
		f.Add(200, []byte(s))
	}
	f.Add(500, []byte(`{"errno":0}`))
	f.Fuzz(func(t *testing.T, code int, reply []byte) {
		o := ddmqOutcome(code, reply)
		if code != 200 {
			if o.verdict != verdictRetry || o.rule != retryBackoff {
				t.Fatalf("status %d: %+v; every status but 200 is an error", code, o)
			}
			return
		}
		errno, found, bad := ddmqErrno(reply)
		switch {
		case bad:
			if o.verdict != verdictReject {
				t.Fatalf("bad errno: %+v", o)
			}
		case !found, errno == ErrnoOK, errno == ErrnoUnprocessed:
			if o.verdict != verdictOK || o.slowDown {
				t.Fatalf("errno %d found %v: %+v", errno, found, o)
			}
		case errno == ErrnoSlowDown:
			if o.verdict != verdictOK || !o.slowDown {
				t.Fatalf("slow down: %+v", o)
			}
		case errno == ErrnoRetry:
			if o.verdict != verdictRetry || o.rule != retrySoon {
				t.Fatalf("1000002: %+v", o)
			}
		default:
			if o.verdict != verdictRetry || o.rule != retryErrno {
				t.Fatalf("errno %d: %+v", errno, o)
			}
		}
	})
}
