package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqgate/mqgate/core/delay"
	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/sdk"
)

// testMax is the delay.max of the fake Delayer.
const testMax = time.Hour

// fakeDelayer records every call. By default Add succeeds for every
// message, keeping its ID or generating "gen-<i>", and its DueAt; add and
// cancelErr override that.
type fakeDelayer struct {
	add       func(ctx context.Context, msgs []delay.Message) ([]delay.Result, error)
	cancelErr error

	mu      sync.Mutex
	adds    [][]delay.Message
	cancels []cancelCall
}

type cancelCall struct{ topic, id string }

var _ delay.Delayer = (*fakeDelayer)(nil)

func (f *fakeDelayer) Add(ctx context.Context, msgs []delay.Message) ([]delay.Result, error) {
	f.mu.Lock()
	f.adds = append(f.adds, msgs)
	f.mu.Unlock()
	if f.add != nil {
		return f.add(ctx, msgs)
	}
	return okDelayResults(msgs), nil
}

func okDelayResults(msgs []delay.Message) []delay.Result {
	out := make([]delay.Result, len(msgs))
	for i, m := range msgs {
		id := m.ID
		if id == "" {
			id = "gen-" + strconv.Itoa(i)
		}
		out[i] = delay.Result{ID: id, DueAt: m.DueAt}
	}
	return out
}

func (f *fakeDelayer) Cancel(ctx context.Context, topic, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cancels = append(f.cancels, cancelCall{topic: topic, id: id})
	return f.cancelErr
}

func (f *fakeDelayer) CheckTopic(string) error { return nil }
func (f *fakeDelayer) Max() time.Duration      { return testMax }
func (f *fakeDelayer) Ready() error            { return nil }

func (f *fakeDelayer) Adds() [][]delay.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]delay.Message(nil), f.adds...)
}

func (f *fakeDelayer) Cancels() []cancelCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]cancelCall(nil), f.cancels...)
}

// newDelayServer returns a server with a fake producer and fd as its
// Delayer.
func newDelayServer(t *testing.T, opts Options, fd *fakeDelayer) (*Server, *fakeProducer) {
	t.Helper()
	opts.Delayer = fd
	fp := &fakeProducer{}
	return newTestServer(t, opts, fp, nil), fp
}

func TestDelayNotEnabled(t *testing.T) {
	s := newTestServer(t, Options{}, &fakeProducer{}, nil)
	for _, tc := range []struct{ method, target, body string }{
		{http.MethodPost, "/v1/topics/orders/delayed", `{"value": "v", "delay_ms": 1000}`},
		{http.MethodDelete, "/v1/topics/orders/delayed/d-1", ""},
	} {
		status, _, body := do(t, s.Handler(), tc.method, tc.target, tc.body)
		checkError(t, status, body, http.StatusBadRequest, sdk.CodeIllegal, "delay messages are not enabled")
	}
}

