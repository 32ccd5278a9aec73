package sink_test

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

	"github.com/mqgate/mqgate/core/config"
	"github.com/mqgate/mqgate/core/consume"
	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/core/sink"
	"github.com/mqgate/mqgate/internal/brokertest"
	"github.com/mqgate/mqgate/internal/consumetest"
	"github.com/mqgate/mqgate/sdk"
)

// These tests run sink pipelines in process over each backend (the Kafka
// plugin on its embedded broker, the RocketMQ plugin on the RocketMQ
// protocol fake), writing into a store kept in memory by the test.

func TestMain(m *testing.M) {
	rlog.SetLogLevel("error")
	m.Run()
}

var testLogger = slog.New(slog.DiscardHandler)

// env is a broker, a producer and a consume service: one gateway.
type env struct {
	t   testing.TB
	b   sdk.Backend
	svc *consume.Service
}

func newEnv(t testing.TB, b sdk.Backend) *env {
	p := produce.NewProducer(map[string]sdk.Backend{"local": b}, produce.Options{Logger: testLogger})
	svc := consume.New(consume.Options{
		Backends: map[string]sdk.Backend{"local": b}, Route: func(string) (string, error) { return "local", nil },
		DefaultCluster: "local", Producer: p, Defaults: consume.DefaultSettings(), Logger: testLogger,
	})
	t.Cleanup(svc.Close)
	return &env{t: t, b: b, svc: svc}
}

func (e *env) topic(topic string, partitions int32) {
	e.t.Helper()
	if err := e.b.EnsureTopics(context.Background(), []sdk.TopicSpec{{Name: topic, Partitions: partitions}}); err != nil {
		e.t.Fatal(err)
	}
}

// produce produces keyed values, retrying what failed (a topic just
// created may not be routable yet on RocketMQ).
func (e *env) produce(topic string, kv ...[2]string) {
	e.t.Helper()
	recs := make([]sdk.Record, len(kv))
	for i, m := range kv {
		recs[i] = sdk.Record{Topic: topic, Partition: sdk.PartitionHash, Key: []byte(m[0]), Value: []byte(m[1])}
	}
	for attempt := 1; len(recs) > 0; attempt++ {
		res, err := e.b.Produce(context.Background(), recs)
		if err == nil {
			var again []sdk.Record
			for i, r := range res {
				if r.Err != nil {
					again, err = append(again, recs[i]), r.Err
				}
			}
			recs = again
		}
		if err == nil {
			return
		}
		if attempt == 20 {
			e.t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pipeline returns a sink config with the defaults plugins.yaml gives.
func pipeline(name string, topics ...string) *config.Sink {
	return &config.Sink{
		Name: name, Group: "mqgate-sink-" + name, Topics: topics, Plugin: "mem", Order: "key",
		Batch:       config.SinkBatch{MaxMessages: 500, MaxBytes: 4 << 20, Linger: 5 * time.Millisecond},
		Concurrency: 2, Buffer: 4096, Timeout: 30 * time.Second,
		Retry: config.PushRetry{Max: 3, Backoff: []time.Duration{20 * time.Millisecond}},
	}
}

// start runs the sinks on e with their plugins until stopped or the test
// ends.
func (e *env) start(plugins map[string]sdk.Sink, sinks ...*config.Sink) *sink.Service {
	e.t.Helper()
	s, err := sink.New(sink.Options{Sinks: sinks, Plugins: plugins, Consumer: e.svc, Logger: testLogger, Registerer: prometheus.NewRegistry()})
	if err != nil {
		e.t.Fatal(err)
	}
	s.Start()
	e.t.Cleanup(s.Close)
	return s
}

// memSink is a store in memory: every record written, in the order
// written, and a fail function that may refuse any record.
type memSink struct {
	mu     sync.Mutex
	writes [][]string // the values of each Write
	stored []string   // values acknowledged, in order
	fail   func(r sdk.Record) error
}

func (m *memSink) Configure(context.Context, []byte) error { return nil }
func (m *memSink) Close() error                            { return nil }

func (m *memSink) Write(_ context.Context, rs []sdk.Record) ([]error, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]error, len(rs))
	var vals []string
	for i, r := range rs {
		vals = append(vals, string(r.Value))
		if m.fail != nil {
			if out[i] = m.fail(r); out[i] != nil {
				continue
			}
		}
		m.stored = append(m.stored, string(r.Value))
	}
	m.writes = append(m.writes, vals)
	return out, nil
}

func (m *memSink) setFail(f func(r sdk.Record) error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fail = f
}

func (m *memSink) values() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.stored)
}

