package delay_test

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/rlog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqgate/mqgate/core/delay"
	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/internal/brokertest"
	"github.com/mqgate/mqgate/sdk"
)

// These tests run the real service and tier workers in process against
// each backend: the Kafka plugin with its embedded broker, and the
// RocketMQ plugin on the RocketMQ protocol fake. Long delays run on a
// scaled clock.

func TestMain(m *testing.M) {
	rlog.SetLogLevel("error")
	m.Run()
}

// scaledClock runs speed times faster than real time from its start.
type scaledClock struct {
	start time.Time
	speed float64
}

func (c scaledClock) Now() time.Time {
	return c.start.Add(time.Duration(float64(time.Since(c.start)) * c.speed))
}

func (c scaledClock) Timer(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTimer(time.Duration(float64(d) / c.speed))
	return t.C, func() { t.Stop() }
}

// heldClock is a scaledClock that a test can hold at a point of its time:
// from then until Release, Now never passes that point, so nothing due
// after it can fire however slowly the test goes meanwhile. After Release
// time runs on from where it was held.
type heldClock struct {
	scaledClock
	mu     sync.Mutex
	hold   time.Time     // zero when not held
	behind time.Duration // scaled time that passed while held
}

func (c *heldClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.scaledClock.Now().Add(-c.behind)
	if !c.hold.IsZero() && t.After(c.hold) {
		return c.hold
	}
	return t
}

// HoldAt holds the clock once it reaches t.
func (c *heldClock) HoldAt(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hold = t
}

// Release lets the clock run on from where it is held.
func (c *heldClock) Release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t := c.scaledClock.Now().Add(-c.behind); t.After(c.hold) {
		c.behind += t.Sub(c.hold)
	}
	c.hold = time.Time{}
}

func forEachBackend(t *testing.T, test func(t *testing.T, b sdk.Backend)) {
	brokertest.Run(t, test)
}

// startService runs a delay service on b with clock (real time when nil).
func startService(t *testing.T, b sdk.Backend, clock delay.Clock) *delay.Service {
	s, _ := startServiceReg(t, b, clock)
	return s
}

