package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqgate/mqgate/core/consume"
	"github.com/mqgate/mqgate/sdk"
)

// fakeConsumer records calls, answers Pull, Stats and Fetch with its
// funcs (or empty successes), and keeps a batch-id cursor with seed 004's
// rules over the messages of next.
type fakeConsumer struct {
	pull     func(ctx context.Context, group, topic string, max int, wait time.Duration) (consume.Batch, error)
	ackErr   error
	stats    func(ctx context.Context, group, topic string) ([]consume.Stats, error)
	fetch    func(ctx context.Context, cluster string, offsets map[string]map[string]int64, max int, wait time.Duration) ([]consume.QidMessages, error)
	maxBatch int // 0: 100
	sessions []consume.SessionView

	mu    sync.Mutex
	calls []string // "ack", "pull", ... in call order
	pulls []pullArgs
	acks  [][]consume.Ack

	fetchArgs  []fetchArgs
	commitArgs []commitArgs

	// The batch-id cursor: batches[i] is batch i+1; next is the offset of
	// the next message handed out.
	batches      [][]consume.Message
	acked        int64
	next         int64
	fetchNewArgs []fetchNewArgs
}

type pullArgs struct {
	group, topic string
	max          int
	wait         time.Duration
}

type fetchArgs struct {
	cluster string
	offsets map[string]map[string]int64
	max     int
	wait    time.Duration
}

type commitArgs struct {
	cluster, group string
	offsets        map[string]map[string]int64
}

type fetchNewArgs struct {
	group, topic string
	size         int
	ackID        *int64
}

var _ consume.Consumer = (*fakeConsumer)(nil)

func (f *fakeConsumer) record(call string) {
	f.mu.Lock()
	f.calls = append(f.calls, call)
	f.mu.Unlock()
}

func (f *fakeConsumer) Pull(ctx context.Context, group, topic string, max int, wait time.Duration) (consume.Batch, error) {
	f.mu.Lock()
	f.calls = append(f.calls, "pull")
	f.pulls = append(f.pulls, pullArgs{group, topic, max, wait})
	f.mu.Unlock()
	if f.pull != nil {
		return f.pull(ctx, group, topic, max, wait)
	}
	return consume.Batch{Group: group, Topic: topic}, nil
}

func (f *fakeConsumer) Ack(_ context.Context, acks []consume.Ack) error {
	f.mu.Lock()
	f.calls = append(f.calls, "ack")
	f.acks = append(f.acks, acks)
	f.mu.Unlock()
	return f.ackErr
}

func (f *fakeConsumer) Stats(ctx context.Context, group, topic string) ([]consume.Stats, error) {
	f.record("stats " + group + " " + topic)
	if f.stats != nil {
		return f.stats(ctx, group, topic)
	}
	return nil, nil
}

func (f *fakeConsumer) DeadLetterTopic(group string) string { return group + "-dlq" }

func (f *fakeConsumer) Sessions(group string) []consume.SessionView {
	f.record("sessions " + group)
	return slices.Clone(f.sessions)
}

func (f *fakeConsumer) Fetch(ctx context.Context, group, cluster string, offsets map[string]map[string]int64, max int, wait time.Duration) ([]consume.QidMessages, error) {
	f.mu.Lock()
	f.calls = append(f.calls, "fetch")
	f.fetchArgs = append(f.fetchArgs, fetchArgs{cluster, offsets, max, wait})
	f.mu.Unlock()
	if f.fetch != nil {
		return f.fetch(ctx, cluster, offsets, max, wait)
	}
	return nil, nil
}

func (f *fakeConsumer) Commit(_ context.Context, cluster, group string, offsets map[string]map[string]int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "commit")
	f.commitArgs = append(f.commitArgs, commitArgs{cluster, group, offsets})
	return nil
}

func (f *fakeConsumer) BatchInfo(context.Context, string, string) (consume.BatchInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return consume.BatchInfo{AckedBatchID: f.acked, SentBatchID: int64(len(f.batches))}, nil
}

func (f *fakeConsumer) FetchNew(_ context.Context, group, topic string, size int, ackID *int64) (int64, []consume.Message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fetchNewArgs = append(f.fetchNewArgs, fetchNewArgs{group, topic, size, ackID})
	if ackID != nil {
		if err := f.ackLocked(*ackID); err != nil {
			return 0, nil, err
		}
	}
	var msgs []consume.Message
	for range size {
		msgs = append(msgs, consume.Message{
			Topic: topic, Qid: "0", Offset: f.next, Value: fmt.Appendf(nil, "m%d", f.next),
			Timestamp: time.UnixMilli(1700000000000 + f.next), Attempt: 1,
		})
		f.next++
	}
	f.batches = append(f.batches, msgs)
	return int64(len(f.batches)), msgs, nil
}