func TestAddDelayedRefusesBadInput(t *testing.T) {
	const good = `{"value": "v", "delay_ms": 1000}`
	future := time.Now().Add(2 * testMax).UnixMilli()
	for _, tc := range []struct {
		name   string
		opts   Options
		target string // default /v1/topics/orders/delayed
		body   string
		status int // default 400
		code   sdk.Code
		msg    string
	}{
		{name: "negative delay_ms", body: `{"value": "v", "delay_ms": -1}`, code: 11, msg: "delay_ms: must be >= 0; got -1"},
		{name: "negative deliver_at_ms", body: `{"value": "v", "deliver_at_ms": -5}`, code: 11, msg: "deliver_at_ms: must be >= 0 (milliseconds since the epoch); got -5"},
		{name: "both delay fields", body: `{"value": "v", "delay_ms": 1, "deliver_at_ms": 2}`, code: 11, msg: "deliver_at_ms: not allowed together with delay_ms; send exactly one of the two"},
		{name: "both delay fields, other order", body: `{"deliver_at_ms": 2, "value": "v", "delay_ms": 1}`, code: 11, msg: "delay_ms: not allowed together with deliver_at_ms"},
		{name: "neither delay field", body: `{"value": "v"}`, code: 11, msg: "delay_ms or deliver_at_ms is required"},
		{name: "null delay field counts as absent", body: `{"value": "v", "delay_ms": null}`, code: 11, msg: "delay_ms or deliver_at_ms is required"},
		{name: "neither delay field in a batch", body: `{"messages": [` + good + `, {"value": "w"}]}`, code: 11, msg: "messages[1]: delay_ms or deliver_at_ms is required"},
		{name: "delay_ms given twice", body: `{"value": "v", "delay_ms": 1, "delay_ms": 2}`, code: 11, msg: "delay_ms: given twice"},
		{name: "delay_ms a string", body: `{"value": "v", "delay_ms": "1000"}`, code: 11, msg: "delay_ms: must be an integer"},
		{name: "delay_ms a fraction", body: `{"value": "v", "delay_ms": 1.5}`, code: 11, msg: "delay_ms: must be an integer; got 1.5"},
		{name: "delay_ms over int64", body: `{"value": "v", "delay_ms": 9223372036854775808}`, code: 11, msg: "delay_ms: 9223372036854775808 is out of range"},
		{name: "deliver_at_ms a bool", body: `{"value": "v", "deliver_at_ms": true}`, code: 11, msg: "deliver_at_ms: must be an integer"},
		{name: "delay beyond delay.max", body: `{"value": "v", "delay_ms": 3600001}`, code: 11, msg: "delay_ms: 3600001 is beyond delay.max (1h0m0s)"},
		{name: "largest delay_ms", body: `{"value": "v", "delay_ms": 9223372036854775807}`, code: 11, msg: "delay_ms: 9223372036854775807 is beyond delay.max"},
		{name: "deliver_at_ms beyond delay.max", body: `{"value": "v", "deliver_at_ms": ` + strconv.FormatInt(future, 10) + `}`, code: 11, msg: "deliver_at_ms: " + strconv.FormatInt(future, 10) + " is 2h0m0s from now, beyond delay.max (1h0m0s)"},
		{name: "largest deliver_at_ms", body: `{"value": "v", "deliver_at_ms": 9223372036854775807}`, code: 11, msg: "beyond delay.max"},
		{name: "delay beyond delay.max in a batch", body: `{"messages": [` + good + `, {"value": "v", "delay_ms": 7200000}]}`, code: 11, msg: "messages[1].delay_ms: 7200000 is beyond delay.max"},
		{name: "id not a string", body: `{"value": "v", "delay_ms": 1, "id": 7}`, code: 11, msg: "id: must be a string"},
		{name: "id empty", body: `{"value": "v", "delay_ms": 1, "id": ""}`, code: 11, msg: "id: must not be empty"},
		{name: "loop not an object", body: `{"value": "v", "delay_ms": 1, "loop": 5}`, code: 11, msg: "loop: must be an object"},
		{name: "loop unknown field", body: `{"value": "v", "delay_ms": 1, "loop": {"every": 1}}`, code: 11, msg: `loop: unknown field "every"`},
		{name: "loop field given twice", body: `{"value": "v", "delay_ms": 1, "loop": {"times": 1, "times": 2}}`, code: 11, msg: "loop.times: given twice"},
		{name: "loop times a string", body: `{"value": "v", "delay_ms": 1, "loop": {"interval_ms": 1000, "times": "3"}}`, code: 11, msg: "loop.times: must be an integer"},
		{name: "loop interval a fraction", body: `{"value": "v", "delay_ms": 1, "loop": {"interval_ms": 1000.5, "times": 3}}`, code: 11, msg: "loop.interval_ms: must be an integer"},
		{name: "loop interval out of range", body: `{"value": "v", "delay_ms": 1, "loop": {"interval_ms": 9223372036854775807, "times": 3}}`, code: 11, msg: "loop.interval_ms: 9223372036854775807 is out of range"},
		{name: "loop times 0", body: `{"value": "v", "delay_ms": 1, "loop": {"interval_ms": 1000, "times": 0}}`, code: 11, msg: "loop.times: must be at least 1, got 0"},
		{name: "loop times missing", body: `{"value": "v", "delay_ms": 1, "loop": {"interval_ms": 1000}}`, code: 11, msg: "loop.times: must be at least 1"},
		{name: "loop interval 0", body: `{"value": "v", "delay_ms": 1, "loop": {"interval_ms": 0, "times": 3}}`, code: 11, msg: "loop.interval_ms: must be positive, got 0"},
		{name: "loop interval negative", body: `{"value": "v", "delay_ms": 1, "loop": {"interval_ms": -1000, "times": 3}}`, code: 11, msg: "loop.interval_ms: must be positive"},
		{name: "loop interval missing", body: `{"value": "v", "delay_ms": 1, "loop": {"times": 3}}`, code: 11, msg: "loop.interval_ms: must be positive"},
		{name: "loop interval under a second", body: `{"value": "v", "delay_ms": 1, "loop": {"interval_ms": 999, "times": 3}}`, code: 11, msg: "loop.interval_ms: at least 1000"},
		{name: "loop expiring before it fires", body: `{"value": "v", "deliver_at_ms": 2000, "loop": {"interval_ms": 1000, "times": 3, "expire_at_ms": 1000}}`, code: 11, msg: "loop.expire_at_ms: 1000 is before the first firing at 2000"},
		{name: "loop times 0 in a batch", body: `{"messages": [` + good + `, {"value": "v", "delay_ms": 1, "loop": {"interval_ms": 1000, "times": 0}}]}`, code: 11, msg: "messages[1].loop.times: must be at least 1"},
		{name: "malformed JSON", body: `{"value": "v", "delay_ms": 1,}`, code: 11, msg: "malformed JSON at line 1, column 29"},
		{name: "truncated", body: `{"value": "v", "loop": {"times": `, code: 11, msg: "malformed JSON"},
		{name: "empty body", body: ``, code: 11, msg: "request body is empty"},
		{name: "array body", body: `[` + good + `]`, code: 11, msg: "request body must be a JSON object"},
		{name: "unknown field", body: `{"value": "v", "delay": 1000}`, code: 11, msg: `unknown field "delay"`},
		{name: "unknown field in a batch", body: `{"messages": [{"value": "v", "delay_ms": 1, "due": 1}]}`, code: 11, msg: `messages[0]: unknown field "due"`},
		{name: "delay field next to messages", body: `{"delay_ms": 1, "messages": [` + good + `]}`, code: 11, msg: "delay_ms: a message field cannot be combined with messages"},
		{name: "missing value", body: `{"delay_ms": 1}`, code: 11, msg: "value or value_base64 is required"},
		{name: "bad partition", body: `{"value": "v", "delay_ms": 1, "partition": -3}`, code: 11, msg: "partition: must be -1"},
		{name: "bad topic", target: "/v1/topics/a%20b/delayed", body: good, code: 11, msg: "topic: character ' ' at byte 1"},
		{
			name: "too many messages", opts: Options{MaxBatchMessages: 1},
			body:   `{"messages": [` + good + `, ` + good + `]}`,
			status: 413, code: 16, msg: "2 messages exceed http.max_batch_messages (1)",
		},
		{
			name: "message too large", opts: Options{MaxMessageBytes: 3},
			body:   `{"value": "0123", "delay_ms": 1}`,
			status: 413, code: 16, msg: "message 0 is 4 bytes, over http.max_message_bytes (3)",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fd := &fakeDelayer{}
			s, fp := newDelayServer(t, tc.opts, fd)
			target := tc.target
			if target == "" {
				target = "/v1/topics/orders/delayed"
			}
			status, _, body := do(t, s.Handler(), http.MethodPost, target, tc.body)
			want := tc.status
			if want == 0 {
				want = http.StatusBadRequest
			}
			checkError(t, status, body, want, tc.code, tc.msg)
			if adds := fd.Adds(); len(adds) != 0 {
				t.Errorf("bad input reached the Delayer: %+v", adds)
			}
			if calls := fp.Calls(); len(calls) != 0 {
				t.Errorf("bad input reached the producer: %+v", calls)
			}
		})
	}
}