func (m *memSink) batches() [][]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.writes)
}

func statusOf(s *sink.Service, name string) sink.Status {
	st, ok := s.StatusOf(name)
	if !ok {
		panic("no sink " + name)
	}
	return st
}

// waitFor is consumetest.WaitFor.
var waitFor = consumetest.WaitFor

// keyed returns keys x per values "kNNN-i", produced round-robin over keys.
func keyed(keys, per int) [][2]string {
	var kv [][2]string
	for i := range per {
		for k := range keys {
			key := fmt.Sprintf("k%03d", k)
			kv = append(kv, [2]string{key, fmt.Sprintf("%s-%d", key, i)})
		}
	}
	return kv
}

// inOrder checks that every value of keyed(keys, per) is in vals once and
// each key's values are in produce order.
func inOrder(t *testing.T, vals []string, keys, per int) {
	t.Helper()
	seen := map[string][]int{}
	count := map[string]int{}
	for _, v := range vals {
		count[v]++
		k, i, _ := strings.Cut(v, "-")
		n, _ := strconv.Atoi(i)
		seen[k] = append(seen[k], n)
	}
	if len(count) != keys*per {
		t.Errorf("%d distinct values stored, want %d", len(count), keys*per)
	}
	for v, n := range count {
		if n != 1 {
			t.Errorf("%s stored %d times", v, n)
		}
	}
	for k, ns := range seen {
		if !slices.IsSorted(ns) {
			t.Errorf("key %s stored out of order: %v", k, ns)
		}
	}
}

// committedAll waits until group has committed every message of topic.
func committedAll(t *testing.T, svc *consume.Service, group, topic string) {
	t.Helper()
	waitFor(t, "every offset committed", func() bool {
		st, err := svc.Stats(context.Background(), group, topic)
		return err == nil && len(st) == 1 && st[0].Lag == 0 && len(st[0].ProduceOffsets) > 0
	})
}

// With order: key, 100 keys each get their values in produce order, each
// once, in batches of many keys, and the group commits everything.
func TestKeyOrderInBatches(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		e := newEnv(t, b)
		e.topic("orders", 4)
		const keys, per = 100, 10
		e.produce("orders", keyed(keys, per)...)
		m := &memSink{}
		cfg := pipeline("orders", "orders")
		s := e.start(map[string]sdk.Sink{"orders": m}, cfg)
		waitFor(t, "every message written", func() bool { return statusOf(s, "orders").Written >= keys*per })
		inOrder(t, m.values(), keys, per)
		for i, w := range m.batches() {
			if len(w) > keys {
				t.Errorf("write %d held %d records; with order key at most one per key (%d keys)", i, len(w), keys)
			}
		}
		if n := len(m.batches()); n >= keys*per/2 {
			t.Errorf("%d writes for %d messages; want batches of many keys", n, keys*per)
		}
		committedAll(t, e.svc, cfg.Group, "orders")
	})
}

// With order: qid, a batch takes runs of a queue, and each queue's values
// arrive in offset order.
func TestQidOrderTakesRuns(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		e := newEnv(t, b)
		e.topic("logs", 2)
		const keys, per = 5, 200
		e.produce("logs", keyed(keys, per)...)
		m := &memSink{}
		cfg := pipeline("logs", "logs")
		cfg.Order = "qid"
		cfg.Batch.MaxMessages = 100
		s := e.start(map[string]sdk.Sink{"logs": m}, cfg)
		waitFor(t, "every message written", func() bool { return statusOf(s, "logs").Written >= keys*per })
		inOrder(t, m.values(), keys, per)
		big := 0
		for _, w := range m.batches() {
			if len(w) > 100 {
				t.Errorf("a write held %d records; batch.max_messages is 100", len(w))
			}
			if len(w) > keys {
				big++
			}
		}
		if big == 0 {
			t.Errorf("no write held more than one message per key: %d writes", len(m.batches()))
		}
		committedAll(t, e.svc, cfg.Group, "logs")
	})
}