func (f *fakeConsumer) FetchOld(_ context.Context, group, topic string, id int64) ([]consume.Message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if sent := int64(len(f.batches)); id <= f.acked || id > sent {
		return nil, sdk.Errorf(sdk.CodeIllegal, "old_batch_id: %d is outside %d..%d (acked+1..sent)", id, f.acked+1, sent)
	}
	return f.batches[id-1], nil
}

func (f *fakeConsumer) AckBatch(_ context.Context, group, topic string, id int64) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.ackLocked(id); err != nil {
		return 0, err
	}
	return f.acked, nil
}

func (f *fakeConsumer) ackLocked(id int64) error {
	if sent := int64(len(f.batches)); id < f.acked || id > sent {
		return sdk.Errorf(sdk.CodeIllegal, "ack_batch_id: %d is outside %d..%d (acked..sent)", id, f.acked, sent)
	}
	f.acked = id
	return nil
}

func (f *fakeConsumer) MaxBatch() int {
	if f.maxBatch == 0 {
		return 100
	}
	return f.maxBatch
}

func (f *fakeConsumer) callLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeConsumer) ackCalls() [][]consume.Ack {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]consume.Ack(nil), f.acks...)
}

func (f *fakeConsumer) pullCalls() []pullArgs {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]pullArgs(nil), f.pulls...)
}

// consumeServer is a Server over fake with quiet logs.
func consumeServer(t *testing.T, opts Options, fake *fakeConsumer) http.Handler {
	t.Helper()
	if fake != nil {
		opts.Consumer = fake
	}
	return newTestServer(t, opts, &fakeProducer{}, nil).Handler()
}

// checkOK asserts a 200 answer whose body equals want as JSON.
func checkOK(t *testing.T, status int, body []byte, want string) {
	t.Helper()
	if status != http.StatusOK {
		t.Fatalf("status %d, body %s; want 200", status, body)
	}
	checkJSON(t, body, want)
}

func TestConsumeNotEnabled(t *testing.T) {
	h := consumeServer(t, Options{}, nil)
	for _, tc := range []struct{ method, target, body string }{
		{"POST", "/v1/groups/g/topics/t/pull", `{}`},
		{"POST", "/v1/groups/g/topics/t/ack", `{"qid": "0", "success": [1]}`},
		{"GET", "/v1/groups/g/stats", ``},
		{"POST", "/v1/fetch", `{"offsets": {"t": {"0": 1}}}`},
		{"POST", "/v1/commit", `{"group": "g", "offsets": {"t": {"0": 1}}}`},
		{"GET", "/v1/groups/g/topics/t/batches/info", ``},
		{"GET", "/v1/groups/g/topics/t/batches/fetch_new?batch_size=1", ``},
		{"GET", "/v1/groups/g/topics/t/batches/fetch_old?old_batch_id=1", ``},
		{"POST", "/v1/groups/g/topics/t/batches/ack", `{"ack_batch_id": 1}`},
	} {
		status, _, body := do(t, h, tc.method, tc.target, tc.body)
		checkError(t, status, body, http.StatusBadRequest, sdk.CodeIllegal, "consumption is not enabled")
	}
	// Without http.batch_default the root routes do not exist.
	status, _, body := do(t, h, "GET", "/info", "")
	checkError(t, status, body, http.StatusNotFound, sdk.CodeNotFound, "no such route")
}

