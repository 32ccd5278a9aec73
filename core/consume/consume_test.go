package consume_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/rlog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqgate/mqgate/core/consume"
	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/internal/brokertest"
	"github.com/mqgate/mqgate/sdk"
)

// These tests run the real service in process against each backend: the
// Kafka plugin with its embedded broker, and the RocketMQ plugin on the
// RocketMQ protocol fake.

func TestMain(m *testing.M) {
	rlog.SetLogLevel("error")
	m.Run()
}

// fast settings, so redeliveries happen within a test. The ack timeout is
// one no slow machine reaches between a pull and its ack; tests of the
// timeout move a held clock past it.
func fast() consume.Settings {
	s := consume.DefaultSettings()
	s.AckTimeout = time.Minute
	s.RetryBackoff = 100 * time.Millisecond
	s.RetryBackoffMax = time.Second
	s.MaxRetries = 2
	return s
}

type env struct {
	t   testing.TB
	b   sdk.Backend
	p   *produce.Producer
	svc *consume.Service
	now func() time.Time     // the gateways' session clock; nil is time.Now
	reg *prometheus.Registry // the gateways' metrics
}

func newEnv(t testing.TB, b sdk.Backend, set consume.Settings) *env {
	return newEnvAt(t, b, set, nil)
}

// newEnvAt is newEnv with the gateways' sessions running on the clock now.
func newEnvAt(t testing.TB, b sdk.Backend, set consume.Settings, now func() time.Time) *env {
	p := produce.NewProducer(map[string]sdk.Backend{"local": b}, produce.Options{Logger: slog.New(slog.DiscardHandler)})
	e := &env{t: t, b: b, p: p, now: now, reg: prometheus.NewRegistry()}
	e.svc = e.service(set)
	return e
}

// service starts another service (another gateway) on the same broker.
func (e *env) service(set consume.Settings) *consume.Service {
	svc := consume.New(consume.Options{
		Backends: map[string]sdk.Backend{"local": e.b}, Route: func(string) (string, error) { return "local", nil },
		DefaultCluster: "local", Producer: e.p, Defaults: set, Logger: slog.New(slog.DiscardHandler),
		Now: e.now, Registerer: e.reg,
	})
	e.t.Cleanup(svc.Close)
	return svc
}

// metric is the sum of the series of the named metric of e's gateways.
func (e *env) metric(name string) float64 {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	return sum
}

// waitMetric waits until the named metric of e's gateways is want.
func (e *env) waitMetric(name string, want float64) {
	e.t.Helper()
	waitTrue(e.t, fmt.Sprintf("%s to be %v", name, want), func() bool { return e.metric(name) == want })
}

// heldClock is a session clock that stands still until the test moves it,
// so that what times out depends on the test's steps, not on how fast the
// machine is.
type heldClock struct {
	mu  sync.Mutex
	now time.Time
}

func newHeldClock() *heldClock { return &heldClock{now: time.Now()} }