// A record the sink refuses for itself is dead-lettered after retry.max
// writes with can_skip, and holds back only its key without: later values
// of its key wait, other keys are written, and once the store takes it,
// its key follows in order.
func TestPoisonRecord(t *testing.T) {
	for _, canSkip := range []bool{false, true} {
		t.Run(fmt.Sprintf("can_skip=%v", canSkip), func(t *testing.T) {
			brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
				e := newEnv(t, b)
				e.topic("jobs", 2)
				name := "jobs" + strconv.FormatBool(canSkip)
				e.topic("mqgate-sink-"+name+"-dlq", 1)
				kv := [][2]string{{"bad", "poison"}}
				for i := range 5 {
					kv = append(kv, [2]string{"bad", fmt.Sprintf("bad-after-%d", i)})
				}
				for i := range 50 {
					kv = append(kv, [2]string{fmt.Sprintf("good%d", i), fmt.Sprintf("good-%d", i)})
				}
				e.produce("jobs", kv...)
				m := &memSink{}
				var tries atomic.Int32
				m.setFail(func(r sdk.Record) error {
					if string(r.Value) == "poison" {
						tries.Add(1)
						return sdk.Errorf(sdk.CodeIllegal, "field total: not a number")
					}
					return nil
				})
				cfg := pipeline(name, "jobs")
				cfg.CanSkip = canSkip
				cfg.Retry.Max = 2
				s := e.start(map[string]sdk.Sink{name: m}, cfg)

				if canSkip {
					waitFor(t, "everything else written", func() bool { return statusOf(s, name).Written == 55 })
					st := statusOf(s, name)
					if st.DeadLettered != 1 || tries.Load() != 2 {
						t.Errorf("status = %+v after %d tries; want one dead letter after retry.max = 2", st, tries.Load())
					}
					dl := consumetest.PullOne(t, e.svc, "mqgate-sink-"+name+"-dlq")
					if string(dl.Value) != "poison" || consumetest.Header(dl, consume.HeaderOriginTopic) != "jobs" ||
						!strings.Contains(consumetest.Header(dl, consume.HeaderLastError), "field total") {
						t.Errorf("dead letter %q with headers %v", dl.Value, dl.Headers)
					}
					if !slices.IsSorted(afterBad(m.values())) {
						t.Errorf("the poison's key out of order: %v", afterBad(m.values()))
					}
					return
				}
				waitFor(t, "other keys written and the poison retried past retry.max", func() bool {
					st := statusOf(s, name)
					return st.Written == 50 && st.Failures > 3
				})
				st := statusOf(s, name)
				if st.DeadLettered != 0 || st.Queued != 6 {
					t.Errorf("status = %+v; want the poison held with its 5 followers, nothing dead-lettered", st)
				}
				if a := afterBad(m.values()); len(a) > 0 {
					t.Errorf("%v written while the value before them on their key was failing", a)
				}
				m.setFail(nil) // the store takes it now
				waitFor(t, "the held key written", func() bool { return statusOf(s, name).Written == 56 })
				vals := m.values()
				i := slices.Index(vals, "poison")
				if i < 0 || !slices.Equal(afterBad(vals[i+1:]), []string{"bad-after-0", "bad-after-1", "bad-after-2", "bad-after-3", "bad-after-4"}) {
					t.Errorf("the held key was written as %v", vals)
				}
			})
		})
	}
}

func afterBad(vals []string) []string {
	var out []string
	for _, v := range vals {
		if strings.HasPrefix(v, "bad-after") {
			out = append(out, v)
		}
	}
	return out
}

// An outage of the store (a retriable code for every record, or the whole
// call failing) never dead-letters: with can_skip and retry.max 1, every
// message is written once the store is back.
func TestOutageIsWaitedOut(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		e := newEnv(t, b)
		e.topic("events", 2)
		e.produce("events", keyed(10, 5)...)
		down := &outageSink{memSink: &memSink{}}
		down.down.Store(true)
		cfg := pipeline("events", "events")
		cfg.CanSkip = true
		cfg.Retry.Max = 1
		s := e.start(map[string]sdk.Sink{"events": down}, cfg)
		waitFor(t, "writes failing", func() bool { return statusOf(s, "events").Failures > 60 })
		down.down.Store(false)
		waitFor(t, "every message written", func() bool { return statusOf(s, "events").Written == 50 })
		if st := statusOf(s, "events"); st.DeadLettered != 0 {
			t.Errorf("status = %+v; an outage dead-lettered messages", st)
		}
		inOrder(t, down.values(), 10, 5)
	})
}