// startWorking runs a delay service and waits until its workers own every
// tier partition, so that a test on a fast clock does not count the
// workers' start-up (joining 36 groups) against the shortest delays.
func startWorking(t *testing.T, b sdk.Backend, clock delay.Clock) *delay.Service {
	t.Helper()
	s, reg := startServiceReg(t, b, clock)
	deadline := time.Now().Add(60 * time.Second)
	for owned(t, reg) < 36*2 {
		if time.Now().After(deadline) {
			t.Fatalf("the workers own %v of 72 tier partitions", owned(t, reg))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return s
}

func owned(t *testing.T, reg *prometheus.Registry) float64 {
	return metric(t, reg, "mqgate_delay_partitions_owned")
}

// metric is the value of an unlabelled gauge or counter; 0 when absent.
func metric(t *testing.T, reg *prometheus.Registry, name string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			return m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	return 0
}

// settle waits until the tier groups have committed every record of the
// tier topics, then reads out to its end. A worker commits a record only
// once it moved or delivered it, so nothing is then left to move or
// deliver: every delivery there will be, a repeated one included, is in
// out. That is a negative check's sentinel, with no sleep.
func settle(t *testing.T, b sdk.Backend, out *collector) {
	t.Helper()
	ctx := context.Background()
	var tiers []string
	for _, tier := range testPlan(t).Tiers() {
		tiers = append(tiers, delay.TierName("mqgate_delay_", tier))
	}
	// ends are the tier partitions' end offsets when all are committed;
	// nil when some are not.
	ends := func() map[string]int64 {
		offs, err := b.ListOffsets(ctx, tiers, "")
		if err != nil {
			t.Fatal(err)
		}
		all := map[string]int64{}
		used := map[string]bool{}
		for _, o := range offs {
			all[o.Topic+"/"+o.Qid] = o.End
			used[o.Topic] = used[o.Topic] || o.End > o.Start
		}
		for topic := range used {
			if !used[topic] {
				continue
			}
			offs, err := b.ListOffsets(ctx, []string{topic}, topic) // each tier's group is named after it
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range offs {
				if o.End > o.Start && o.Committed < o.End {
					return nil
				}
			}
		}
		return all
	}
	// Twice the same: a hop to a tier read before the tier it left would
	// otherwise go unseen.
	deadline := time.Now().Add(60 * time.Second)
	for prev := ends(); ; {
		if time.Now().After(deadline) {
			t.Fatal("the delay tiers still hold records not moved on")
		}
		time.Sleep(20 * time.Millisecond)
		now := ends()
		if prev != nil && now != nil && maps.Equal(prev, now) {
			break
		}
		prev = now
	}
	out.drain()
}

// testPlan is the tier plan of the tests' services.
func testPlan(t *testing.T) delay.Plan {
	t.Helper()
	plan, err := delay.NewPlan(10, 4)
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

func startServiceReg(t *testing.T, b sdk.Backend, clock delay.Clock) (*delay.Service, *prometheus.Registry) {
	t.Helper()
	plan := testPlan(t)
	reg := prometheus.NewRegistry()
	p := produce.NewProducer(map[string]sdk.Backend{"local": b}, produce.Options{Logger: slog.New(slog.DiscardHandler)})
	s := delay.New(delay.Options{
		Cluster: "local", Backend: b, Producer: p,
		Route: func(string) (string, error) { return "local", nil },
		Plan:  plan, Partitions: 2, Max: 30 * 24 * time.Hour,
		Logger: slog.New(slog.DiscardHandler), Clock: clock, Registerer: reg,
	})
	s.Start()
	t.Cleanup(s.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		if s.Ready() == nil {
			return s, reg
		}
		if ctx.Err() != nil {
			t.Fatal("the delay service never became ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// collector reads a topic from the start with Fetch.
type collector struct {
	t     *testing.T
	b     sdk.Backend
	topic string
	mu    sync.Mutex
	got   []sdk.Record
	pos   map[string]int64
}

func newCollector(t *testing.T, b sdk.Backend, topic string) *collector {
	t.Helper()
	if err := b.EnsureTopics(context.Background(), []sdk.TopicSpec{{Name: topic, Partitions: 2}}); err != nil {
		t.Fatal(err)
	}
	return &collector{t: t, b: b, topic: topic, pos: map[string]int64{}}
}

// poll reads what is new.
func (c *collector) poll() {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if len(c.pos) == 0 {
		offs, err := c.b.ListOffsets(ctx, []string{c.topic}, "")
		if err != nil {
			c.t.Fatal(err)
		}
		for _, o := range offs {
			c.pos[o.Qid] = o.Start
		}
	}
	req := sdk.FetchRequest{MaxRecords: 100, MaxWait: 50 * time.Millisecond}
	for qid, off := range c.pos {
		req.Positions = append(req.Positions, sdk.FetchPosition{Topic: c.topic, Qid: qid, Offset: off})
	}
	res, err := c.b.Fetch(ctx, req)
	if err != nil {
		c.t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			c.t.Fatalf("fetch %s/%s: %v", r.Topic, r.Qid, r.Err)
		}
		c.got = append(c.got, r.Records...)
		c.pos[r.Qid] = r.NextOffset
	}
}

// drain reads until it has everything the topic held when it was called.
func (c *collector) drain() {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offs, err := c.b.ListOffsets(ctx, []string{c.topic}, "")
	if err != nil {
		c.t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		behind := len(c.pos) == 0 // not read yet
		for _, o := range offs {
			if c.pos[o.Qid] < o.End {
				behind = true
			}
		}
		if !behind {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("reading %s to its end: at %v of %v", c.topic, c.pos, offs)
		}
		c.poll()
	}
}

// wait reads until n records have arrived.
func (c *collector) wait(n int, within time.Duration) []sdk.Record {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for len(c.got) < n {
		if time.Now().After(deadline) {
			c.t.Fatalf("%d of %d delayed messages arrived on %s", len(c.got), n, c.topic)
		}
		c.poll()
	}
	return c.got
}

func header(r sdk.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func add(t *testing.T, s *delay.Service, msgs ...delay.Message) []delay.Result {
	t.Helper()
	res, err := s.Add(context.Background(), msgs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("adding message %d: %v", i, r.Err)
		}
	}
	return res
}

// Messages of 1.5 s, 40 s and 119 s (on a clock 10 times fast) arrive
// once each, in due order, with key, value, headers and tags intact, and
// the delay id and due time added.
func TestDelaysArriveOnceInDueOrder(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b sdk.Backend) {
		clock := &heldClock{scaledClock: scaledClock{start: time.Now(), speed: 10}}
		s := startWorking(t, b, clock)
		out := newCollector(t, b, "orders")
		now := clock.Now()
		// The clock is held short of each due time until the message due
		// before it has come: however slow this machine, a message can
		// only come before an earlier one by being delivered early.
		clock.HoldAt(now.Add(20 * time.Second))
		var msgs []delay.Message
		for _, d := range []time.Duration{119 * time.Second, 1500 * time.Millisecond, 40 * time.Second} {
			msgs = append(msgs, delay.Message{Topic: "orders", DueAt: now.Add(d), Msg: produce.Message{
				Key: []byte("k-" + d.String()), Value: []byte("after " + d.String()), Tags: "t1", Partition: sdk.PartitionHash,
				Headers: []sdk.Header{{Key: "trace", Value: []byte(d.String())}},
			}})
		}
		res := add(t, s, msgs...)
		out.wait(1, 60*time.Second)
		clock.Release()
		clock.HoldAt(now.Add(80 * time.Second))
		out.wait(2, 60*time.Second)
		clock.Release()
		got := out.wait(3, 60*time.Second)
		slices.SortFunc(got, func(a, b sdk.Record) int { return a.Timestamp.Compare(b.Timestamp) })
		var order []string
		for _, r := range got {
			order = append(order, string(r.Value))
		}
		if want := []string{"after 1.5s", "after 40s", "after 1m59s"}; !slices.Equal(order, want) {
			t.Fatalf("arrival order %q; want %q", order, want)
		}
		for _, r := range got {
			var m delay.Message
			var id string
			for i, in := range msgs {
				if string(in.Msg.Value) == string(r.Value) {
					m, id = in, res[i].ID
				}
			}
			if string(r.Key) != string(m.Msg.Key) || r.Tags != "t1" || header(r, "trace") == "" ||
				header(r, delay.HeaderID) != id || header(r, delay.HeaderDue) != strconv.FormatInt(m.DueAt.UnixMilli(), 10) {
				t.Errorf("delivered %q with key %q tags %q headers %v; want key %q, id %s, due %d", r.Value, r.Key, r.Tags, r.Headers, m.Msg.Key, id, m.DueAt.UnixMilli())
			}
		}
		// Nothing more comes: each arrived once.
		settle(t, b, out)
		if len(out.got) != 3 {
			t.Fatalf("%d deliveries of 3 messages", len(out.got))
		}
	})
}

// A cancel before the due time prevents the delivery; a cancel for an id
// never added is fine.
func TestCancelBeforeFiring(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b sdk.Backend) {
		clock := &heldClock{scaledClock: scaledClock{start: time.Now(), speed: 1}}
		s, reg := startServiceReg(t, b, clock)
		out := newCollector(t, b, "reminders")
		now := clock.Now()
		// Held before the first due time until the cancels have returned,
		// however slow this machine is.
		clock.HoldAt(now.Add(time.Second))
		res := add(t, s,
			delay.Message{Topic: "reminders", ID: "cancel-me", DueAt: now.Add(1500 * time.Millisecond), Msg: produce.Message{Value: []byte("cancelled"), Partition: sdk.PartitionHash}},
			delay.Message{Topic: "reminders", DueAt: now.Add(2500 * time.Millisecond), Msg: produce.Message{Value: []byte("kept"), Partition: sdk.PartitionHash}},
		)
		if res[0].ID != "cancel-me" || res[1].ID == "" {
			t.Fatalf("ids %q, %q; want the given one and a generated one", res[0].ID, res[1].ID)
		}
		ctx := context.Background()
		if err := s.Cancel(ctx, "reminders", "cancel-me"); err != nil {
			t.Fatal(err)
		}
		if err := s.Cancel(ctx, "reminders", "never-added"); err != nil {
			t.Fatalf("cancelling an id never added: %v", err)
		}
		if err := s.Cancel(ctx, "reminders", ""); sdk.CodeOf(err) != sdk.CodeIllegal {
			t.Fatalf("cancel without an id: %v; want code 11", err)
		}
		clock.Release()
		got := out.wait(1, 30*time.Second)
		settle(t, b, out) // the cancelled one is dropped or delivered by now
		if len(out.got) != 1 || string(got[0].Value) != "kept" {
			t.Fatalf("delivered %d messages, first %q; want only the uncancelled one", len(out.got), got[0].Value)
		}
		if n := metric(t, reg, "mqgate_delay_cancelled_total"); n != 1 {
			t.Fatalf("mqgate_delay_cancelled_total is %v; want the cancelled message dropped at its due time", n)
		}
	})
}

// A loop of 3 fires 3 times, an interval apart; cancelling a loop stops
// the firings still to come.
func TestLoopFiresTimes(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b sdk.Backend) {
		clock := &heldClock{scaledClock: scaledClock{start: time.Now(), speed: 5}}
		s := startWorking(t, b, clock)
		out := newCollector(t, b, "ticks")
		now := clock.Now()
		// Held past the first firings until the cancel has returned: the
		// stopped loop's second firing cannot come first, however slow
		// this machine is.
		clock.HoldAt(now.Add(3 * time.Second))
		add(t, s,
			delay.Message{Topic: "ticks", ID: "three", DueAt: now.Add(2 * time.Second), Loop: &delay.Loop{Interval: 10 * time.Second, Times: 3},
				Msg: produce.Message{Value: []byte("tick"), Partition: sdk.PartitionHash}},
			delay.Message{Topic: "ticks", ID: "stopped", DueAt: now.Add(2 * time.Second), Loop: &delay.Loop{Interval: 20 * time.Second, Times: 100},
				Msg: produce.Message{Value: []byte("stopped"), Partition: sdk.PartitionHash}},
		)
		// The stopped loop fires once, then is cancelled.
		for {
			out.poll()
			if slices.ContainsFunc(out.got, func(r sdk.Record) bool { return string(r.Value) == "stopped" }) {
				break
			}
		}
		if err := s.Cancel(context.Background(), "ticks", "stopped"); err != nil {
			t.Fatal(err)
		}
		clock.Release()
		got := out.wait(4, 60*time.Second)
		// Past the stopped loop's second firing (20 s after its first).
		deadline := clock.Now().Add(25 * time.Second)
		for clock.Now().Before(deadline) {
			out.poll()
		}
		got = out.got
		var dues []int64
		stopped := 0
		for _, r := range got {
			switch string(r.Value) {
			case "tick":
				d, _ := strconv.ParseInt(header(r, delay.HeaderDue), 10, 64)
				dues = append(dues, d)
			case "stopped":
				stopped++
			}
		}
		slices.Sort(dues)
		if len(dues) != 3 || dues[1]-dues[0] != 10000 || dues[2]-dues[1] != 10000 {
			t.Fatalf("the loop of 3 fired with due times %v; want 3, 10 s apart", dues)
		}
		if stopped != 1 {
			t.Fatalf("the cancelled loop fired %d times; want once, before the cancel", stopped)
		}
	})
}