func TestPull(t *testing.T) {
	fake := &fakeConsumer{pull: func(_ context.Context, group, topic string, max int, wait time.Duration) (consume.Batch, error) {
		return consume.Batch{Group: group, Topic: topic, Qid: "3", Messages: []consume.Message{
			{Topic: topic, Qid: "3", Offset: 41, Key: []byte("k"), Value: []byte("hello"),
				Headers:   []sdk.Header{{Key: "b", Value: []byte("2")}, {Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("3")}},
				Tags:      "tag",
				Timestamp: time.UnixMilli(1700000000123), Attempt: 2},
			{Topic: topic, Qid: "3", Offset: 42, Key: []byte{0xff}, Value: []byte{0, 0xff}, Headers: []sdk.Header{{Key: "bin", Value: []byte{0xfe}}}, Attempt: 1},
			{Topic: topic, Qid: "3", Offset: 43, Value: nil, Attempt: 1},
		}}, nil
	}}
	h := consumeServer(t, Options{}, fake)
	status, _, body := do(t, h, "POST", "/v1/groups/cg.pay/topics/orders/pull",
		`{"max_messages": 10, "max_wait_ms": 250, "ack": {"qid": "3", "success": [39, 37], "fail": [40]}}`)
	checkOK(t, status, body, `{"context": {"group": "cg.pay", "topic": "orders", "qid": "3"}, "messages": [
		{"key": "k", "value": "hello", "headers": {"b": "2", "a": "1", "b": "3"}, "tags": "tag", "offset": 41, "qid": "3", "timestamp_ms": 1700000000123, "attempt": 2},
		{"key_base64": "/w==", "value_base64": "AP8=", "headers_base64": {"bin": "/g=="}, "offset": 42, "qid": "3", "timestamp_ms": 0, "attempt": 1},
		{"value": "", "offset": 43, "qid": "3", "timestamp_ms": 0, "attempt": 1}]}`)
	// Repeated header names survive on the wire, in order.
	if !strings.Contains(string(body), `"headers":{"b":"2","a":"1","b":"3"}`) {
		t.Errorf("headers not in record order with repeats: %s", body)
	}
	wantAcks := [][]consume.Ack{{{Group: "cg.pay", Topic: "orders", Qid: "3", Success: []int64{39, 37}, Fail: []int64{40}}}}
	if got := fake.ackCalls(); !reflect.DeepEqual(got, wantAcks) {
		t.Errorf("acks %+v, want %+v", got, wantAcks)
	}
	if got := fake.callLog(); !reflect.DeepEqual(got, []string{"ack", "pull"}) {
		t.Errorf("calls %v, want ack then pull", got)
	}
	if p := fake.pullCalls()[0]; p != (pullArgs{"cg.pay", "orders", 10, 250 * time.Millisecond}) {
		t.Errorf("Pull(%+v), want cg.pay orders 10 250ms", p)
	}

	// Nothing arrived: an empty list, never null; an integer qid works too.
	fake.pull = nil
	status, _, body = do(t, h, "POST", "/v1/groups/g/topics/t/pull", `{"ack": {"qid": 7, "success": [1]}}`)
	checkOK(t, status, body, `{"context": {"group": "g", "topic": "t", "qid": ""}, "messages": []}`)
	if got := fake.ackCalls(); len(got) != 2 || got[1][0].Qid != "7" {
		t.Errorf("acks %+v, want qid 7 second", got)
	}
}

func TestPullDefaultsAndCaps(t *testing.T) {
	fake := &fakeConsumer{maxBatch: 50}
	h := consumeServer(t, Options{RequestTimeout: 2 * time.Second}, fake)
	for _, tc := range []struct {
		body     string
		wantMax  int
		wantWait time.Duration
	}{
		{``, DefaultPullMessages, DefaultPullWait},
		{`{}`, DefaultPullMessages, DefaultPullWait},
		{`{"max_messages": null, "max_wait_ms": 0}`, DefaultPullMessages, 0},
		{`{"max_messages": 1000000, "max_wait_ms": 99999999999}`, 50, 2 * time.Second},
		{`{"ack": {"qid": "0", "success": []}}`, DefaultPullMessages, DefaultPullWait},
	} {
		status, _, body := do(t, h, "POST", "/v1/groups/g/topics/t/pull", tc.body)
		if status != 200 {
			t.Fatalf("%s: %d %s", tc.body, status, body)
		}
		calls := fake.pullCalls()
		if p := calls[len(calls)-1]; p.max != tc.wantMax || p.wait != tc.wantWait {
			t.Errorf("%s: Pull max %d wait %s, want %d %s", tc.body, p.max, p.wait, tc.wantMax, tc.wantWait)
		}
	}
	if n := len(fake.ackCalls()); n != 0 {
		t.Errorf("an ack without offsets made %d Ack calls, want none", n)
	}
}

