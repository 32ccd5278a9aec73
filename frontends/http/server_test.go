package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqgate/mqgate/core/pluginhost"
	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/core/topicname"
	"github.com/mqgate/mqgate/sdk"
)

// fakeProducer records every call. By default message i succeeds on
// partition 1 at offset 100+i; respond overrides that.
type fakeProducer struct {
	respond func(ctx context.Context, topic string, msgs []produce.Message) ([]sdk.ProduceResult, error)

	mu       sync.Mutex
	calls    []produceCall
	asyncErr error
}

type produceCall struct {
	topic string
	msgs  []produce.Message
	async bool
}

// ProduceAsync records the call; asyncErr, when set, is its answer.
func (f *fakeProducer) ProduceAsync(ctx context.Context, topic string, msgs []produce.Message) error {
	f.mu.Lock()
	f.calls = append(f.calls, produceCall{topic: topic, msgs: msgs, async: true})
	err := f.asyncErr
	f.mu.Unlock()
	return err
}

func (f *fakeProducer) Produce(ctx context.Context, topic string, msgs []produce.Message) ([]sdk.ProduceResult, error) {
	f.mu.Lock()
	f.calls = append(f.calls, produceCall{topic: topic, msgs: msgs})
	f.mu.Unlock()
	if f.respond != nil {
		return f.respond(ctx, topic, msgs)
	}
	results := make([]sdk.ProduceResult, len(msgs))
	for i := range msgs {
		results[i] = sdk.ProduceResult{Qid: "1", Partition: 1, Offset: int64(100 + i)}
	}
	return results, nil
}

func (f *fakeProducer) Calls() []produceCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]produceCall(nil), f.calls...)
}

// fakePlugins reports fixed statuses.
type fakePlugins []pluginhost.Status

func (p fakePlugins) Health(context.Context) []pluginhost.Status { return p }

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newTestServer(t *testing.T, opts Options, p Producer, plugins Plugins) *Server {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	return New(opts, p, plugins)
}

// do sends one request to h and returns the status, headers and body.
func do(t *testing.T, h http.Handler, method, target, body string) (int, http.Header, []byte) {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Header(), rec.Body.Bytes()
}

// checkError asserts an error answer: its status, code, and a message
// containing msg.
func checkError(t *testing.T, status int, body []byte, wantStatus int, wantCode sdk.Code, msg string) {
	t.Helper()
	var e errorBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("body %q is not an error body: %v", body, err)
	}
	if status != wantStatus || e.Error.Code != wantCode || !strings.Contains(e.Error.Message, msg) {
		t.Errorf("got %d code %d %q; want %d code %d containing %q", status, e.Error.Code, e.Error.Message, wantStatus, wantCode, msg)
	}
}