// Two services (two gateways) on one broker deliver each message once.
func TestTwoGatewaysDeliverOnce(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b sdk.Backend) {
		s1 := startService(t, b, nil)
		s2 := startService(t, b, nil)
		out := newCollector(t, b, "shared")
		now := time.Now()
		const n = 40
		for i := range n {
			s := s1
			if i%2 == 1 {
				s = s2
			}
			add(t, s, delay.Message{Topic: "shared", DueAt: now.Add(time.Duration(1000+50*i) * time.Millisecond),
				Msg: produce.Message{Value: fmt.Appendf(nil, "m%02d", i), Partition: sdk.PartitionHash}})
		}
		out.wait(n, 60*time.Second)
		settle(t, b, out)
		seen := map[string]int{}
		for _, r := range out.got {
			seen[string(r.Value)]++
		}
		for i := range n {
			if v := fmt.Sprintf("m%02d", i); seen[v] != 1 {
				t.Errorf("%s delivered %d times", v, seen[v])
			}
		}
	})
}

// Bad input is refused with code 11 naming the field, before anything is
// written.
func TestAddRefusesBadInput(t *testing.T) {
	b := brokertest.Kinds[0].Start(t)
	s := startService(t, b, nil)
	now := time.Now()
	msg := func(mod func(*delay.Message)) delay.Message {
		m := delay.Message{Topic: "bad", DueAt: now.Add(time.Minute), Msg: produce.Message{Value: []byte("x")}}
		mod(&m)
		return m
	}
	for _, tc := range []struct {
		name string
		m    delay.Message
		want string
	}{
		{"beyond max", msg(func(m *delay.Message) { m.DueAt = now.Add(31 * 24 * time.Hour) }), "exceeds delay.max"},
		{"loop times 0", msg(func(m *delay.Message) { m.Loop = &delay.Loop{Interval: time.Second} }), "loop.times"},
		{"loop interval 0", msg(func(m *delay.Message) { m.Loop = &delay.Loop{Times: 3} }), "loop.interval_ms"},
		{"expire before first", msg(func(m *delay.Message) {
			m.Loop = &delay.Loop{Interval: time.Second, Times: 3, Expire: now}
		}), "loop.expire_at_ms"},
		{"reserved header", msg(func(m *delay.Message) { m.Msg.Headers = []sdk.Header{{Key: "mqgate-delay-id", Value: []byte("x")}} }), "reserved"},
		{"dead-letter header", msg(func(m *delay.Message) { m.Msg.Headers = []sdk.Header{{Key: "mqgate-dlq-attempts", Value: []byte("3")}} }), "reserved"},
		{"id too long", msg(func(m *delay.Message) { m.ID = strings.Repeat("i", delay.MaxIDBytes+1) }), "id: 257 bytes, over the limit of 256"},
		{"bad topic", msg(func(m *delay.Message) { m.Topic = "a b" }), "topic"},
		{"exponential loop of base 1", msg(func(m *delay.Message) { m.Loop = &delay.Loop{Base: 1, Times: 3} }), "loop.base: at least 2, got 1"},
	} {
		res, err := s.Add(context.Background(), []delay.Message{tc.m})
		if err != nil || sdk.CodeOf(res[0].Err) != sdk.CodeIllegal || !strings.Contains(res[0].Err.Error(), tc.want) {
			t.Errorf("%s: %v, %v; want code 11 naming %q", tc.name, res, err, tc.want)
		}
	}
	// A Chronos message needs a Chronos id: code 30, as DDMQ's.
	for _, id := range []string{"", "order-42"} {
		m := msg(func(m *delay.Message) { m.ID, m.Chronos = id, true })
		res, err := s.Add(context.Background(), []delay.Message{m})
		if err != nil || sdk.CodeOf(res[0].Err) != sdk.CodeDelayID || !strings.HasPrefix(res[0].Err.Error(), "id: ") {
			t.Errorf("a Chronos message with id %q: %v, %v; want code 30 naming the id", id, res, err)
		}
	}
}