func (c *heldClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Add moves the clock d ahead.
func (c *heldClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// produce writes n messages "prefix-i" to one partition of topic.
func (e *env) produce(topic string, partitions int32, n int, prefix string) {
	e.t.Helper()
	ctx := context.Background()
	if err := e.b.EnsureTopics(ctx, []sdk.TopicSpec{{Name: topic, Partitions: partitions}}); err != nil {
		e.t.Fatal(err)
	}
	var recs []sdk.Record
	for i := range n {
		recs = append(recs, sdk.Record{Topic: topic, Partition: int32(i) % partitions, Value: fmt.Appendf(nil, "%s-%d", prefix, i)})
	}
	// A topic just created may not be routable yet: rocketmq-client-go's
	// first sends to a topic, in parallel, can find its queues before the
	// broker's address ("route info not found"). Retry what failed, as
	// the gateway's producer does.
	for attempt := 1; ; attempt++ {
		res, err := e.b.Produce(ctx, recs)
		if err == nil {
			var again []sdk.Record
			for i, r := range res {
				if r.Err != nil {
					again, err = append(again, recs[i]), r.Err
				}
			}
			recs = again
		}
		if err == nil || len(recs) == 0 {
			return
		}
		if attempt == 20 {
			e.t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pull pulls until it has a non-empty batch, or fails after 30 s.
func pull(t *testing.T, svc *consume.Service, group, topic string, max int) consume.Batch {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		b, err := svc.Pull(context.Background(), group, topic, max, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Messages) > 0 {
			return b
		}
	}
	t.Fatalf("nothing to pull from %s for %s", topic, group)
	return consume.Batch{}
}

func offsets(b consume.Batch) []int64 {
	var out []int64
	for _, m := range b.Messages {
		out = append(out, m.Offset)
	}
	return out
}

func committed(t *testing.T, b sdk.Backend, topic, group, qid string) int64 {
	t.Helper()
	offs, err := b.ListOffsets(context.Background(), []string{topic}, group)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range offs {
		if o.Qid == qid {
			return o.Committed
		}
	}
	t.Fatalf("no qid %s in %s", qid, topic)
	return 0
}

func waitCommitted(t *testing.T, b sdk.Backend, topic, group, qid string, want int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for committed(t, b, topic, group, qid) != want {
		if time.Now().After(deadline) {
			t.Fatalf("committed offset of %s/%s is %d; want %d", topic, qid, committed(t, b, topic, group, qid), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Acks out of order commit exactly the contiguous prefix; a failed offset
// comes back after its backoff with its attempt count, and an unacked one
// after the ack timeout.
func TestAcksAndRedelivery(t *testing.T) {
	t.Parallel()
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		set := fast()
		set.AckTimeout = time.Second
		clock := newHeldClock()
		e := newEnvAt(t, b, set, clock.Now)
		e.produce("acks", 1, 6, "m")
		batch := pull(t, e.svc, "g", "acks", 6)
		if got := offsets(batch); !slices.Equal(got, []int64{0, 1, 2, 3, 4, 5}) {
			t.Fatalf("first pull: offsets %v", got)
		}
		qid := batch.Qid
		ctx := context.Background()
		// 0, 1 and 3 acked; 2 failed; 4 and 5 left to time out.
		if err := e.svc.Ack(ctx, []consume.Ack{{Group: "g", Topic: "acks", Qid: qid, Success: []int64{3, 0, 1}, Fail: []int64{2}}}); err != nil {
			t.Fatal(err)
		}
		waitCommitted(t, b, "acks", "g", qid, 2) // 0 and 1: the prefix

		clock.Add(set.RetryBackoff) // 2's backoff is over; the ack timeout of 4 and 5 is not
		again := pull(t, e.svc, "g", "acks", 6)
		if got := offsets(again); !slices.Equal(got, []int64{2}) || again.Messages[0].Attempt != 2 || string(again.Messages[0].Value) != "m-2" {
			t.Fatalf("after a failure: %+v; want offset 2 again, attempt 2", again.Messages)
		}
		if err := e.svc.Ack(ctx, []consume.Ack{{Group: "g", Topic: "acks", Qid: qid, Success: []int64{2}}}); err != nil {
			t.Fatal(err)
		}
		waitCommitted(t, b, "acks", "g", qid, 4) // 0..3

		clock.Add(set.AckTimeout) // 4 and 5 time out ...
		e.waitMetric("mqgate_consume_ack_timeouts_total", 2)
		clock.Add(set.RetryBackoff) // ... and come back after the backoff
		late := pull(t, e.svc, "g", "acks", 6)
		if got := offsets(late); !slices.Equal(got, []int64{4, 5}) || late.Messages[0].Attempt != 2 {
			t.Fatalf("after the ack timeout: %+v; want offsets 4 and 5, attempt 2", late.Messages)
		}
		if err := e.svc.Ack(ctx, []consume.Ack{{Group: "g", Topic: "acks", Qid: qid, Success: []int64{4, 5}}}); err != nil {
			t.Fatal(err)
		}
		waitCommitted(t, b, "acks", "g", qid, 6)
	})
}

// An ack naming an offset twice, or as both acked and failed, takes it as
// acked once, as DDMQ's cproxy does: no panic, no in-flight count below
// zero, and the commit moves past it.
func TestAckNamingAnOffsetTwice(t *testing.T) {
	t.Parallel()
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		e := newEnvAt(t, b, fast(), newHeldClock().Now)
		e.produce("twice", 1, 3, "m")
		batch := pull(t, e.svc, "g", "twice", 3)
		if got := offsets(batch); !slices.Equal(got, []int64{0, 1, 2}) {
			t.Fatalf("pull: offsets %v", got)
		}
		err := e.svc.Ack(context.Background(), []consume.Ack{{Group: "g", Topic: "twice", Qid: batch.Qid,
			Success: []int64{0, 0, 1, 2}, Fail: []int64{1, 2, 2}}})
		if err != nil {
			t.Fatalf("ack naming offsets twice: %v", err)
		}
		waitCommitted(t, b, "twice", "g", batch.Qid, 3)
		if n := e.metric("mqgate_consume_in_flight"); n != 0 {
			t.Fatalf("mqgate_consume_in_flight = %v after every message was acked; want 0", n)
		}
	})
}

// A message that fails max_retries + 1 times goes to the dead-letter topic
// with headers naming its origin, and counts as acked.
func TestDeadLetter(t *testing.T) {
	t.Parallel()
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		e := newEnv(t, b, fast())
		e.produce("payments", 1, 1, "p")
		ctx := context.Background()
		for attempt := 1; attempt <= 3; attempt++ { // max_retries 2: three deliveries
			batch := pull(t, e.svc, "billing", "payments", 1)
			m := batch.Messages[0]
			if m.Offset != 0 || m.Attempt != attempt {
				t.Fatalf("delivery %d: offset %d attempt %d", attempt, m.Offset, m.Attempt)
			}
			if err := e.svc.Ack(ctx, []consume.Ack{{Group: "billing", Topic: "payments", Qid: batch.Qid, Fail: []int64{0}}}); err != nil {
				t.Fatal(err)
			}
		}
		e.produce("payments", 1, 1, "q") // offset 1
		next := pull(t, e.svc, "billing", "payments", 10)
		if got := offsets(next); !slices.Equal(got, []int64{1}) {
			t.Fatalf("after dead-lettering offset 0, pulled %v; want only offset 1", got)
		}
		if err := e.svc.Ack(ctx, []consume.Ack{{Group: "billing", Topic: "payments", Qid: next.Qid, Success: []int64{1}}}); err != nil {
			t.Fatal(err)
		}
		waitCommitted(t, b, "payments", "billing", next.Qid, 2)
		dlq := pull(t, e.svc, "reader", "billing-dlq", 10)
		m := dlq.Messages[0]
		h := map[string]string{}
		for _, x := range m.Headers {
			h[x.Key] = string(x.Value)
		}
		if string(m.Value) != "p-0" || h[consume.HeaderOriginTopic] != "payments" || h[consume.HeaderOriginQid] != next.Qid ||
			h[consume.HeaderOriginOffset] != "0" || h[consume.HeaderAttempts] != "3" || !strings.Contains(h[consume.HeaderLastError], "failed") {
			t.Fatalf("dead letter %q with headers %v", m.Value, h)
		}
	})
}

// A restarted gateway resumes at the committed offset and delivers again
// what was handed out but not acked.
func TestRestartResumes(t *testing.T) {
	t.Parallel()
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		e := newEnv(t, b, fast())
		e.produce("resume", 1, 5, "r")
		first := pull(t, e.svc, "g", "resume", 5)
		if err := e.svc.Ack(context.Background(), []consume.Ack{{Group: "g", Topic: "resume", Qid: first.Qid, Success: []int64{0, 1, 3}}}); err != nil {
			t.Fatal(err)
		}
		waitCommitted(t, b, "resume", "g", first.Qid, 2)
		e.svc.Close()

		second := e.service(fast())
		var got []int64
		for len(got) < 3 {
			got = append(got, offsets(pull(t, second, "g", "resume", 5))...)
		}
		if !slices.Equal(got, []int64{2, 3, 4}) {
			t.Fatalf("after a restart: offsets %v; want 2, 3, 4 (from the committed offset, 3 again since it was past a gap)", got)
		}
	})
}