func TestPullAndAckBadInput(t *testing.T) {
	fake := &fakeConsumer{}
	h := consumeServer(t, Options{MaxBatchMessages: 3}, fake)
	for _, tc := range []struct {
		name, target, body string
		status             int
		code               sdk.Code
		msg                string
	}{
		{"bad group", "/v1/groups/g%20h/topics/t/pull", `{}`, 400, 11, "group: character ' ' at byte 1 is not allowed; a group is made of [a-zA-Z0-9._-]"},
		{"dot group", "/v1/groups/../topics/t/pull", `{}`, 400, 11, `group: ".." is not a valid group name`},
		{"bad topic", "/v1/groups/g/topics/t%21/pull", `{}`, 400, 11, "topic: character '!' at byte 1"},
		{"zero max", "/v1/groups/g/topics/t/pull", `{"max_messages": 0}`, 400, 11, "max_messages: must be >= 1; got 0"},
		{"negative max", "/v1/groups/g/topics/t/pull", `{"max_messages": -5}`, 400, 11, "max_messages: must be >= 1; got -5"},
		{"text max", "/v1/groups/g/topics/t/pull", `{"max_messages": "5"}`, 400, 11, "max_messages: must be an integer"},
		{"huge max", "/v1/groups/g/topics/t/pull", `{"max_messages": 1e3}`, 400, 11, "max_messages: must be an integer; got 1e3"},
		{"negative wait", "/v1/groups/g/topics/t/pull", `{"max_wait_ms": -1}`, 400, 11, "max_wait_ms: must be >= 0; got -1"},
		{"ack without qid", "/v1/groups/g/topics/t/pull", `{"ack": {"success": [1]}}`, 400, 11, "ack.qid: required"},
		{"ack empty qid", "/v1/groups/g/topics/t/pull", `{"ack": {"qid": "", "success": [1]}}`, 400, 11, "ack.qid: must not be empty"},
		{"ack fractional offset", "/v1/groups/g/topics/t/pull", `{"ack": {"qid": "0", "success": [1.5]}}`, 400, 11, "ack.success[0]: must be an integer; got 1.5"},
		{"ack text offset", "/v1/groups/g/topics/t/pull", `{"ack": {"qid": "0", "fail": [1, "2"]}}`, 400, 11, "ack.fail[1]: must be an integer"},
		{"ack negative offset", "/v1/groups/g/topics/t/pull", `{"ack": {"qid": "0", "fail": [-2]}}`, 400, 11, "ack.fail[0]: must be >= 0; got -2"},
		{"ack unknown field", "/v1/groups/g/topics/t/pull", `{"ack": {"qid": "0", "offsets": [1]}}`, 400, 11, `ack: unknown field "offsets"`},
		{"ack too many", "/v1/groups/g/topics/t/pull", `{"ack": {"qid": "0", "success": [1, 2], "fail": [3, 4]}}`, 413, 16, "an ack of 4 offsets exceeds http.max_batch_messages (3)"},
		{"unknown field", "/v1/groups/g/topics/t/pull", `{"max": 1}`, 400, 11, `unknown field "max"`},
		{"twice", "/v1/groups/g/topics/t/pull", `{"max_wait_ms": 1, "max_wait_ms": 2}`, 400, 11, "max_wait_ms: given twice"},
		{"not an object", "/v1/groups/g/topics/t/pull", `[]`, 400, 11, "request body must be a JSON object"},
		{"malformed", "/v1/groups/g/topics/t/pull", `{"max_messages": 1,}`, 400, 11, "malformed JSON at line 1"},
		{"trailing data", "/v1/groups/g/topics/t/pull", `{} {}`, 400, 11, "unexpected data after the top-level object"},
		{"ack: empty body", "/v1/groups/g/topics/t/ack", ``, 400, 11, "request body is empty"},
		{"ack: no qid", "/v1/groups/g/topics/t/ack", `{"success": [1]}`, 400, 11, "qid: required"},
		{"ack: no offsets", "/v1/groups/g/topics/t/ack", `{"qid": "0"}`, 400, 11, "success or fail: at least one offset is required"},
		{"ack: offsets not array", "/v1/groups/g/topics/t/ack", `{"qid": "0", "success": 1}`, 400, 11, "success: must be an array of offsets"},
		{"ack: qid object", "/v1/groups/g/topics/t/ack", `{"qid": {}, "success": [1]}`, 400, 11, "qid: must be a string or an integer"},
		{"ack: bad group", "/v1/groups/g:h/topics/t/ack", `{"qid": "0", "success": [1]}`, 400, 11, "group: character ':'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, _, body := do(t, h, "POST", tc.target, tc.body)
			checkError(t, status, body, tc.status, tc.code, tc.msg)
		})
	}
	if calls := fake.callLog(); len(calls) != 0 {
		t.Errorf("consumer called for bad input: %v", calls)
	}
}