// outageSink fails every Write while down: every other call as a whole,
// and the rest with code 17 for each record.
type outageSink struct {
	*memSink
	down  atomic.Bool
	calls atomic.Int64
}

func (o *outageSink) Write(ctx context.Context, rs []sdk.Record) ([]error, error) {
	if o.down.Load() {
		if o.calls.Add(1)%2 == 0 {
			return nil, sdk.Errorf(sdk.CodeUnavailable, "plugin restarting")
		}
		out := make([]error, len(rs))
		for i := range out {
			out[i] = sdk.Errorf(sdk.CodeUnavailable, "redis 127.0.0.1:6379: connection refused")
		}
		return out, nil
	}
	return o.memSink.Write(ctx, rs)
}

// Nothing is acked before the sink has it: messages a failing sink held
// when its gateway stopped are all written by the next one.
func TestNothingAckedBeforeWritten(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		e := newEnv(t, b)
		e.topic("audit", 2)
		e.produce("audit", keyed(20, 5)...)
		failing := &memSink{}
		failing.setFail(func(r sdk.Record) error {
			if strings.HasSuffix(string(r.Value), "-0") {
				return nil // the first value of every key lands
			}
			return sdk.Errorf(sdk.CodeInternal, "disk full")
		})
		cfg := pipeline("audit", "audit")
		first, err := sink.New(sink.Options{Sinks: []*config.Sink{cfg}, Plugins: map[string]sdk.Sink{"audit": failing},
			Consumer: e.svc, Logger: testLogger, Registerer: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		first.Start()
		waitFor(t, "the first value of each key written and the rest failing", func() bool {
			st := statusOf(first, "audit")
			return st.Written == 20 && st.Failures >= 20
		})
		first.Close()
		e.svc.Close()

		e2 := newEnv(t, b)
		m := &memSink{}
		s := e2.start(map[string]sdk.Sink{"audit": m}, cfg)
		waitFor(t, "the rest written by the next gateway", func() bool { return statusOf(s, "audit").Written >= 80 })
		got := map[string]bool{}
		for _, v := range append(failing.values(), m.values()...) {
			got[v] = true
		}
		for _, kv := range keyed(20, 5) {
			if !got[kv[1]] {
				t.Errorf("%s was never written", kv[1])
			}
		}
		committedAll(t, e2.svc, cfg.Group, "audit")
	})
}

// The filter drops (and acks) what it rejects; the transform rebuilds the
// value and headers the plugin gets.
func TestFilterAndTransform(t *testing.T) {
	e := newEnv(t, brokertest.Kinds[0].Start(t))
	e.topic("orders", 1)
	e.produce("orders", [2]string{"1", `{"id":1,"paid":true}`}, [2]string{"2", `{"id":2,"paid":false}`}, [2]string{"3", `{"id":3,"paid":true}`})
	m := &memSink{}
	var heads []string
	m.setFail(func(r sdk.Record) error {
		for _, h := range r.Headers {
			if h.Key == "order" {
				heads = append(heads, string(h.Value))
			}
		}
		return nil
	})
	cfg := pipeline("paid", "orders")
	cfg.Filter = "json.paid"
	cfg.Transform = &config.PushTransform{Body: `{"order": json.id}`, Headers: map[string]string{"order": "string(json.id)"}}
	s := e.start(map[string]sdk.Sink{"paid": m}, cfg)
	waitFor(t, "two written", func() bool { return statusOf(s, "paid").Written == 2 })
	if st := statusOf(s, "paid"); st.Filtered != 1 {
		t.Errorf("status = %+v; want one filtered", st)
	}
	m.mu.Lock()
	slices.Sort(heads)
	m.mu.Unlock()
	if vals := m.values(); !slices.Equal(vals, []string{`{"order":1}`, `{"order":3}`}) || !slices.Equal(heads, []string{"1", "3"}) {
		t.Errorf("stored %q with order headers %q", vals, heads)
	}
	committedAll(t, e.svc, cfg.Group, "orders")
}