// Two gateways in one group split the qids; a message handed out by one is
// not handed out by the other within its ack timeout, and nothing acked is
// delivered again.
func TestTwoGatewaysSplitQids(t *testing.T) {
	t.Parallel()
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		set := fast()
		set.AckTimeout = 5 * time.Second
		e := newEnv(t, b, set)
		e.produce("split", 4, 40, "s")
		a := e.svc
		handed := map[string]time.Time{} // "qid/offset" -> when
		var acked int
		take := func(svc *consume.Service, who string) {
			batch, err := svc.Pull(context.Background(), "g", "split", 5, 200*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			var ok []int64
			for _, m := range batch.Messages {
				k := m.Qid + "/" + strconv.FormatInt(m.Offset, 10)
				if at, seen := handed[k]; seen && time.Since(at) < set.AckTimeout {
					t.Fatalf("%s handed out %s again %s after it was handed out, within the ack timeout", who, k, time.Since(at))
				}
				handed[k] = time.Now()
				ok = append(ok, m.Offset)
			}
			if len(ok) > 0 {
				if err := svc.Ack(context.Background(), []consume.Ack{{Group: "g", Topic: "split", Qid: batch.Qid, Success: ok}}); err != nil && sdk.CodeOf(err) != sdk.CodeNotFound {
					t.Fatal(err)
				}
				acked += len(ok)
			}
		}
		take(a, "first")
		second := e.service(set)
		deadline := time.Now().Add(60 * time.Second)
		for acked < 40 && time.Now().Before(deadline) {
			take(a, "first")
			take(second, "second")
		}
		if acked != 40 {
			t.Fatalf("acked %d of 40 messages", acked)
		}
		if len(handed) != 40 {
			t.Fatalf("%d distinct messages handed out; want 40", len(handed))
		}
	})
}