func TestProduceRefusesBadInput(t *testing.T) {
	const good = `{"value": "v"}`
	for _, tc := range []struct {
		name   string
		opts   Options
		target string // default /v1/topics/orders/messages
		body   string
		status int
		code   sdk.Code
		msg    string
	}{
		{name: "malformed JSON", body: `{"value": "v",}`, status: 400, code: 11, msg: "malformed JSON at line 1, column 14"},
		{name: "empty body", body: ``, status: 400, code: 11, msg: "request body is empty"},
		{name: "array body", body: `[]`, status: 400, code: 11, msg: "request body must be a JSON object"},
		{name: "unknown field", body: `{"value": "v", "vaule": "w"}`, status: 400, code: 11, msg: `unknown field "vaule"`},
		{name: "unknown field in batch", body: `{"messages": [{"value": "v", "qid": "1"}]}`, status: 400, code: 11, msg: `messages[0]: unknown field "qid"`},
		{name: "missing value", body: `{"key": "k"}`, status: 400, code: 11, msg: "value or value_base64 is required"},
		{name: "value and value_base64", body: `{"value": "v", "value_base64": "dg=="}`, status: 400, code: 11, msg: "value_base64: not allowed together with value"},
		{name: "bad base64", body: `{"value_base64": "@@"}`, status: 400, code: 11, msg: "value_base64: not standard padded base64"},
		{name: "key not a string", body: `{"key": 1, "value": "v"}`, status: 400, code: 11, msg: "key: must be a string"},
		{name: "header not a string", body: `{"value": "v", "headers": {"h": 1}}`, status: 400, code: 11, msg: `headers["h"]: must be a string`},
		{name: "tags not a string", body: `{"value": "v", "tags": 1}`, status: 400, code: 11, msg: "tags: must be a string"},
		{name: "partition -3", body: `{"value": "v", "partition": -3}`, status: 400, code: 11, msg: "partition: must be -1 (by hash), -2 (random) or a partition >= 0; got -3"},
		{name: "partition not an integer", body: `{"value": "v", "partition": 0.5}`, status: 400, code: 11, msg: "partition: must be an integer"},
		{name: "hash_id not an integer", body: `{"value": "v", "hash_id": "7"}`, status: 400, code: 11, msg: "hash_id: must be an integer"},
		{name: "message and messages", body: `{"value": "v", "messages": [{"value": "w"}]}`, status: 400, code: 11, msg: "value: a message field cannot be combined with messages"},
		{name: "empty messages", body: `{"messages": []}`, status: 400, code: 11, msg: "messages: must not be empty"},
		{name: "messages not an array", body: `{"messages": "v"}`, status: 400, code: 11, msg: "messages: must be a non-empty array"},
		{
			name: "too many messages", opts: Options{MaxBatchMessages: 2},
			body:   `{"messages": [{"value": "a"}, {"value": "b"}, {"value": "c"}]}`,
			status: 413, code: 16, msg: "3 messages exceed http.max_batch_messages (2)",
		},
		{
			name: "message too large", opts: Options{MaxMessageBytes: 10},
			body:   `{"messages": [{"value": "0123456789"}, {"key": "k", "value": "0123456789"}]}`,
			status: 413, code: 16, msg: "message 1 is 11 bytes, over http.max_message_bytes (10)",
		},
		{
			name: "headers and tags count toward the size", opts: Options{MaxMessageBytes: 10},
			body:   `{"value": "0123", "tags": "ab", "headers": {"abc": "de"}}`,
			status: 413, code: 16, msg: "message 0 is 11 bytes, over http.max_message_bytes (10)",
		},
		{
			name: "body too large", opts: Options{MaxBodyBytes: 32},
			body:   `{"value": "` + strings.Repeat("x", 32) + `"}`,
			status: 413, code: 16, msg: "request body exceeds http.max_body_bytes (32 bytes)",
		},
		{name: "topic with a space", target: "/v1/topics/a%20b/messages", body: good, status: 400, code: 11, msg: `topic: character ' ' at byte 1 is not allowed; a topic is made of [a-zA-Z0-9._-]`},
		{name: "topic with a colon", target: "/v1/topics/a:b/messages", body: good, status: 400, code: 11, msg: "topic: character ':' at byte 1"},
		{name: "topic with non-ASCII", target: "/v1/topics/caf%C3%A9/messages", body: good, status: 400, code: 11, msg: "topic: character 'é' at byte 3"},
		{name: "empty topic", target: "/v1/topics//messages", body: good, status: 400, code: 11, msg: "topic: must not be empty"},
		{name: "topic dot", target: "/v1/topics/./messages", body: good, status: 400, code: 11, msg: `topic: "." is not a valid topic name`},
		{name: "topic dot dot", target: "/v1/topics/../messages", body: good, status: 400, code: 11, msg: `topic: ".." is not a valid topic name`},
		{name: "topic too long", target: "/v1/topics/" + strings.Repeat("t", 250) + "/messages", body: good, status: 400, code: 11, msg: "topic: must be at most 249 characters; got 250"},
		{name: "unknown mode", target: "/v1/topics/orders/messages?mode=fast", body: good, status: 400, code: 11, msg: `mode: must be sync or async; got "fast"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fp := &fakeProducer{}
			s := newTestServer(t, tc.opts, fp, nil)
			target := tc.target
			if target == "" {
				target = "/v1/topics/orders/messages"
			}
			status, _, body := do(t, s.Handler(), http.MethodPost, target, tc.body)
			checkError(t, status, body, tc.status, tc.code, tc.msg)
			if calls := fp.Calls(); len(calls) != 0 {
				t.Errorf("bad input reached the producer: %+v", calls)
			}
		})
	}
}

func TestProduceLongestTopic(t *testing.T) {
	fp := &fakeProducer{}
	s := newTestServer(t, Options{}, fp, nil)
	topic := "a-Z_0." + strings.Repeat("t", topicname.MaxLength-6)
	status, _, body := do(t, s.Handler(), http.MethodPost, "/v1/topics/"+topic+"/messages", `{"value": "v"}`)
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	if calls := fp.Calls(); len(calls) != 1 || calls[0].topic != topic {
		t.Errorf("calls %+v, want one to %s", calls, topic)
	}
}

func TestProduce(t *testing.T) {
	binary := make([]byte, 256)
	for i := range binary {
		binary[i] = byte(255 - i)
	}
	for _, tc := range []struct {
		name   string
		target string
		body   string
		want   []produce.Message
		// results is the expected 200 body.
		results string
	}{
		{
			name:    "single message with every field",
			target:  "/v1/topics/orders/messages",
			body:    `{"key": "k", "value": "v", "headers": {"a": "1"}, "tags": "t", "partition": 3, "hash_id": 42}`,
			want:    []produce.Message{{Key: []byte("k"), Value: []byte("v"), Headers: []sdk.Header{{Key: "a", Value: []byte("1")}}, Tags: "t", Partition: 3, HashID: int64p(42)}},
			results: `{"results": [{"partition": 1, "offset": 100, "code": 0}]}`,
		},
		{
			name:    "defaults: nil key, hash partition",
			target:  "/v1/topics/orders/messages?mode=sync",
			body:    `{"value": "v"}`,
			want:    []produce.Message{{Value: []byte("v"), Partition: sdk.PartitionHash}},
			results: `{"results": [{"partition": 1, "offset": 100, "code": 0}]}`,
		},
		{
			name:   "batch in request order",
			target: "/v1/topics/orders/messages",
			body:   `{"messages": [{"value": "a", "partition": -2}, {"key": "", "value": ""}, {"value": "c", "partition": 0}]}`,
			want: []produce.Message{
				{Value: []byte("a"), Partition: sdk.PartitionRandom},
				{Key: []byte{}, Value: []byte{}, Partition: sdk.PartitionHash},
				{Value: []byte("c"), Partition: 0},
			},
			results: `{"results": [{"partition": 1, "offset": 100, "code": 0}, {"partition": 1, "offset": 101, "code": 0}, {"partition": 1, "offset": 102, "code": 0}]}`,
		},
		{
			name:    "value_base64 carries binary bytes",
			target:  "/v1/topics/orders/messages",
			body:    `{"value_base64": "` + base64.StdEncoding.EncodeToString(binary) + `"}`,
			want:    []produce.Message{{Value: binary, Partition: sdk.PartitionHash}},
			results: `{"results": [{"partition": 1, "offset": 100, "code": 0}]}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fp := &fakeProducer{}
			s := newTestServer(t, Options{}, fp, nil)
			status, hdr, body := do(t, s.Handler(), http.MethodPost, tc.target, tc.body)
			if status != http.StatusOK {
				t.Fatalf("status %d: %s", status, body)
			}
			if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q", ct)
			}
			checkJSON(t, body, tc.results)
			calls := fp.Calls()
			if len(calls) != 1 {
				t.Fatalf("%d producer calls, want 1", len(calls))
			}
			if calls[0].topic != "orders" || !reflect.DeepEqual(calls[0].msgs, tc.want) {
				t.Errorf("produced to %q %#v\nwant orders %#v", calls[0].topic, calls[0].msgs, tc.want)
			}
		})
	}
}