func TestAck(t *testing.T) {
	fake := &fakeConsumer{}
	h := consumeServer(t, Options{}, fake)
	status, _, body := do(t, h, "POST", "/v1/groups/g/topics/t/ack", `{"qid": "2", "success": [5, 3], "fail": [4]}`)
	checkOK(t, status, body, `{"acked": 3}`)
	want := [][]consume.Ack{{{Group: "g", Topic: "t", Qid: "2", Success: []int64{5, 3}, Fail: []int64{4}}}}
	if got := fake.ackCalls(); !reflect.DeepEqual(got, want) {
		t.Errorf("acks %+v, want %+v", got, want)
	}
}

func TestConsumeErrorsMapToStatus(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
		code   sdk.Code
		msg    string
	}{
		{sdk.Errorf(sdk.CodeNotFound, "qid 2 of t is not owned by this gateway"), 404, 19, "qid 2 of t is not owned"},
		{sdk.Errorf(sdk.CodeIllegal, "offset 9 of qid 2 was never handed out"), 400, 11, "never handed out"},
		{sdk.Errorf(sdk.CodeUnavailable, "broker down"), 503, 17, "broker down"},
		{context.DeadlineExceeded, 504, 12, "http.request_timeout"},
		{fmt.Errorf("secret"), 500, 100, "internal error"},
	} {
		fake := &fakeConsumer{ackErr: tc.err}
		h := consumeServer(t, Options{}, fake)
		status, _, body := do(t, h, "POST", "/v1/groups/g/topics/t/ack", `{"qid": "2", "success": [9]}`)
		checkError(t, status, body, tc.status, tc.code, tc.msg)
		// A piggybacked ack the gateway cannot apply (11, 19) does not
		// block the pull; any other failure fails it before pulling.
		status, _, body = do(t, h, "POST", "/v1/groups/g/topics/t/pull", `{"ack": {"qid": "2", "success": [9]}}`)
		if tc.code == sdk.CodeIllegal || tc.code == sdk.CodeNotFound {
			if status != 200 || len(fake.pullCalls()) != 1 {
				t.Errorf("pull after an ack refused with %d: status %d, %d pulls; want 200 and one pull", tc.code, status, len(fake.pullCalls()))
			}
		} else {
			checkError(t, status, body, tc.status, tc.code, tc.msg)
			if n := len(fake.pullCalls()); n != 0 {
				t.Errorf("Pull called %d times after its ack failed", n)
			}
		}
		fake.pull = func(context.Context, string, string, int, time.Duration) (consume.Batch, error) {
			return consume.Batch{}, tc.err
		}
		status, _, body = do(t, h, "POST", "/v1/groups/g/topics/t/pull", `{}`)
		checkError(t, status, body, tc.status, tc.code, tc.msg)
	}
}

func TestStats(t *testing.T) {
	fake := &fakeConsumer{stats: func(_ context.Context, group, topic string) ([]consume.Stats, error) {
		return []consume.Stats{
			{Group: group, Topic: "a", ConsumeOffsets: map[string]int64{"0": 5}, ProduceOffsets: map[string]int64{"0": 9}, Lag: 4},
			{Group: group, Topic: "b"},
			{Group: group, Topic: "c", ConsumeOffsets: map[string]int64{"0": 1000000, "1": 2}, ProduceOffsets: map[string]int64{"0": 11, "1": 3}, Lag: 1, BeyondEnd: map[string]int64{"0": 999989}},
		}, nil
	}}
	h := consumeServer(t, Options{}, fake)
	status, _, body := do(t, h, "GET", "/v1/groups/g/stats", "")
	checkOK(t, status, body, `{"stats": [
		{"group": "g", "topic": "a", "consume_offsets": {"0": 5}, "produce_offsets": {"0": 9}, "lag": 4},
		{"group": "g", "topic": "b", "consume_offsets": {}, "produce_offsets": {}, "lag": 0},
		{"group": "g", "topic": "c", "consume_offsets": {"0": 1000000, "1": 2}, "produce_offsets": {"0": 11, "1": 3}, "lag": 1, "beyond_end": {"0": 999989}}]}`)
	do(t, h, "GET", "/v1/groups/g/stats?topic=a", "")
	if got := fake.callLog(); !reflect.DeepEqual(got, []string{"stats g ", "stats g a"}) {
		t.Errorf("calls %v, want every topic, then a", got)
	}
	fake.stats = nil
	status, _, body = do(t, h, "GET", "/v1/groups/g/stats", "")
	checkOK(t, status, body, `{"stats": []}`)

	status, _, body = do(t, h, "GET", "/v1/groups/g/stats?topic=", "")
	checkError(t, status, body, 400, 11, "topic: must not be empty")
	status, _, body = do(t, h, "GET", "/v1/groups/g@h/stats", "")
	checkError(t, status, body, 400, 11, "group: character '@'")
}