// Stats report the lag: produced minus acked.
func TestStatsLag(t *testing.T) {
	t.Parallel()
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		e := newEnv(t, b, fast())
		e.produce("lagging", 2, 10, "l")
		batch := pull(t, e.svc, "g", "lagging", 10)
		if err := e.svc.Ack(context.Background(), []consume.Ack{{Group: "g", Topic: "lagging", Qid: batch.Qid, Success: offsets(batch)}}); err != nil {
			t.Fatal(err)
		}
		waitCommitted(t, b, "lagging", "g", batch.Qid, int64(len(batch.Messages)))
		st, err := e.svc.Stats(context.Background(), "g", "lagging")
		if err != nil || len(st) != 1 {
			t.Fatalf("stats: %+v, %v", st, err)
		}
		if st[0].Lag != int64(10-len(batch.Messages)) || st[0].ConsumeOffsets[batch.Qid] != int64(len(batch.Messages)) || st[0].ProduceOffsets[batch.Qid] != 5 {
			t.Fatalf("stats %+v after acking %d of 10 (qid %s)", st[0], len(batch.Messages), batch.Qid)
		}
		all, err := e.svc.Stats(context.Background(), "g", "")
		if err != nil || len(all) != 1 || all[0].Topic != "lagging" {
			t.Fatalf("stats of every topic of the group: %+v, %v", all, err)
		}
	})
}

// The batch-id cursor follows seed 004: ids from 1, fetch_old serves the
// same messages, acking K acks every batch up to K, ids out of range are
// code 11 naming the range.
func TestBatchCursor(t *testing.T) {
	t.Parallel()
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		e := newEnv(t, b, fast())
		e.produce("dts", 1, 5, "d")
		ctx := context.Background()
		info, err := e.svc.BatchInfo(ctx, "ape", "dts")
		if err != nil || info != (consume.BatchInfo{}) {
			t.Fatalf("info before any fetch: %+v, %v; want 0 and 0", info, err)
		}
		var id1 int64
		var first []consume.Message
		for len(first) == 0 {
			if id1, first, err = e.svc.FetchNew(ctx, "ape", "dts", 2, nil); err != nil {
				t.Fatal(err)
			}
		}
		id2, second, err := e.svc.FetchNew(ctx, "ape", "dts", 2, nil)
		if err != nil || id2 != id1+1 || len(first) != 2 || len(second) != 2 {
			t.Fatalf("two fetches: ids %d, %d with %d and %d messages, %v", id1, id2, len(first), len(second), err)
		}
		old, err := e.svc.FetchOld(ctx, "ape", "dts", id1)
		if err != nil || fmt.Sprint(old) != fmt.Sprint(first) {
			t.Fatalf("fetch_old %d: %v, %v; want the same messages", id1, old, err)
		}
		if _, err := e.svc.FetchOld(ctx, "ape", "dts", id2+1); sdk.CodeOf(err) != sdk.CodeIllegal || !strings.Contains(err.Error(), fmt.Sprintf("at most sent_batch_id %d", id2)) {
			t.Fatalf("fetch_old past the sent id: %v", err)
		}
		if acked, err := e.svc.AckBatch(ctx, "ape", "dts", id2); err != nil || acked != id2 {
			t.Fatalf("ack %d: %d, %v", id2, acked, err)
		}
		if _, err := e.svc.FetchOld(ctx, "ape", "dts", id1); sdk.CodeOf(err) != sdk.CodeIllegal {
			t.Fatalf("fetch_old of an acked batch: %v; want code 11", err)
		}
		if _, err := e.svc.AckBatch(ctx, "ape", "dts", id2-1); sdk.CodeOf(err) != sdk.CodeIllegal || !strings.Contains(err.Error(), "at least acked_batch_id") {
			t.Fatalf("acking below the acked id: %v", err)
		}
		info, _ = e.svc.BatchInfo(ctx, "ape", "dts")
		if info.AckedBatchID != id2 || info.SentBatchID != id2 {
			t.Fatalf("info %+v", info)
		}
		waitCommitted(t, b, "dts", "ape", first[0].Qid, 4)
	})
}