// The produce route stays strict: delay fields are unknown there.
func TestProduceRefusesDelayFields(t *testing.T) {
	s, fp := newDelayServer(t, Options{}, &fakeDelayer{})
	status, _, body := do(t, s.Handler(), http.MethodPost, "/v1/topics/orders/messages", `{"value": "v", "delay_ms": 1}`)
	checkError(t, status, body, http.StatusBadRequest, sdk.CodeIllegal, `unknown field "delay_ms"`)
	if len(fp.Calls()) != 0 {
		t.Error("refused input reached the producer")
	}
}

// checkDue asserts that due is wait after a moment between before and
// after.
func checkDue(t *testing.T, due, before, after time.Time, wait time.Duration) {
	t.Helper()
	if due.Before(before.Add(wait)) || due.After(after.Add(wait)) {
		t.Errorf("DueAt %s, want %s after the request (between %s and %s)", due, wait, before.Add(wait), after.Add(wait))
	}
}

func TestAddDelayed(t *testing.T) {
	t.Run("one message with every field", func(t *testing.T) {
		fd := &fakeDelayer{}
		s, fp := newDelayServer(t, Options{}, fd)
		before := time.Now()
		status, _, body := do(t, s.Handler(), http.MethodPost, "/v1/topics/orders/delayed",
			`{"key": "k", "value": "v", "headers": {"a": "1", "b": "2"}, "tags": "t", "partition": 3, "hash_id": 42,
			  "delay_ms": 90000, "id": "order-42-reminder", "loop": {"interval_ms": 60000, "times": 3, "expire_at_ms": 99999999999999}}`)
		after := time.Now()
		if status != http.StatusOK {
			t.Fatalf("status %d: %s", status, body)
		}
		adds := fd.Adds()
		if len(adds) != 1 || len(adds[0]) != 1 {
			t.Fatalf("Delayer.Add calls %+v, want one with one message", adds)
		}
		got := adds[0][0]
		checkDue(t, got.DueAt, before, after, 90*time.Second)
		checkJSON(t, body, `{"id": "order-42-reminder", "deliver_at_ms": `+strconv.FormatInt(got.DueAt.UnixMilli(), 10)+`}`)
		wantMsg := produce.Message{Key: []byte("k"), Value: []byte("v"), Tags: "t", Partition: 3, HashID: int64p(42),
			Headers: []sdk.Header{{Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("2")}}}
		wantLoop := &delay.Loop{Interval: time.Minute, Times: 3, Expire: time.UnixMilli(99999999999999)}
		if got.Topic != "orders" || got.ID != "order-42-reminder" || !reflect.DeepEqual(got.Msg, wantMsg) || !reflect.DeepEqual(got.Loop, wantLoop) {
			t.Errorf("added %#v\nwant topic orders, id order-42-reminder, %#v, loop %#v", got, wantMsg, wantLoop)
		}
		if len(fp.Calls()) != 0 {
			t.Error("a delay message was produced at once")
		}
	})

	t.Run("deliver_at_ms without an id", func(t *testing.T) {
		fd := &fakeDelayer{}
		s, _ := newDelayServer(t, Options{}, fd)
		at := time.Now().Add(10 * time.Minute).UnixMilli()
		status, _, body := do(t, s.Handler(), http.MethodPost, "/v1/topics/orders/delayed",
			`{"value_base64": "AP8=", "deliver_at_ms": `+strconv.FormatInt(at, 10)+`}`)
		if status != http.StatusOK {
			t.Fatalf("status %d: %s", status, body)
		}
		checkJSON(t, body, `{"id": "gen-0", "deliver_at_ms": `+strconv.FormatInt(at, 10)+`}`)
		got := fd.Adds()[0][0]
		want := delay.Message{Topic: "orders", Msg: produce.Message{Value: []byte{0, 0xff}, Partition: sdk.PartitionHash}, DueAt: time.UnixMilli(at)}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("added %#v\nwant %#v", got, want)
		}
	})

	t.Run("a due time in the past is accepted", func(t *testing.T) {
		fd := &fakeDelayer{}
		s, _ := newDelayServer(t, Options{}, fd)
		status, _, body := do(t, s.Handler(), http.MethodPost, "/v1/topics/orders/delayed", `{"value": "v", "deliver_at_ms": 0}`)
		if status != http.StatusOK {
			t.Fatalf("status %d: %s", status, body)
		}
		checkJSON(t, body, `{"id": "gen-0", "deliver_at_ms": 0}`)
	})

	t.Run("batch in request order", func(t *testing.T) {
		fd := &fakeDelayer{}
		s, _ := newDelayServer(t, Options{}, fd)
		before := time.Now()
		status, _, body := do(t, s.Handler(), http.MethodPost, "/v1/topics/orders/delayed",
			`{"messages": [{"value": "a", "delay_ms": 0}, {"value": "b", "delay_ms": 1500, "id": "x"}, {"value": "c", "deliver_at_ms": 5000}]}`)
		after := time.Now()
		if status != http.StatusOK {
			t.Fatalf("status %d: %s", status, body)
		}
		adds := fd.Adds()
		if len(adds) != 1 || len(adds[0]) != 3 {
			t.Fatalf("Delayer.Add calls %+v, want one with three messages", adds)
		}
		msgs := adds[0]
		for i, v := range []string{"a", "b", "c"} {
			if msgs[i].Topic != "orders" || string(msgs[i].Msg.Value) != v {
				t.Errorf("message %d: %+v, want topic orders value %s", i, msgs[i], v)
			}
		}
		checkDue(t, msgs[0].DueAt, before, after, 0)
		checkDue(t, msgs[1].DueAt, before, after, 1500*time.Millisecond)
		ms := func(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }
		checkJSON(t, body, `{"results": [
			{"id": "gen-0", "deliver_at_ms": `+ms(msgs[0].DueAt)+`, "code": 0},
			{"id": "x", "deliver_at_ms": `+ms(msgs[1].DueAt)+`, "code": 0},
			{"id": "gen-2", "deliver_at_ms": 5000, "code": 0}]}`)
	})
}