// GET /v1/admin/groups/{g} is the group's stats and its sessions on this
// gateway with the messages each has out; ?topic= narrows both.
func TestDescribeGroup(t *testing.T) {
	fake := &fakeConsumer{
		stats: func(_ context.Context, group, topic string) ([]consume.Stats, error) {
			return []consume.Stats{{Group: group, Topic: "a", ConsumeOffsets: map[string]int64{"0": 5}, ProduceOffsets: map[string]int64{"0": 9}, Lag: 4}}, nil
		},
		sessions: []consume.SessionView{
			{Cluster: "local", Topics: []string{"a"}, IdleMs: 12, Qids: []consume.QidView{{Topic: "a", Qid: "0", Committed: 5, CommitPoint: 6,
				Buffered: 2, Delivered: 1, Retrying: 1, Flights: []consume.FlightView{
					{Offset: 6, State: "retrying", Attempt: 2, RedoAtMs: 1767225600000, LastError: "failed by the client"},
					{Offset: 7, State: "delivered", Attempt: 1, DeadlineMs: 1767225630000}}}}},
			{Cluster: "local", Topics: []string{"b"}, Reader: true, Qids: []consume.QidView{}},
		},
	}
	h := consumeServer(t, Options{}, fake)
	status, _, body := do(t, h, "GET", "/v1/admin/groups/g?topic=a", "")
	checkOK(t, status, body, `{"group": "g",
		"stats": [{"group": "g", "topic": "a", "consume_offsets": {"0": 5}, "produce_offsets": {"0": 9}, "lag": 4}],
		"sessions": [{"cluster": "local", "topics": ["a"], "reader": false, "idle_ms": 12, "qids": [
			{"topic": "a", "qid": "0", "committed": 5, "commit_point": 6, "buffered": 2, "delivered": 1, "retrying": 1, "dead_lettering": 0,
			 "flights": [{"offset": 6, "state": "retrying", "attempt": 2, "redo_at_ms": 1767225600000, "last_error": "failed by the client"},
			             {"offset": 7, "state": "delivered", "attempt": 1, "deadline_ms": 1767225630000}]}]}],
		"members": []}`)
	status, _, body = do(t, h, "GET", "/v1/admin/groups/g", "")
	if status != 200 || !strings.Contains(string(body), `"topics":["b"],"reader":true`) {
		t.Errorf("without a topic: %d %s; want both sessions", status, body)
	}
	status, _, body = do(t, h, "GET", "/v1/admin/groups/g?topc=a", "")
	checkError(t, status, body, 400, 11, "topc: unknown query parameter; known: topic")
	status, _, body = do(t, h, "GET", "/v1/admin/groups/g@h", "")
	checkError(t, status, body, 400, 11, "group: character '@'")
}