// Bad input is refused with the code and field named.
func TestBadInput(t *testing.T) {
	t.Parallel()
	b := brokertest.Kinds[0].Start(t)
	e := newEnv(t, b, fast())
	e.produce("bad", 1, 3, "b")
	ctx := context.Background()
	check := func(what string, err error, code sdk.Code, msg string) {
		t.Helper()
		if sdk.CodeOf(err) != code || !strings.Contains(fmt.Sprint(err), msg) {
			t.Errorf("%s: %v; want code %d containing %q", what, err, code, msg)
		}
	}
	_, err := e.svc.Pull(ctx, "a group", "bad", 1, 0)
	check("group with a space", err, sdk.CodeIllegal, "group")
	_, err = e.svc.Pull(ctx, "g", "bad topic", 1, 0)
	check("topic with a space", err, sdk.CodeIllegal, "topic")
	_, err = e.svc.Pull(ctx, "g", "bad", 0, 0)
	check("batch of 0", err, sdk.CodeIllegal, "at least 1")
	big := pull(t, e.svc, "g", "bad", 1<<30) // capped, not refused
	err = e.svc.Ack(ctx, []consume.Ack{{Group: "g", Topic: "bad", Qid: big.Qid, Success: []int64{99}}})
	check("an offset never handed out", err, sdk.CodeIllegal, "offset 99")
	err = e.svc.Ack(ctx, []consume.Ack{{Group: "g", Topic: "bad", Qid: "7", Success: []int64{0}}})
	check("a qid this gateway does not own", err, sdk.CodeNotFound, "not assigned")
	err = e.svc.Ack(ctx, []consume.Ack{{Group: "other", Topic: "bad", Qid: big.Qid, Success: []int64{0}}})
	check("a group with no session here", err, sdk.CodeNotFound, "no session")
	_, _, err = e.svc.FetchNew(ctx, "g", "bad", 0, nil)
	check("batch_size 0", err, sdk.CodeIllegal, "batch_size")
}

// The low-level pair: Fetch reads explicit offsets outside any session,
// Commit stores a group's offsets, and Stats shows them.
func TestFetchAndCommit(t *testing.T) {
	t.Parallel()
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		e := newEnv(t, b, fast())
		e.produce("lowlevel", 1, 5, "x")
		offs, err := b.ListOffsets(context.Background(), []string{"lowlevel"}, "")
		if err != nil {
			t.Fatal(err)
		}
		qid := offs[0].Qid
		ctx := context.Background()
		res, err := e.svc.Fetch(ctx, "", "", map[string]map[string]int64{"lowlevel": {qid: 2}}, 2, time.Second)
		if err != nil || len(res) != 1 || res[0].NextOffset != 4 || len(res[0].Messages) != 2 || string(res[0].Messages[0].Value) != "x-2" {
			t.Fatalf("fetch at 2: %+v, %v; want x-2 and x-3, next 4", res, err)
		}
		if err := e.svc.Commit(ctx, "", "lowgroup", map[string]map[string]int64{"lowlevel": {qid: 4}}); err != nil {
			t.Fatal(err)
		}
		st, err := e.svc.Stats(ctx, "lowgroup", "lowlevel")
		if err != nil || st[0].ConsumeOffsets[qid] != 4 || st[0].Lag != 1 {
			t.Fatalf("stats after committing 4 of 5: %+v, %v", st, err)
		}
		// DDMQ's clients name DDMQ's cluster: a name this gateway does
		// not have routes by topic.
		res, err = e.svc.Fetch(ctx, "", "ddmq-cluster", map[string]map[string]int64{"lowlevel": {qid: 0}}, 1, 0)
		if err != nil || len(res) != 1 || len(res[0].Messages) != 1 || string(res[0].Messages[0].Value) != "x-0" {
			t.Fatalf("fetch naming DDMQ's cluster: %+v, %v; want x-0 from the topic's cluster", res, err)
		}
		if err := e.svc.Commit(ctx, "ddmq-cluster", "lowgroup", map[string]map[string]int64{"lowlevel": {qid: 5}}); err != nil {
			t.Fatalf("commit naming DDMQ's cluster: %v", err)
		}
	})
}