// checkJSON asserts that got and want are the same JSON value.
func checkJSON(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("body %q: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want %q: %v", want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("body %s\nwant %s", got, want)
	}
}

func TestProduceOutcomes(t *testing.T) {
	ok := func(p int32, o int64) sdk.ProduceResult { return sdk.ProduceResult{Partition: p, Offset: o} }
	failed := func(err error) sdk.ProduceResult { return sdk.ProduceResult{Err: err} }
	noTopic := sdk.Errorf(sdk.CodeTopicNotExist, "topic orders does not exist")
	limited := sdk.Errorf(sdk.CodeRateLimited, "over 10 messages/s")
	batch3 := `{"messages": [{"value": "a"}, {"value": "b"}, {"value": "c"}]}`

	for _, tc := range []struct {
		name    string
		body    string
		results []sdk.ProduceResult
		err     error
		status  int
		want    string // exact JSON body
	}{
		{
			name: "call error keeps its code", body: batch3, err: &sdk.Error{Code: sdk.CodeUnavailable, Msg: "backend unavailable"},
			status: 503, want: `{"error": {"code": 17, "message": "backend unavailable"}}`,
		},
		{
			name: "wrapped call error keeps its code", body: batch3, err: errors.Join(errors.New("kafka"), noTopic),
			status: 404, want: `{"error": {"code": 14, "message": "topic orders does not exist"}}`,
		},
		{
			name: "plain call error is internal and hides its text", body: batch3, err: errors.New("nil pointer in router"),
			status: 500, want: `{"error": {"code": 100, "message": "internal error"}}`,
		},
		{
			name: "single failed message answers like a call error", body: `{"value": "v"}`, results: []sdk.ProduceResult{failed(limited)},
			status: 429, want: `{"error": {"code": 15, "message": "over 10 messages/s"}}`,
		},
		{
			name: "all failed with one code: that status and the first error", body: batch3,
			results: []sdk.ProduceResult{failed(noTopic), failed(sdk.Errorf(sdk.CodeTopicNotExist, "second")), failed(noTopic)},
			status:  404, want: `{"error": {"code": 14, "message": "topic orders does not exist"}}`,
		},
		{
			name: "some failed: 200 with a code per message", body: batch3,
			results: []sdk.ProduceResult{ok(0, 7), failed(limited), ok(2, 9)},
			status:  200,
			want:    `{"results": [{"partition": 0, "offset": 7, "code": 0}, {"code": 15, "message": "over 10 messages/s"}, {"partition": 2, "offset": 9, "code": 0}]}`,
		},
		{
			name: "all failed with different codes: 200 with a code per message", body: batch3,
			results: []sdk.ProduceResult{failed(noTopic), failed(limited), failed(context.DeadlineExceeded)},
			status:  200,
			want:    `{"results": [{"code": 14, "message": "topic orders does not exist"}, {"code": 15, "message": "over 10 messages/s"}, {"code": 12, "message": "timed out after 10s (http.request_timeout)"}]}`,
		},
		{
			name: "a result count that does not match is internal", body: batch3, results: []sdk.ProduceResult{ok(0, 1)},
			status: 500, want: `{"error": {"code": 100, "message": "internal error"}}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fp := &fakeProducer{respond: func(context.Context, string, []produce.Message) ([]sdk.ProduceResult, error) {
				return tc.results, tc.err
			}}
			s := newTestServer(t, Options{}, fp, nil)
			status, _, body := do(t, s.Handler(), http.MethodPost, "/v1/topics/orders/messages", tc.body)
			if status != tc.status {
				t.Errorf("status %d, want %d", status, tc.status)
			}
			checkJSON(t, body, tc.want)
		})
	}
}

func TestProduceTimeout(t *testing.T) {
	fp := &fakeProducer{respond: func(ctx context.Context, _ string, _ []produce.Message) ([]sdk.ProduceResult, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	s := newTestServer(t, Options{RequestTimeout: 50 * time.Millisecond}, fp, nil)
	start := time.Now()
	status, _, body := do(t, s.Handler(), http.MethodPost, "/v1/topics/orders/messages", `{"value": "v"}`)
	checkError(t, status, body, http.StatusGatewayTimeout, sdk.CodeTimeout, "timed out after 50ms (http.request_timeout)")
	if len(fp.Calls()) != 1 {
		t.Errorf("producer calls %d, want 1", len(fp.Calls()))
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("answered after %s; the deadline was 50ms", elapsed)
	}
}

func TestProducePanicIsInternalError(t *testing.T) {
	fp := &fakeProducer{respond: func(context.Context, string, []produce.Message) ([]sdk.ProduceResult, error) {
		panic("bug")
	}}
	s := newTestServer(t, Options{}, fp, nil)
	status, _, body := do(t, s.Handler(), http.MethodPost, "/v1/topics/orders/messages", `{"value": "v"}`)
	checkError(t, status, body, http.StatusInternalServerError, sdk.CodeInternal, "internal error")
}

func TestUnknownRoutesAnswerJSON(t *testing.T) {
	s := newTestServer(t, Options{}, &fakeProducer{}, nil)
	for _, tc := range []struct {
		name, method, target string
		status               int
		code                 sdk.Code
		msg, allow           string
	}{
		{name: "unknown path", method: "GET", target: "/v2/nothing", status: 404, code: 19, msg: "no such route: GET /v2/nothing"},
		{name: "trailing slash is not redirected", method: "POST", target: "/v1/topics/orders/messages/", status: 404, code: 19, msg: "no such route: POST /v1/topics/orders/messages/"},
		{name: "wrong method on produce", method: "GET", target: "/v1/topics/orders/messages", status: 405, code: 11, msg: "method GET is not allowed on /v1/topics/orders/messages; allowed: POST", allow: "POST"},
		{name: "wrong method on healthz", method: "DELETE", target: "/healthz", status: 405, code: 11, msg: "allowed: GET, HEAD", allow: "GET, HEAD"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, hdr, body := do(t, s.Handler(), tc.method, tc.target, "")
			checkError(t, status, body, tc.status, tc.code, tc.msg)
			if got := hdr.Get("Allow"); got != tc.allow {
				t.Errorf("Allow %q, want %q", got, tc.allow)
			}
		})
	}
}

func TestStatusOf(t *testing.T) {
	for _, tc := range []struct {
		code   sdk.Code
		status int
	}{
		{0, 200}, {11, 400}, {12, 504}, {13, 403}, {14, 404}, {15, 429},
		{16, 413}, {17, 503}, {18, 401}, {19, 404}, {100, 500}, {42, 500},
	} {
		if got := statusOf(tc.code); got != tc.status {
			t.Errorf("statusOf(%d) = %d, want %d", tc.code, got, tc.status)
		}
	}
}

func TestHealthz(t *testing.T) {
	s := newTestServer(t, Options{}, &fakeProducer{}, fakePlugins{{Name: "kafka", State: pluginhost.StateStopped}})
	status, _, body := do(t, s.Handler(), http.MethodGet, "/healthz", "")
	if status != http.StatusOK {
		t.Errorf("status %d", status)
	}
	checkJSON(t, body, `{"status": "ok"}`)
}

func TestProbesAnswerHEAD(t *testing.T) {
	for _, tc := range []struct {
		target  string
		plugins Plugins
		status  int
	}{
		{target: "/healthz", status: 200},
		{target: "/readyz", status: 200},
		{target: "/readyz", plugins: fakePlugins{{Name: "kafka", State: pluginhost.StateStarting}}, status: 503},
	} {
		s := newTestServer(t, Options{}, &fakeProducer{}, tc.plugins)
		if status, _, _ := do(t, s.Handler(), http.MethodHead, tc.target, ""); status != tc.status {
			t.Errorf("HEAD %s with %v: status %d, want %d", tc.target, tc.plugins, status, tc.status)
		}
	}
}

func TestReadyz(t *testing.T) {
	up := func(name string) pluginhost.Status { return pluginhost.Status{Name: name, State: pluginhost.StateUp} }
	for _, tc := range []struct {
		name    string
		plugins Plugins
		status  int
		want    string
	}{
		{name: "no plugins", plugins: nil, status: 200, want: `{"status": "ok"}`},
		{name: "all up", plugins: fakePlugins{up("kafka"), up("redis")}, status: 200, want: `{"status": "ok"}`},
		{
			name:    "one restarting",
			plugins: fakePlugins{{Name: "kafka", State: pluginhost.StateRestarting}, up("redis")},
			status:  503, want: `{"error": {"code": 17, "message": "plugins not ready: kafka"}}`,
		},
		{
			name: "up but cut off from its brokers",
			plugins: fakePlugins{up("redis"), {Name: "local", State: pluginhost.StateUp,
				BrokerError: "kafka brokers unreachable: dial tcp 10.0.0.9:9092: connect: connection refused"}},
			status: 503, want: `{"error": {"code": 17, "message": "brokers unreachable for local: kafka brokers unreachable: dial tcp 10.0.0.9:9092: connect: connection refused"}}`,
		},
		{
			name:    "a plugin down is said before a cluster cut off",
			plugins: fakePlugins{{Name: "local", State: pluginhost.StateUp, BrokerError: "unreachable"}, {Name: "acme", State: pluginhost.StateRestarting}},
			status:  503, want: `{"error": {"code": 17, "message": "plugins not ready: acme"}}`,
		},
		{
			name:    "several down, in reported order",
			plugins: fakePlugins{{Name: "kafka", State: pluginhost.StateStarting}, up("redis"), {Name: "acme", State: pluginhost.StateStopped}},
			status:  503, want: `{"error": {"code": 17, "message": "plugins not ready: kafka, acme"}}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, Options{}, &fakeProducer{}, tc.plugins)
			status, _, body := do(t, s.Handler(), http.MethodGet, "/readyz", "")
			if status != tc.status {
				t.Errorf("status %d, want %d", status, tc.status)
			}
			checkJSON(t, body, tc.want)
		})
	}
}