// Chronos messages are delivered as DDMQ's Chronos delivers them: each
// firing keyed by its own uniqDelayMsgId (a loop's advance in timestamp
// and count, an exponential loop's gaps grow), with from_chronos set,
// and a cancel with the key a consumer received stops a loop.
func TestChronosMessages(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b sdk.Backend) {
		clock := &heldClock{scaledClock: scaledClock{start: time.Now(), speed: 5}}
		s := startWorking(t, b, clock)
		out := newCollector(t, b, "chronos")
		first := clock.Now().Add(2 * time.Second).Truncate(time.Second)
		ts := first.Unix()
		chronos := func(typ delay.ChronosType, times, interval int64, value string, loop *delay.Loop) delay.Message {
			id := delay.ChronosID{Timestamp: ts, Type: typ, Expire: ts + 100, Times: times, Interval: interval, UUID: delay.ChronosUUID("")}
			if loop != nil {
				loop.Times, loop.Expire = times, time.Unix(ts+100, 0)
			}
			return delay.Message{Topic: "chronos", ID: id.String(), DueAt: first, Loop: loop, Chronos: true, Msg: produce.Message{
				Key: []byte("not used"), Value: []byte(value), Partition: 1,
				Headers: []sdk.Header{{Key: "trace", Value: []byte(value)}, {Key: delay.ChronosProperty, Value: []byte("the client's")}},
			}}
		}
		msgs := []delay.Message{
			chronos(delay.ChronosDelay, 0, 0, "once", nil),
			chronos(delay.ChronosLoop, 3, 10, "every 10 s", &delay.Loop{Interval: 10 * time.Second}),
			chronos(delay.ChronosExponentialLoop, 3, 2, "after 2 s, 4 s", &delay.Loop{Base: 2}),
			chronos(delay.ChronosLoop, 100, 10, "cancelled at its second", &delay.Loop{Interval: 10 * time.Second}),
			// Due after the cancelled loop's third firing would be: once it
			// is in, that firing would be too.
			{Topic: "chronos", DueAt: first.Add(25 * time.Second), Msg: produce.Message{Value: []byte("sentinel")}},
		}
		ids := map[string]string{}
		for _, m := range msgs {
			ids[string(m.Msg.Value)] = m.ID
		}
		// Held past the cancelled loop's second firing until the cancel
		// has returned: its third cannot come first, however slow this
		// machine is.
		clock.HoldAt(first.Add(15 * time.Second))
		add(t, s, msgs...)
		var second sdk.Record
		for second.Value == nil {
			out.poll()
			for _, r := range out.got {
				if string(r.Value) == "cancelled at its second" && header(r, delay.HeaderDue) == strconv.FormatInt(first.Add(10*time.Second).UnixMilli(), 10) {
					second = r
				}
			}
		}
		// The consumer cancels with the key it received.
		if err := s.Cancel(context.Background(), "chronos", string(second.Key)); err != nil {
			t.Fatal(err)
		}
		clock.Release()
		for !slices.ContainsFunc(out.got, func(r sdk.Record) bool { return string(r.Value) == "sentinel" }) {
			out.poll()
		}
		settle(t, b, out)

		keys := map[string][]string{}
		for _, r := range out.got {
			v := string(r.Value)
			if v == "sentinel" {
				continue
			}
			keys[v] = append(keys[v], string(r.Key))
			if header(r, delay.ChronosProperty) != delay.ChronosProperty || header(r, "trace") != v || header(r, delay.HeaderID) != ids[v] {
				t.Errorf("%q delivered with headers %v; want from_chronos, trace and its id %s", v, r.Headers, ids[v])
			}
		}
		firing := func(v string, at int64, k int64) string {
			c, err := delay.ParseChronosID(ids[v])
			if err != nil {
				t.Fatal(err)
			}
			return c.Firing(time.Unix(at, 0), k).String()
		}
		for v, want := range map[string][]string{
			"once":                    {ids["once"]},
			"every 10 s":              {firing("every 10 s", ts, 0), firing("every 10 s", ts+10, 1), firing("every 10 s", ts+20, 2)},
			"after 2 s, 4 s":          {firing("after 2 s, 4 s", ts, 0), firing("after 2 s, 4 s", ts+2, 1), firing("after 2 s, 4 s", ts+6, 2)},
			"cancelled at its second": {firing("cancelled at its second", ts, 0), firing("cancelled at its second", ts+10, 1)},
		} {
			got := keys[v]
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("%q delivered with keys\n%s\nwant\n%s", v, strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		}
	})
}