// A commit past the end of a qid is refused, naming the offset and the
// end, and stores nothing; stats keep showing the real lag. A committed
// offset past the end that got there anyway (another client) is reported,
// not counted as "no lag".
func TestCommitBeyondEndIsRefusedAndStatsSayIt(t *testing.T) {
	t.Parallel()
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		e := newEnv(t, b, fast())
		e.produce("ends", 1, 11, "e")
		ctx := context.Background()
		offs, err := b.ListOffsets(ctx, []string{"ends"}, "")
		if err != nil || len(offs) != 1 {
			t.Fatalf("ListOffsets: %+v, %v", offs, err)
		}
		qid := offs[0].Qid
		err = e.svc.Commit(ctx, "", "far", map[string]map[string]int64{"ends": {qid: 1_000_000}})
		field := fmt.Sprintf("offsets[%q][%q]", "ends", qid)
		if sdk.CodeOf(err) != sdk.CodeIllegal || !strings.Contains(err.Error(), field) || !strings.Contains(err.Error(), "beyond the end offset 11") {
			t.Fatalf("commit of 1000000 on a qid ending at 11: %v; want code 11 naming %s and the end offset 11", err, field)
		}
		err = e.svc.Commit(ctx, "", "far", map[string]map[string]int64{"ends": {"99": 1}})
		if sdk.CodeOf(err) != sdk.CodeIllegal || !strings.Contains(err.Error(), "has no qid 99") {
			t.Fatalf("commit on a qid the topic lacks: %v; want code 11", err)
		}
		if err := e.svc.Commit(ctx, "", "far", map[string]map[string]int64{"ends": {qid: 11}}); err != nil {
			t.Fatalf("commit at the end: %v", err)
		}
		st, err := e.svc.Stats(ctx, "far", "ends")
		if err != nil || st[0].ConsumeOffsets[qid] != 11 || st[0].Lag != 0 || st[0].BeyondEnd != nil {
			t.Fatalf("stats after committing the end: %+v, %v; want offset 11, lag 0", st, err)
		}

		// Another client stores what mqgate refuses.
		if err := b.Commit(ctx, "elsewhere", []sdk.Offset{{Topic: "ends", Qid: qid, Offset: 1_000_000}}); err != nil {
			t.Fatal(err)
		}
		st, err = e.svc.Stats(ctx, "elsewhere", "ends")
		if err != nil || st[0].Lag != 0 || st[0].BeyondEnd[qid] != 1_000_000-11 {
			t.Fatalf("stats of a group committed past the end: %+v, %v; want beyond_end %d for qid %s", st, err, 1_000_000-11, qid)
		}
		if got := e.metric("mqgate_consume_lag_messages"); got != -(1_000_000 - 11) {
			t.Fatalf("mqgate_consume_lag_messages = %v; want the true difference, %d", got, -(1_000_000 - 11))
		}
	})
}

// Kafka refuses a commit from outside a group that has members; that is
// not a passing outage (17) but code 13, saying why and what to do.
// RocketMQ takes commits from anyone.
func TestCommitWhileGroupIsActive(t *testing.T) {
	t.Parallel()
	for _, k := range brokertest.Kinds {
		t.Run(k.Name, func(t *testing.T) {
			b := k.Start(t)
			e := newEnv(t, b, fast())
			e.produce("busy", 1, 3, "b")
			batch := pull(t, e.svc, "members", "busy", 1) // the session joins the group
			err := e.svc.Commit(context.Background(), "", "members", map[string]map[string]int64{"busy": {batch.Qid: 2}})
			if k.Name == "rocketmq" {
				if err != nil {
					t.Fatalf("commit to an active group on RocketMQ: %v", err)
				}
				return
			}
			if sdk.CodeOf(err) != sdk.CodeNotAllowed || !strings.Contains(err.Error(), "active members") || !strings.Contains(err.Error(), "stop the group's consumers") {
				t.Fatalf("commit to an active Kafka group: %v (code %d); want code 13 saying the group has members and what to do", err, sdk.CodeOf(err))
			}
		})
	}
}