func TestListPlugins(t *testing.T) {
	two := fakePlugins{
		{Name: "local", Plugin: "kafka", Kind: "backend", State: pluginhost.StateUp, PID: 4242, Restarts: 1},
		{Name: "cache", Plugin: "redis", Kind: "sink", State: pluginhost.StateRestarting, Restarts: 3, LastError: "exit status 2"},
	}
	for _, tc := range []struct {
		name    string
		plugins Plugins
		want    []pluginhost.Status
	}{
		{name: "none", plugins: nil, want: []pluginhost.Status{}},
		{name: "nil statuses", plugins: fakePlugins(nil), want: []pluginhost.Status{}},
		{name: "two", plugins: two, want: two},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, Options{}, &fakeProducer{}, tc.plugins)
			status, _, body := do(t, s.Handler(), http.MethodGet, "/v1/plugins", "")
			if status != http.StatusOK {
				t.Errorf("status %d", status)
			}
			var got []pluginhost.Status
			if err := json.Unmarshal(body, &got); err != nil || got == nil {
				t.Fatalf("body %s is not a JSON array of statuses: %v", body, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// TestListPluginsFields pins the field names API.md promises.
func TestListPluginsFields(t *testing.T) {
	s := newTestServer(t, Options{}, &fakeProducer{}, fakePlugins{
		{Name: "local", Kind: "backend", State: pluginhost.StateUp, PID: 4242, Restarts: 1},
	})
	_, _, body := do(t, s.Handler(), http.MethodGet, "/v1/plugins", "")
	var got []map[string]any
	if err := json.Unmarshal(body, &got); err != nil || len(got) != 1 {
		t.Fatalf("body %s: %v", body, err)
	}
	want := map[string]any{"name": "local", "kind": "backend", "state": "up", "pid": 4242.0, "restarts": 1.0}
	for k, v := range want {
		if got[0][k] != v {
			t.Errorf("%s = %v, want %v (body %s)", k, got[0][k], v, body)
		}
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := newTestServer(t, Options{Registry: reg}, &fakeProducer{}, nil)
	h := s.Handler()
	do(t, h, http.MethodPost, "/v1/topics/orders/messages", `{"value": "v"}`)
	do(t, h, http.MethodPost, "/v1/topics/invoices/messages", `{"value": "v"}`)
	do(t, h, http.MethodPost, "/v1/topics/orders/messages", `{}`)
	do(t, h, http.MethodGet, "/no/such/path", "")
	do(t, h, "BREW", "/coffee", "")

	status, hdr, body := do(t, h, http.MethodGet, "/metrics", "")
	if status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q", ct)
	}
	text := string(body)
	for _, want := range []string{
		// Both topics count under the one route pattern.
		`mqgate_http_requests_total{code="200",method="POST",route="/v1/topics/:topic/messages"} 2`,
		`mqgate_http_requests_total{code="400",method="POST",route="/v1/topics/:topic/messages"} 1`,
		`mqgate_http_requests_total{code="404",method="GET",route="unmatched"} 1`,
		`mqgate_http_requests_total{code="404",method="other",route="unmatched"} 1`,
		`mqgate_http_request_duration_seconds_count{method="POST",route="/v1/topics/:topic/messages"} 3`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, raw := range []string{"orders", "/no/such/path", "BREW"} {
		if strings.Contains(text, raw) {
			t.Errorf("/metrics has the raw value %q as a label", raw)
		}
	}
}

func TestServersShareARegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := newTestServer(t, Options{Registry: reg}, &fakeProducer{}, nil)
	b := newTestServer(t, Options{Registry: reg}, &fakeProducer{}, nil)
	do(t, a.Handler(), http.MethodGet, "/healthz", "")
	do(t, b.Handler(), http.MethodGet, "/healthz", "")
	_, _, body := do(t, a.Handler(), http.MethodGet, "/metrics", "")
	if want := `mqgate_http_requests_total{code="200",method="GET",route="/healthz"} 2`; !strings.Contains(string(body), want) {
		t.Errorf("/metrics lacks %s", want)
	}
}

func TestShutdownFinishesInFlightRequests(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	fp := &fakeProducer{respond: func(ctx context.Context, _ string, _ []produce.Message) ([]sdk.ProduceResult, error) {
		close(entered)
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return []sdk.ProduceResult{{Partition: 4, Offset: 5}}, nil
	}}
	s := newTestServer(t, Options{}, fp, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	t.Cleanup(func() {
		// Safe after a successful Shutdown too; stops the server if the test
		// failed before it.
		_ = s.srv.Close()
	})

	type answer struct {
		status int
		body   []byte
		err    error
	}
	answered := make(chan answer, 1)
	go func() {
		resp, err := http.Post("http://"+l.Addr().String()+"/v1/topics/orders/messages", "application/json", strings.NewReader(`{"value": "v"}`))
		if err != nil {
			answered <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		answered <- answer{status: resp.StatusCode, body: body, err: err}
	}()
	<-entered

	shutdown := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shutdown <- s.Shutdown(ctx)
	}()
	// Shutdown must wait for the request in flight.
	select {
	case err := <-shutdown:
		t.Fatalf("Shutdown returned %v before the in-flight request finished", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)

	a := <-answered
	if a.err != nil || a.status != http.StatusOK {
		t.Fatalf("in-flight request: status %d, err %v, body %s", a.status, a.err, a.body)
	}
	checkJSON(t, a.body, `{"results": [{"partition": 4, "offset": 5, "code": 0}]}`)
	if err := <-shutdown; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve after Shutdown: %v", err)
	}
}

// serve runs s on a loopback port until the test ends and returns its
// address.
func serve(t *testing.T, s *Server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return l.Addr().String()
}

func TestSlowBodyTimesOut(t *testing.T) {
	fp := &fakeProducer{}
	s := newTestServer(t, Options{RequestTimeout: 100 * time.Millisecond}, fp, nil)
	addr := serve(t, s)

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Promise 100 bytes of body, send a few, then stall.
	req := "POST /v1/topics/orders/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"value\": "
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	checkError(t, resp.StatusCode, body, http.StatusGatewayTimeout, sdk.CodeTimeout, "reading the request body timed out after 100ms (http.request_timeout)")
	if calls := fp.Calls(); len(calls) != 0 {
		t.Errorf("an unfinished body reached the producer: %+v", calls)
	}
}