// A client can neither aim a delay message at the gateway's own topics nor
// cancel there (code 13), nor cancel with an id longer than any delay id
// (code 11 naming the limit): every gateway holds every cancel in memory.
// An id at the limit still works. Nothing refused is written.
func TestDelayRefusesGatewayNamesAndLongIDs(t *testing.T) {
	b := brokertest.Kinds[0].Start(t)
	s := startService(t, b, nil)
	ctx := context.Background()
	cancels := newCollector(t, b, "mqgate_delay_cancel")
	for _, topic := range []string{"mqgate_delay_cancel", "mqgate_delay_1s", "mqgate_other"} {
		res, err := s.Add(ctx, []delay.Message{{Topic: topic, DueAt: time.Now().Add(time.Minute), Msg: produce.Message{Value: []byte("x")}}})
		if err != nil || sdk.CodeOf(res[0].Err) != sdk.CodeNotAllowed || !strings.Contains(res[0].Err.Error(), "reserved") {
			t.Errorf("Add to %s: %v, %v; want code 13", topic, res, err)
		}
		if err := s.Cancel(ctx, topic, "id"); sdk.CodeOf(err) != sdk.CodeNotAllowed {
			t.Errorf("Cancel on %s: %v; want code 13", topic, err)
		}
	}
	long := strings.Repeat("i", 1<<20)
	if err := s.Cancel(ctx, "orders", long); sdk.CodeOf(err) != sdk.CodeIllegal || !strings.Contains(err.Error(), "over the limit of 256 bytes") {
		t.Errorf("Cancel with a 1 MiB id: %v; want code 11 naming the limit", err)
	}
	cancels.drain()
	if n := len(cancels.got); n != 0 {
		t.Fatalf("refused cancels wrote %d records", n)
	}
	if err := s.Cancel(ctx, "orders", strings.Repeat("i", delay.MaxIDBytes)); err != nil {
		t.Fatalf("Cancel with an id at the limit: %v", err)
	}
}