func TestFetchAndCommit(t *testing.T) {
	fake := &fakeConsumer{maxBatch: 20, fetch: func(_ context.Context, cluster string, offsets map[string]map[string]int64, max int, wait time.Duration) ([]consume.QidMessages, error) {
		return []consume.QidMessages{
			{Topic: "t", Qid: "0", NextOffset: 12, Messages: []consume.Message{{Qid: "0", Offset: 11, Value: []byte("x"), Attempt: 1}}},
			{Topic: "t", Qid: "1", NextOffset: 4},
		}, nil
	}}
	h := consumeServer(t, Options{}, fake)
	status, _, body := do(t, h, "POST", "/v1/fetch",
		`{"cluster": "east", "group": "g", "consumer_id": "c-1", "offsets": {"t": {"0": 11, "1": 4}}, "max_messages": 500, "max_wait_ms": 10}`)
	checkOK(t, status, body, `{"results": [
		{"topic": "t", "qid": "0", "next_offset": 12, "messages": [{"value": "x", "offset": 11, "qid": "0", "timestamp_ms": 0, "attempt": 1}]},
		{"topic": "t", "qid": "1", "next_offset": 4, "messages": []}]}`)
	want := fetchArgs{"east", map[string]map[string]int64{"t": {"0": 11, "1": 4}}, 20, 10 * time.Millisecond}
	if got := fake.fetchArgs[0]; !reflect.DeepEqual(got, want) {
		t.Errorf("Fetch(%+v), want %+v", got, want)
	}

	status, _, body = do(t, h, "POST", "/v1/commit", `{"cluster": "east", "group": "g", "offsets": {"t": {"0": 12}}}`)
	checkOK(t, status, body, `{"committed": true}`)
	wantC := commitArgs{"east", "g", map[string]map[string]int64{"t": {"0": 12}}}
	if got := fake.commitArgs[0]; !reflect.DeepEqual(got, wantC) {
		t.Errorf("Commit(%+v), want %+v", got, wantC)
	}

	for _, tc := range []struct{ name, target, body, msg string }{
		{"fetch: empty", "/v1/fetch", ``, "request body is empty"},
		{"fetch: no offsets, no group", "/v1/fetch", `{"cluster": "east"}`, "offsets: required without a group"},
		{"fetch: empty offsets", "/v1/fetch", `{"offsets": {"t": {}}}`, "offsets: at least one offset is required"},
		{"fetch: bad topic", "/v1/fetch", `{"offsets": {"a b": {"0": 1}}}`, `offsets["a b"]: topic: character ' '`},
		{"fetch: empty qid", "/v1/fetch", `{"offsets": {"t": {"": 1}}}`, `offsets["t"][""]: the qid must not be empty`},
		{"fetch: text offset", "/v1/fetch", `{"offsets": {"t": {"0": "1"}}}`, `offsets["t"]["0"]: must be an integer`},
		{"fetch: negative offset", "/v1/fetch", `{"offsets": {"t": {"0": -1}}}`, `offsets["t"]["0"]: must be >= 0; got -1`},
		{"fetch: repeated qid", "/v1/fetch", `{"offsets": {"t": {"0": 1, "0": 2}}}`, `offsets["t"]["0"]: given twice`},
		{"fetch: bad group", "/v1/fetch", `{"group": "", "offsets": {"t": {"0": 1}}}`, "group: must not be empty"},
		{"fetch: zero max", "/v1/fetch", `{"offsets": {"t": {"0": 1}}, "max_messages": 0}`, "max_messages: must be >= 1"},
		{"commit: no group", "/v1/commit", `{"offsets": {"t": {"0": 1}}}`, "group: required"},
		{"commit: no offsets", "/v1/commit", `{"group": "g"}`, "offsets: required"},
		{"commit: unknown field", "/v1/commit", `{"group": "g", "offsets": {"t": {"0": 1}}, "max_messages": 1}`, `unknown field "max_messages"`},
		{"commit: cluster not a string", "/v1/commit", `{"cluster": 1, "group": "g", "offsets": {"t": {"0": 1}}}`, "cluster: must be a string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, _, body := do(t, h, "POST", tc.target, tc.body)
			checkError(t, status, body, 400, 11, tc.msg)
		})
	}
	if len(fake.fetchArgs) != 1 || len(fake.commitArgs) != 1 {
		t.Errorf("consumer called for bad input: %v", fake.callLog())
	}

	// A group without offsets asks for the group's queues.
	status, _, body = do(t, h, "POST", "/v1/fetch", `{"group": "g"}`)
	if status != 200 || len(fake.fetchArgs) != 2 || fake.fetchArgs[1].offsets != nil {
		t.Errorf("fetch of a group's queues: %d %s, %+v", status, body, fake.fetchArgs)
	}
}

func TestConsumeMetricsUseRoutePatterns(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := consumeServer(t, Options{Registry: reg}, &fakeConsumer{})
	do(t, h, "POST", "/v1/groups/g/topics/t/pull", `{"max_wait_ms": 0}`)
	_, _, body := do(t, h, "GET", "/metrics", "")
	want := `mqgate_http_requests_total{code="200",method="POST",route="/v1/groups/:group/topics/:topic/pull"} 1`
	if !strings.Contains(string(body), want) {
		t.Errorf("metrics lack %s", want)
	}
}