// An idle session closes (leaving the group, after committing what was
// acked); the next pull opens a new one that resumes from the commit.
func TestIdleSessionCloses(t *testing.T) {
	t.Parallel()
	set := fast()
	set.SessionIdle = time.Minute
	clock := newHeldClock()
	b := brokertest.Kinds[0].Start(t)
	e := newEnvAt(t, b, set, clock.Now)
	e.produce("idle", 1, 3, "i")
	first := pull(t, e.svc, "g", "idle", 1)
	if err := e.svc.Ack(context.Background(), []consume.Ack{{Group: "g", Topic: "idle", Qid: first.Qid, Success: offsets(first)}}); err != nil {
		t.Fatal(err)
	}
	waitCommitted(t, b, "idle", "g", first.Qid, 1)
	if n := e.metric("mqgate_consume_sessions"); n != 1 {
		t.Fatalf("%v sessions open while in use; want 1", n)
	}
	clock.Add(set.SessionIdle + time.Second) // idle past session_idle
	e.waitMetric("mqgate_consume_sessions", 0)
	if err := e.svc.Ack(context.Background(), []consume.Ack{{Group: "g", Topic: "idle", Qid: first.Qid, Success: []int64{1}}}); sdk.CodeOf(err) != sdk.CodeNotFound {
		t.Fatalf("an ack after the session closed: %v; want code 19 (no session)", err)
	}
	next := pull(t, e.svc, "g", "idle", 5)
	if got := offsets(next); !slices.Equal(got, []int64{1, 2}) {
		t.Fatalf("the new session pulled %v; want 1 and 2", got)
	}
}

// A session whose stream the plugin ends (as the RocketMQ plugin does for
// a topic that does not exist yet) fails the pulls waiting on it, and the
// next Pull opens a new session instead of failing for good.
func TestEndedStreamReopens(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		e := newEnv(t, endingOnce{Backend: b, ended: new(atomic.Bool)}, fast())
		e.produce("later", 1, 3, "m")
		_, err := e.svc.Pull(context.Background(), "g", "later", 10, time.Second)
		if err == nil || !strings.Contains(err.Error(), "topic later does not exist yet") {
			t.Fatalf("first pull: %v; want the stream's end", err)
		}
		b1 := pull(t, e.svc, "g", "later", 10)
		if len(b1.Messages) != 3 {
			t.Errorf("pulled %d messages, want 3", len(b1.Messages))
		}
	})
}

// endingOnce is a backend whose first consume stream ends at once.
type endingOnce struct {
	sdk.Backend
	ended *atomic.Bool
}

func (b endingOnce) Consume(ctx context.Context, sub sdk.Subscription) (sdk.Consumer, error) {
	c, err := b.Backend.Consume(ctx, sub)
	if err != nil || b.ended.Swap(true) {
		return c, err
	}
	return endedStream{c}, nil
}

type endedStream struct{ sdk.Consumer }

func (endedStream) Poll(context.Context, int) (sdk.ConsumeEvent, error) {
	return sdk.ConsumeEvent{}, fmt.Errorf("%w: topic later does not exist yet", sdk.ErrStreamEnded)
}

// StopWaiting ends the long polls of a gateway that shuts down: a waiting
// pull answers at once, empty, and so does the next one.
func TestStopWaitingEndsLongPolls(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		e := newEnv(t, b, fast())
		e.produce("quiet", 1, 0, "")
		hourLongPull := func() <-chan error {
			done := make(chan error, 1)
			go func() {
				batch, err := e.svc.Pull(context.Background(), "g", "quiet", 10, time.Hour)
				if err == nil && len(batch.Messages) > 0 {
					err = fmt.Errorf("pulled %d messages from an empty topic", len(batch.Messages))
				}
				done <- err
			}()
			return done
		}
		waiting := hourLongPull()
		e.svc.StopWaiting()
		for _, done := range []<-chan error{waiting, hourLongPull()} {
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("a pull waiting an hour still waits after StopWaiting")
			}
		}
	})
}