// What waits in the tiers is counted from the broker when the metrics are
// scraped (no timer samples it).
func TestPendingCountedWhenScraped(t *testing.T) {
	b := brokertest.Kinds[0].Start(t)
	s, reg := startServiceReg(t, b, nil)
	add(t, s, delay.Message{Topic: "later", DueAt: time.Now().Add(time.Hour), Msg: produce.Message{Value: []byte("x")}})
	deadline := time.Now().Add(60 * time.Second)
	for pending(t, reg) < 1 {
		if time.Now().After(deadline) {
			t.Fatal("a message an hour away never showed in mqgate_delay_pending_messages")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pending sums mqgate_delay_pending_messages over the tiers.
func pending(t *testing.T, reg *prometheus.Registry) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() == "mqgate_delay_pending_messages" {
			for _, m := range mf.GetMetric() {
				n += m.GetGauge().GetValue()
			}
		}
	}
	return n
}

// failingEnsure is a backend whose first EnsureTopics calls fail, as they
// do while a cluster cannot be reached.
type failingEnsure struct {
	sdk.Backend
	left atomic.Int32
}

func (f *failingEnsure) EnsureTopics(ctx context.Context, topics []sdk.TopicSpec) error {
	if f.left.Add(-1) >= 0 {
		return sdk.Errorf(sdk.CodeUnavailable, "kafka brokers unreachable: dial tcp 10.0.0.1:9092: connect: connection refused")
	}
	return f.Backend.EnsureTopics(ctx, topics)
}

// lines records the level and message of each line logged.
type lines struct {
	mu  sync.Mutex
	got []string
}

func (l *lines) Enabled(context.Context, slog.Level) bool { return true }
func (l *lines) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.got = append(l.got, r.Level.String()+" "+r.Message)
	l.mu.Unlock()
	return nil
}
func (l *lines) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *lines) WithGroup(string) slog.Handler      { return l }

