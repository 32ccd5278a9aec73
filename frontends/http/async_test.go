package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mqgate/mqgate/sdk"
)

func TestAsyncProduce(t *testing.T) {
	fp := &fakeProducer{}
	h := newTestServer(t, Options{}, fp, nil).Handler()
	status, _, body := do(t, h, "POST", "/v1/topics/orders/messages?mode=async", `{"messages": [{"value": "a"}, {"value": "b"}]}`)
	if status != http.StatusAccepted || string(body) != "{\"accepted\":2}\n" {
		t.Fatalf("async produce: %d %s; want 202 {\"accepted\":2}", status, body)
	}
	calls := fp.Calls()
	if len(calls) != 1 || !calls[0].async || calls[0].topic != "orders" || len(calls[0].msgs) != 2 {
		t.Fatalf("producer calls: %+v", calls)
	}

	// A full spool is refused at once with 503 / 17, naming the limit.
	fp.asyncErr = sdk.Errorf(sdk.CodeUnavailable, "spool is full (producer.spool_max_bytes = 1024)")
	status, _, body = do(t, h, "POST", "/v1/topics/orders/messages?mode=async", `{"value": "c"}`)
	checkError(t, status, body, http.StatusServiceUnavailable, sdk.CodeUnavailable, "producer.spool_max_bytes")

	// Bad input never reaches the spool.
	before := len(fp.Calls())
	status, _, body = do(t, h, "POST", "/v1/topics/orders/messages?mode=async", `{"key": "k"}`)
	checkError(t, status, body, http.StatusBadRequest, sdk.CodeIllegal, "value or value_base64 is required")
	if len(fp.Calls()) != before {
		t.Fatal("a refused async request reached the producer")
	}
}

func TestKafkaSend(t *testing.T) {
	type reply struct {
		Code  sdk.Code     `json:"code"`
		Msg   string       `json:"msg"`
		Error *errorDetail `json:"error"`
	}
	for _, tc := range []struct {
		name     string
		target   string
		header   string // x-delay HTTP header
		body     string
		status   int
		code     sdk.Code
		msg      string
		produced bool
	}{
		{name: "mqproxy's example", body: `{"headers": {"content": "goods","instant": "yes"},"topic": "topic-open","payload": "hello proxy"}`,
			status: 200, msg: "ok", produced: true},
		{name: "no headers", body: `{"topic": "t", "payload": ""}`, status: 200, msg: "ok", produced: true},
		{name: "async", target: "/v1/kafka/send?mode=async", body: `{"topic": "t", "payload": "p"}`, status: 200, msg: "ok", produced: true},
		{name: "delay in the body's headers", body: `{"headers": {"x-delay": "11"}, "topic": "t", "payload": "p"}`,
			status: 400, code: 11, msg: "x-delay: delay messages are not enabled"},
		{name: "delay as an HTTP header", header: "19", body: `{"topic": "t", "payload": "p"}`,
			status: 400, code: 11, msg: "x-delay: delay messages are not enabled"},
		{name: "missing payload", body: `{"topic": "t"}`, status: 400, code: 11, msg: "payload is required"},
		{name: "missing topic", body: `{"payload": "p"}`, status: 400, code: 11, msg: "topic: must not be empty"},
		{name: "illegal topic", body: `{"topic": "a b", "payload": "p"}`, status: 400, code: 11, msg: "topic: character ' '"},
		{name: "unknown field", body: `{"topic": "t", "payload": "p", "key": "k"}`, status: 400, code: 11, msg: `unknown field "key"`},
		{name: "header not a string", body: `{"topic": "t", "payload": "p", "headers": {"a": 1}}`, status: 400, code: 11, msg: "headers: must be an object of string values"},
		{name: "malformed", body: `{"topic": "t",`, status: 400, code: 11, msg: "malformed JSON"},
		{name: "empty body", body: ``, status: 400, code: 11, msg: "request body is empty"},
		{name: "trailing data", body: `{"topic": "t", "payload": "p"} {}`, status: 400, code: 11, msg: "unexpected data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fp := &fakeProducer{}
			h := newTestServer(t, Options{}, fp, nil).Handler()
			target := tc.target
			if target == "" {
				target = "/v1/kafka/send"
			}
			req := httptest.NewRequest("POST", target, strings.NewReader(tc.body))
			if tc.header != "" {
				req.Header.Set("x-delay", tc.header)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			status, body := rec.Code, rec.Body.Bytes()
			var r reply
			if err := json.Unmarshal(body, &r); err != nil {
				t.Fatalf("%d %s: %v", status, body, err)
			}
			if status != tc.status || r.Code != tc.code || !strings.Contains(r.Msg, tc.msg) {
				t.Fatalf("got %d code %d %q; want %d code %d containing %q", status, r.Code, r.Msg, tc.status, tc.code, tc.msg)
			}
			if tc.status != 200 && (r.Error == nil || r.Error.Code != tc.code) {
				t.Fatalf("an error answer lacks the standard error body: %s", body)
			}
			calls := fp.Calls()
			if tc.produced != (len(calls) == 1) {
				t.Fatalf("producer calls %+v; produced should be %v", calls, tc.produced)
			}
		})
	}
}

// The mqproxy body maps to one message: payload as value, headers in name
// order, no key.
func TestKafkaSendMapping(t *testing.T) {
	fp := &fakeProducer{}
	h := newTestServer(t, Options{}, fp, nil).Handler()
	status, _, body := do(t, h, "POST", "/v1/kafka/send", `{"headers": {"instant": "yes", "content": "goods"}, "topic": "topic-open", "payload": "hello proxy"}`)
	if status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	m := fp.Calls()[0].msgs[0]
	if fp.Calls()[0].topic != "topic-open" || string(m.Value) != "hello proxy" || m.Key != nil || len(m.Headers) != 2 ||
		m.Headers[0].Key != "content" || string(m.Headers[0].Value) != "goods" || m.Headers[1].Key != "instant" {
		t.Fatalf("mapped to %+v", m)
	}
}

func FuzzDecodeKafkaSend(f *testing.F) {
	for _, s := range []string{
		`{"headers": {"content": "goods"}, "topic": "topic-open", "payload": "hello"}`,
		`{"topic": "t", "payload": ""}`, `{"topic": "t"}`, `{}`, `[]`, `{"payload": 1}`, `{"headers": {"x-delay": "5"}, "topic": "t", "payload": "p"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		topic, msg, _, err := decodeKafkaSend(body)
		if err != nil {
			if sdk.CodeOf(err) != sdk.CodeIllegal {
				t.Fatalf("error %v has code %d, want 11", err, sdk.CodeOf(err))
			}
			return
		}
		if topic == "" || msg.Value == nil {
			t.Fatalf("accepted %q as topic %q value %v", body, topic, msg.Value)
		}
		for _, h := range msg.Headers {
			if strings.EqualFold(h.Key, delayHeader) {
				t.Fatalf("x-delay leaked into the message headers: %q", body)
			}
		}
	})
}