func TestAddDelayedOutcomes(t *testing.T) {
	ok := func(id string) delay.Result { return delay.Result{ID: id, DueAt: time.UnixMilli(7000)} }
	failed := func(id string, err error) delay.Result { return delay.Result{ID: id, Err: err} }
	down := sdk.Errorf(sdk.CodeUnavailable, "broker down")
	bad := sdk.Errorf(sdk.CodeIllegal, "id: taken")
	batch3 := `{"messages": [{"value": "a", "delay_ms": 1}, {"value": "b", "delay_ms": 1}, {"value": "c", "delay_ms": 1}]}`
	for _, tc := range []struct {
		name    string
		body    string
		results []delay.Result
		err     error
		status  int
		want    string
	}{
		{
			name: "call error keeps its code", body: batch3, err: errors.Join(errors.New("kafka"), down),
			status: 503, want: `{"error": {"code": 17, "message": "broker down"}}`,
		},
		{
			name: "deadline is a timeout", body: batch3, err: context.DeadlineExceeded,
			status: 504, want: `{"error": {"code": 12, "message": "timed out after 10s (http.request_timeout)"}}`,
		},
		{
			name: "plain call error is internal", body: batch3, err: errors.New("nil map"),
			status: 500, want: `{"error": {"code": 100, "message": "internal error"}}`,
		},
		{
			name: "one failed message answers its error", body: `{"value": "v", "delay_ms": 1}`, results: []delay.Result{failed("d", bad)},
			status: 400, want: `{"error": {"code": 11, "message": "id: taken"}}`,
		},
		{
			name: "all failed with one code", body: batch3, results: []delay.Result{failed("a", down), failed("b", down), failed("c", down)},
			status: 503, want: `{"error": {"code": 17, "message": "broker down"}}`,
		},
		{
			name: "some failed: 200 with a result per message", body: batch3, results: []delay.Result{ok("a"), failed("b", down), ok("c")},
			status: 200,
			want:   `{"results": [{"id": "a", "deliver_at_ms": 7000, "code": 0}, {"id": "b", "code": 17, "message": "broker down"}, {"id": "c", "deliver_at_ms": 7000, "code": 0}]}`,
		},
		{
			name: "different codes: 200 with a result per message", body: batch3, results: []delay.Result{failed("", bad), failed("b", down), failed("c", down)},
			status: 200,
			want:   `{"results": [{"code": 11, "message": "id: taken"}, {"id": "b", "code": 17, "message": "broker down"}, {"id": "c", "code": 17, "message": "broker down"}]}`,
		},
		{
			name: "a result count that does not match is internal", body: batch3, results: []delay.Result{ok("a")},
			status: 500, want: `{"error": {"code": 100, "message": "internal error"}}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fd := &fakeDelayer{add: func(context.Context, []delay.Message) ([]delay.Result, error) { return tc.results, tc.err }}
			s, _ := newDelayServer(t, Options{}, fd)
			status, _, body := do(t, s.Handler(), http.MethodPost, "/v1/topics/orders/delayed", tc.body)
			if status != tc.status {
				t.Errorf("status %d, want %d", status, tc.status)
			}
			checkJSON(t, body, tc.want)
		})
	}
}

func TestAddDelayedTimeout(t *testing.T) {
	fd := &fakeDelayer{add: func(ctx context.Context, _ []delay.Message) ([]delay.Result, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	s, _ := newDelayServer(t, Options{RequestTimeout: 50 * time.Millisecond}, fd)
	status, _, body := do(t, s.Handler(), http.MethodPost, "/v1/topics/orders/delayed", `{"value": "v", "delay_ms": 1}`)
	checkError(t, status, body, http.StatusGatewayTimeout, sdk.CodeTimeout, "timed out after 50ms (http.request_timeout)")
}

func TestCancelDelayed(t *testing.T) {
	for _, tc := range []struct {
		name      string
		target    string
		cancelErr error
		status    int
		want      string // exact JSON body
		cancelled *cancelCall
	}{
		{
			name: "cancel", target: "/v1/topics/orders/delayed/order-42-reminder", status: 200,
			want: `{"id": "order-42-reminder", "cancelled": true}`, cancelled: &cancelCall{"orders", "order-42-reminder"},
		},
		{
			name: "an escaped id", target: "/v1/topics/orders/delayed/a%20b", status: 200,
			want: `{"id": "a b", "cancelled": true}`, cancelled: &cancelCall{"orders", "a b"},
		},
		{
			name: "empty id", target: "/v1/topics/orders/delayed/", status: 400,
			want: `{"error": {"code": 11, "message": "id: required to cancel"}}`,
		},
		{
			name: "no id", target: "/v1/topics/orders/delayed", status: 400,
			want: `{"error": {"code": 11, "message": "id: required to cancel"}}`,
		},
		{
			name: "bad topic", target: "/v1/topics/a:b/delayed/x", status: 400,
			want: `{"error": {"code": 11, "message": "topic: character ':' at byte 1 is not allowed; a topic is made of [a-zA-Z0-9._-]"}}`,
		},
		{
			name: "the Delayer's error keeps its code", target: "/v1/topics/orders/delayed/x", cancelErr: sdk.Errorf(sdk.CodeUnavailable, "broker down"),
			status: 503, want: `{"error": {"code": 17, "message": "broker down"}}`, cancelled: &cancelCall{"orders", "x"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fd := &fakeDelayer{cancelErr: tc.cancelErr}
			s, _ := newDelayServer(t, Options{}, fd)
			status, _, body := do(t, s.Handler(), http.MethodDelete, tc.target, "")
			if status != tc.status {
				t.Errorf("status %d, want %d", status, tc.status)
			}
			checkJSON(t, body, tc.want)
			cancels := fd.Cancels()
			if tc.cancelled == nil && len(cancels) != 0 || tc.cancelled != nil && (len(cancels) != 1 || cancels[0] != *tc.cancelled) {
				t.Errorf("Delayer.Cancel calls %+v, want %+v", cancels, tc.cancelled)
			}
		})
	}
}

func TestKafkaSendDelayed(t *testing.T) {
	type reply struct {
		Code  sdk.Code     `json:"code"`
		Msg   string       `json:"msg"`
		Error *errorDetail `json:"error"`
	}
	for _, tc := range []struct {
		name   string
		header string // x-delay HTTP header
		body   string
		status int
		code   sdk.Code
		msg    string
		wait   time.Duration // of the added message, when status is 200
	}{
		{name: "decimal seconds as an HTTP header", header: "1.5", body: `{"topic": "t", "payload": "p", "headers": {"a": "1"}}`, status: 200, msg: "ok", wait: 1500 * time.Millisecond},
		{name: "seconds in the body's headers", body: `{"topic": "t", "payload": "p", "headers": {"a": "1", "X-Delay": "119"}}`, status: 200, msg: "ok", wait: 119 * time.Second},
		{name: "the body's x-delay wins", header: "5", body: `{"topic": "t", "payload": "p", "headers": {"a": "1", "x-delay": "2"}}`, status: 200, msg: "ok", wait: 2 * time.Second},
		{name: "zero", header: "0", body: `{"topic": "t", "payload": "p", "headers": {"a": "1"}}`, status: 200, msg: "ok"},
		{name: "negative", header: "-1", body: `{"topic": "t", "payload": "p"}`, status: 400, code: 11, msg: `x-delay: must not be negative; got "-1"`},
		{name: "negative in the body", body: `{"topic": "t", "payload": "p", "headers": {"x-delay": "-0.5"}}`, status: 400, code: 11, msg: `x-delay: must not be negative`},
		{name: "not a number", header: "soon", body: `{"topic": "t", "payload": "p"}`, status: 400, code: 11, msg: `x-delay: must be a number of seconds, like 10 or 1.5; got "soon"`},
		{name: "exponent", header: "1e3", body: `{"topic": "t", "payload": "p"}`, status: 400, code: 11, msg: "x-delay: must be a number of seconds"},
		{name: "two points", header: "1.2.3", body: `{"topic": "t", "payload": "p"}`, status: 400, code: 11, msg: "x-delay: must be a number of seconds"},
		{name: "beyond delay.max", header: "3601", body: `{"topic": "t", "payload": "p"}`, status: 400, code: 11, msg: "x-delay: 3601 seconds is beyond delay.max (1h0m0s)"},
		{name: "far beyond delay.max", header: "99999999999999999999", body: `{"topic": "t", "payload": "p"}`, status: 400, code: 11, msg: "beyond delay.max"},
		{name: "bad topic still refused", header: "1", body: `{"topic": "a b", "payload": "p"}`, status: 400, code: 11, msg: "topic: character ' '"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fd := &fakeDelayer{}
			s, fp := newDelayServer(t, Options{}, fd)
			req := httptest.NewRequest(http.MethodPost, "/v1/kafka/send", strings.NewReader(tc.body))
			if tc.header != "" {
				req.Header.Set("x-delay", tc.header)
			}
			rec := httptest.NewRecorder()
			before := time.Now()
			s.Handler().ServeHTTP(rec, req)
			after := time.Now()
			var r reply
			if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
				t.Fatalf("%d %s: %v", rec.Code, rec.Body, err)
			}
			if rec.Code != tc.status || r.Code != tc.code || !strings.Contains(r.Msg, tc.msg) {
				t.Fatalf("got %d code %d %q; want %d code %d containing %q", rec.Code, r.Code, r.Msg, tc.status, tc.code, tc.msg)
			}
			if len(fp.Calls()) != 0 {
				t.Errorf("a delay message was produced at once: %+v", fp.Calls())
			}
			adds := fd.Adds()
			if tc.status != 200 {
				if len(adds) != 0 || r.Error == nil || r.Error.Code != tc.code {
					t.Errorf("refused, yet Delayer.Add calls %+v; error body %+v", adds, r.Error)
				}
				return
			}
			if len(adds) != 1 || len(adds[0]) != 1 {
				t.Fatalf("Delayer.Add calls %+v, want one with one message", adds)
			}
			got := adds[0][0]
			checkDue(t, got.DueAt, before, after, tc.wait)
			want := produce.Message{Value: []byte("p"), Partition: sdk.PartitionHash, Headers: []sdk.Header{{Key: "a", Value: []byte("1")}}}
			if got.Topic != "t" || got.ID != "" || got.Loop != nil || !reflect.DeepEqual(got.Msg, want) {
				t.Errorf("added %#v\nwant topic t and %#v, without x-delay", got, want)
			}
		})
	}
}

func TestParseDelaySeconds(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{in: "0", want: 0},
		{in: "10", want: 10 * time.Second},
		{in: " 1.5 ", want: 1500 * time.Millisecond},
		{in: ".25", want: 250 * time.Millisecond},
		{in: "2.", want: 2 * time.Second},
		{in: "0.0004", want: 0},
		{in: "0.0006", want: time.Millisecond},
		{in: "1e400", err: "must be a number"},
		{in: "999999999999999999999999", want: math.MaxInt64},
		{in: "-3", err: "must not be negative"},
		{in: "+3", err: "must be a number"},
		{in: ".", err: "must be a number"},
		{in: "NaN", err: "must be a number"},
		{in: "Inf", err: "must be a number"},
		{in: "0x10", err: "must be a number"},
		{in: "1_000", err: "must be a number"},
	} {
		got, err := parseDelaySeconds(tc.in)
		switch {
		case tc.err != "" && (sdk.CodeOf(err) != sdk.CodeIllegal || !strings.Contains(err.Error(), tc.err) || !strings.HasPrefix(err.Error(), "x-delay: ")):
			t.Errorf("parseDelaySeconds(%q) = %v, %v; want code 11 naming x-delay, containing %q", tc.in, got, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("parseDelaySeconds(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestDelayMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, _ := newDelayServer(t, Options{Registry: reg}, &fakeDelayer{})
	h := s.Handler()
	do(t, h, http.MethodPost, "/v1/topics/orders/delayed", `{"value": "v", "delay_ms": 1}`)
	do(t, h, http.MethodPost, "/v1/topics/invoices/delayed", `{"value": "v", "delay_ms": -1}`)
	do(t, h, http.MethodDelete, "/v1/topics/orders/delayed/x", "")
	_, _, body := do(t, h, http.MethodGet, "/metrics", "")
	text := string(body)
	for _, want := range []string{
		`mqgate_http_requests_total{code="200",method="POST",route="/v1/topics/:topic/delayed"} 1`,
		`mqgate_http_requests_total{code="400",method="POST",route="/v1/topics/:topic/delayed"} 1`,
		`mqgate_http_requests_total{code="200",method="DELETE",route="/v1/topics/:topic/delayed/:id"} 1`,
		`mqgate_http_request_duration_seconds_count{method="POST",route="/v1/topics/:topic/delayed"} 2`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func FuzzDecodeDelayed(f *testing.F) {
	for _, seed := range []string{
		`{"value": "v", "delay_ms": 1000}`,
		`{"key": "k", "value": "v", "headers": {"a": "1"}, "tags": "t", "partition": 3, "hash_id": -9, "deliver_at_ms": 1700000000000, "id": "x",
		  "loop": {"interval_ms": 1000, "times": 3, "expire_at_ms": 1800000000000}}`,
		`{"messages": [{"value": "a", "delay_ms": 0}, {"value_base64": "AP8=", "deliver_at_ms": 5}]}`,
		`{"value": "v", "delay_ms": 1, "deliver_at_ms": 2}`,
		`{"value": "v", "delay_ms": -1}`,
		`{"value": "v", "delay_ms": 9223372036854775807}`,
		`{"value": "v", "delay_ms": 1, "loop": {"times": null, "interval_ms": 1e3}}`,
		`{"value": "v", "delay_ms": 1, "loop": [1]}`,
		`{"messages": []}`,
		``,
	} {
		f.Add([]byte(seed))
	}
	now := time.UnixMilli(1_700_000_000_000)
	f.Fuzz(func(t *testing.T, body []byte) {
		msgs, batch, err := decodeDelayed(body, now, testMax)
		if err != nil {
			var e *sdk.Error
			if !errors.As(err, &e) || e.Code != sdk.CodeIllegal || e.Msg == "" {
				t.Fatalf("error %#v is not an *sdk.Error with code %d and a message", err, sdk.CodeIllegal)
			}
			return
		}
		if len(msgs) == 0 || !batch && len(msgs) != 1 {
			t.Fatalf("%d messages, batch %v", len(msgs), batch)
		}
		for i, m := range msgs {
			if m.Msg.Value == nil || m.Msg.Partition < sdk.PartitionRandom || m.Topic != "" {
				t.Fatalf("message %d: %+v", i, m)
			}
			if m.DueAt.Sub(now) > testMax || m.DueAt.Before(time.UnixMilli(0)) {
				t.Fatalf("message %d is due at %s, outside [epoch, now + %s]", i, m.DueAt, testMax)
			}
			if l := m.Loop; l != nil && l.Interval%time.Millisecond != 0 {
				t.Fatalf("message %d: loop interval %s is not whole milliseconds", i, l.Interval)
			}
		}
	})
}