// Creating the tier topics while the cluster cannot be reached is one
// warning, however many times it is retried, and a line when it worked.
func TestTopicCreationRetriesLogOnce(t *testing.T) {
	b := &failingEnsure{Backend: brokertest.Kinds[0].Start(t)}
	const failures = 3
	b.left.Store(failures)
	l := &lines{}
	p := produce.NewProducer(map[string]sdk.Backend{"local": b}, produce.Options{Logger: slog.New(slog.DiscardHandler)})
	s := delay.New(delay.Options{
		Cluster: "local", Backend: b, Producer: p,
		Route: func(string) (string, error) { return "local", nil },
		Plan:  testPlan(t), Partitions: 2, Max: 30 * 24 * time.Hour,
		Logger: slog.New(l),
	})
	s.Start()
	t.Cleanup(s.Close)
	deadline := time.Now().Add(60 * time.Second)
	for s.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("the delay service never became ready: %v", s.Ready())
		}
		time.Sleep(20 * time.Millisecond)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var warned, created, debug int
	for _, line := range l.got {
		switch line {
		case "WARN creating delay topics; retrying every second":
			warned++
		case "DEBUG creating delay topics; retrying":
			debug++
		case "INFO created delay topics":
			created++
		}
	}
	if warned != 1 || debug != failures-1 || created != 1 {
		t.Fatalf("%d failures logged %d warnings, %d debug lines and %d 'created' lines; want 1, %d and 1: %q",
			failures, warned, debug, created, failures-1, l.got)
	}
}

// silentCancels is a backend whose reads of the cancel topic get no answer
// until their caller gives up, as a long poll of an empty topic may not,
// and whose first listing of the cancel topic (the reader's) waits for
// release; later listings signal listed.
type silentCancels struct {
	sdk.Backend
	first         atomic.Bool
	held, release chan struct{}
	listed        chan struct{}
}

func (s *silentCancels) ListOffsets(ctx context.Context, topics []string, group string) ([]sdk.QidOffsets, error) {
	if topics[0] != "mqgate_delay_cancel" {
		return s.Backend.ListOffsets(ctx, topics, group)
	}
	if s.first.CompareAndSwap(false, true) {
		close(s.held)
		<-s.release
		return s.Backend.ListOffsets(ctx, topics, group)
	}
	defer func() {
		select {
		case s.listed <- struct{}{}:
		default:
		}
	}()
	return s.Backend.ListOffsets(ctx, topics, group)
}

func (s *silentCancels) Fetch(ctx context.Context, req sdk.FetchRequest) ([]sdk.FetchResult, error) {
	if len(req.Positions) > 0 && req.Positions[0].Topic == "mqgate_delay_cancel" {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return s.Backend.Fetch(ctx, req)
}

// A message due at once, added before the cancel reader knows where the
// cancel topic starts, is delivered as soon as it does: on an empty topic
// there is no cancel to wait for, though the reader's first read may not
// answer for a while.
func TestDueAtStartDoesNotWaitForCancelRead(t *testing.T) {
	b := &silentCancels{Backend: brokertest.Kinds[0].Start(t), held: make(chan struct{}), release: make(chan struct{}), listed: make(chan struct{}, 1)}
	s := startService(t, b, nil)
	got := newCollector(t, b, "due")
	<-b.held // the reader is listing the cancel topic
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	type added struct {
		res []delay.Result
		err error
	}
	done := make(chan added, 1)
	go func() {
		res, err := s.Add(ctx, []delay.Message{{Topic: "due", DueAt: time.Now().Add(-time.Second), Msg: produce.Message{Value: []byte("now")}}})
		done <- added{res, err}
	}()
	<-b.listed // Add's own listing: it now waits for the reader
	close(b.release)
	a := <-done
	if a.err != nil || a.res[0].Err != nil {
		t.Fatalf("Add of a due message: %v, %+v", a.err, a.res)
	}
	got.wait(1, 30*time.Second)
}

// A record already in a tier topic that Add would have refused (written
// there before the gateway refused such writes, or by a client of the
// broker itself) is skipped, not delivered: one aimed at the cancel topic
// (a forged cancel), one whose message carries the gateway's own headers.
// A proper record next to them is delivered.
func TestTierRecordsAddWouldRefuseAreSkipped(t *testing.T) {
	b := brokertest.Kinds[0].Start(t)
	_, reg := startServiceReg(t, b, nil)
	good := newCollector(t, b, "good")
	orders := newCollector(t, b, "orders")
	cancels := newCollector(t, b, "mqgate_delay_cancel")
	cancels.drain()
	before := len(cancels.got)

	due := []byte(strconv.FormatInt(time.Now().UnixMilli(), 10))
	tier := func(target, id string, own ...sdk.Header) sdk.Record {
		return sdk.Record{Topic: delay.TierName("mqgate_delay_", time.Second), Partition: sdk.PartitionHash, Value: []byte(id),
			Headers: append(own,
				sdk.Header{Key: "mqgate-delay-topic", Value: []byte(target)},
				sdk.Header{Key: "mqgate-delay-id", Value: []byte(id)},
				sdk.Header{Key: "mqgate-delay-due-ms", Value: due})}
	}
	res, err := b.Produce(context.Background(), []sdk.Record{
		tier("mqgate_delay_cancel", "forged"),
		tier("orders", "faked", sdk.Header{Key: "mqgate-dlq-origin-topic", Value: []byte("payments")}),
		tier("good", "proper"),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	if got := good.wait(1, 60*time.Second); string(got[0].Value) != "proper" {
		t.Fatalf("delivered to good: %q; want proper", got[0].Value)
	}
	settle(t, b, orders)
	cancels.drain()
	if n := len(orders.got); n != 0 {
		t.Errorf("a tier record with mqgate-dlq-* headers was delivered %d times", n)
	}
	if n := len(cancels.got) - before; n != 0 {
		t.Errorf("a tier record aimed at the cancel topic wrote %d cancels", n)
	}
	if n := counter(t, reg, "mqgate_delay_dropped_total", "reserved"); n != 2 {
		t.Errorf("mqgate_delay_dropped_total{reason=\"reserved\"} = %v; want 2", n)
	}
}

// counter is the value of a counter's sample with the one label value.
func counter(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if lp := m.GetLabel(); len(lp) == 1 && lp[0].GetValue() == label {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
