package rmqfake_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
	"github.com/apache/rocketmq-client-go/v2/rlog"

	"github.com/mqgate/mqgate/plugins/rocketmq/rmqfake"
)

func TestMain(m *testing.M) {
	rlog.SetLogLevel("error")
	os.Exit(m.Run())
}

var seq atomic.Int64

// unique names producers, consumers, groups and topics: the client shares
// one internal client per IP@instance process-wide.
func unique(prefix string) string { return fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), seq.Add(1)) }

func startFake(t *testing.T, opts rmqfake.Options) *rmqfake.Fake {
	t.Helper()
	if opts.RetryDelay == nil {
		opts.RetryDelay = func(int) time.Duration { return 20 * time.Millisecond }
	}
	f, err := rmqfake.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func newProducer(t *testing.T, f *rmqfake.Fake, opts ...producer.Option) rocketmq.Producer {
	t.Helper()
	opts = append([]producer.Option{
		producer.WithNameServer(primitive.NamesrvAddr{f.Addr()}),
		producer.WithGroupName(unique("pg")),
		producer.WithInstanceName(unique("p")),
		producer.WithRetry(0),
	}, opts...)
	p, err := rocketmq.NewProducer(opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Shutdown() })
	return p
}

type handler func(context.Context, ...*primitive.MessageExt) (consumer.ConsumeResult, error)

// newConsumer starts a clustering push consumer reading from the first
// offset; shut it down with the returned function (also done at cleanup).
func newConsumer(t *testing.T, f *rmqfake.Fake, group, topic, expr string, h handler, opts ...consumer.Option) func() {
	t.Helper()
	// rocketmq-client-go v2.1.2 races with itself: the first route refresh
	// of a client, 10 ms after it starts, reads SubscriptionData.SubVersion
	// (internal/model.go:70) while the consumer's start-up rebalance writes
	// it (consumer/push_consumer.go:505). Starting the shared client first,
	// through a producer with the same instance name, gets that refresh
	// out of the way before the consumer exists.
	instance := unique("c")
	warm := newProducer(t, f, producer.WithInstanceName(instance))
	time.Sleep(100 * time.Millisecond)
	opts = append([]consumer.Option{
		consumer.WithNameServer(primitive.NamesrvAddr{f.Addr()}),
		consumer.WithGroupName(group),
		consumer.WithInstance(instance),
		consumer.WithConsumerModel(consumer.Clustering),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset),
	}, opts...)
	c, err := rocketmq.NewPushConsumer(opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Subscribe(topic, consumer.MessageSelector{Type: consumer.TAG, Expression: expr}, h); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	// The client closes its connections when its last user shuts down.
	stop := func() { once.Do(func() { c.Shutdown(); warm.Shutdown() }) }
	t.Cleanup(stop)
	return stop
}

// collector records what a consumer received.
type collector struct {
	mu   sync.Mutex
	msgs []*primitive.MessageExt
}

func (c *collector) handle(_ context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
	c.mu.Lock()
	c.msgs = append(c.msgs, msgs...)
	c.mu.Unlock()
	return consumer.ConsumeSuccess, nil
}

func (c *collector) bodies() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b []string
	for _, m := range c.msgs {
		b = append(b, string(m.Body))
	}
	slices.Sort(b)
	return b
}

func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func message(topic, body, tag string, props ...string) *primitive.Message {
	m := primitive.NewMessage(topic, []byte(body))
	if tag != "" {
		m.WithTag(tag)
	}
	for i := 0; i+1 < len(props); i += 2 {
		m.WithProperty(props[i], props[i+1])
	}
	return m
}

func TestSendAndConsume(t *testing.T) {
	f := startFake(t, rmqfake.Options{})
	topic := unique("send")
	if err := f.CreateTopic(topic, 4); err != nil {
		t.Fatal(err)
	}
	p := newProducer(t, f)
	ctx := context.Background()

	// Single message.
	m := message(topic, "single", "ta", "color", "red")
	m.WithKeys([]string{"k1", "k2"})
	res, err := p.SendSync(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	q := res.MessageQueue.QueueId
	stored := f.Messages(topic, q)
	if res.Status != primitive.SendOK || len(stored) != 1 || res.QueueOffset != 0 {
		t.Fatalf("single: result %v, stored %d", res, len(stored))
	}
	s := stored[0]
	if string(s.Body) != "single" || s.Tags() != "ta" || s.Keys() != "k1 k2" || s.Properties["color"] != "red" ||
		s.MsgID != res.OffsetMsgID || s.Properties["UNIQ_KEY"] != res.MsgID {
		t.Fatalf("single: stored %+v, result %v", s, res)
	}

	// Batch into a chosen queue: one offset per message.
	bp := newProducer(t, f, producer.WithQueueSelector(producer.NewManualQueueSelector()))
	var batch []*primitive.Message
	for i := range 3 {
		m := message(topic, fmt.Sprintf("batch-%d", i), "tb", "n", fmt.Sprint(i))
		m.Queue = &primitive.MessageQueue{Topic: topic, BrokerName: "broker-a", QueueId: 2}
		batch = append(batch, m)
	}
	before := int64(len(f.Messages(topic, 2)))
	res, err = bp.SendSync(ctx, batch...)
	if err != nil {
		t.Fatal(err)
	}
	stored = f.Messages(topic, 2)
	ids := strings.Split(res.OffsetMsgID, ",")
	if res.MessageQueue.QueueId != 2 || res.QueueOffset != before || len(ids) != 3 || len(stored) != int(before)+3 {
		t.Fatalf("batch: result %v, %d stored", res, len(stored))
	}
	for i, s := range stored[before:] {
		if string(s.Body) != fmt.Sprintf("batch-%d", i) || s.QueueOffset != before+int64(i) || s.MsgID != ids[i] || s.Properties["n"] != fmt.Sprint(i) {
			t.Fatalf("batch message %d: %+v", i, s)
		}
	}

	// Async.
	done := make(chan *primitive.SendResult, 1)
	err = p.SendAsync(ctx, func(_ context.Context, r *primitive.SendResult, err error) {
		if err != nil {
			t.Error(err)
		}
		done <- r
	}, message(topic, "async", "tc", "color", "blue"))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r == nil {
			t.Fatal("async send failed")
		}
		got := f.Messages(topic, r.MessageQueue.QueueId)
		if int(r.QueueOffset) >= len(got) || string(got[r.QueueOffset].Body) != "async" {
			t.Fatalf("async: result %v not in store", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("async send: no callback")
	}

	// Everything comes back intact.
	var c collector
	newConsumer(t, f, unique("g"), topic, "*", c.handle)
	waitFor(t, 20*time.Second, "5 messages consumed", func() bool { return c.len() >= 5 })
	want := []string{"async", "batch-0", "batch-1", "batch-2", "single"}
	if got := c.bodies(); !slices.Equal(got, want) {
		t.Fatalf("consumed %q, want %q", got, want)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.msgs {
		if string(m.Body) == "single" {
			if m.GetTags() != "ta" || m.GetKeys() != "k1 k2" || m.GetProperty("color") != "red" ||
				m.Topic != topic || m.ReconsumeTimes != 0 || m.StoreHost != f.Addr() || m.OffsetMsgId != res0(f, topic, q) {
				t.Fatalf("consumed single: %v", m)
			}
		}
	}
}

func res0(f *rmqfake.Fake, topic string, q int) string { return f.Messages(topic, q)[0].MsgID }

func TestTagFilter(t *testing.T) {
	f := startFake(t, rmqfake.Options{})
	topic := unique("tags")
	f.CreateTopic(topic, 2)
	p := newProducer(t, f)
	for i := range 9 {
		tag := string(rune('a' + i%3))
		if _, err := p.SendSync(context.Background(), message(topic, fmt.Sprintf("%s%d", tag, i), tag)); err != nil {
			t.Fatal(err)
		}
	}
	var c collector
	newConsumer(t, f, unique("g"), topic, "a || b", c.handle)
	waitFor(t, 20*time.Second, "6 messages", func() bool { return c.len() >= 6 })
	time.Sleep(200 * time.Millisecond) // a stray "c" would come with the same pulls
	want := []string{"a0", "a3", "a6", "b1", "b4", "b7"}
	if got := c.bodies(); !slices.Equal(got, want) {
		t.Fatalf("consumed %q, want %q", got, want)
	}
}

func TestCommitAndRestart(t *testing.T) {
	f := startFake(t, rmqfake.Options{})
	topic, group := unique("restart"), unique("g")
	f.CreateTopic(topic, 4)
	p := newProducer(t, f)
	send := func(prefix string, n int) {
		for i := range n {
			if _, err := p.SendSync(context.Background(), message(topic, fmt.Sprintf("%s-%d", prefix, i), "")); err != nil {
				t.Fatal(err)
			}
		}
	}
	send("old", 8)
	var first collector
	stop := newConsumer(t, f, group, topic, "*", first.handle)
	waitFor(t, 20*time.Second, "8 old messages", func() bool { return first.len() >= 8 })
	// The client records a consumed offset just after the handler
	// returns, so Shutdown may persist one or two short of 8, and it sends
	// its updates one-way. Whatever the fake holds once every queue has an
	// offset and the updates have landed is where the restarted consumer
	// must start.
	time.Sleep(300 * time.Millisecond)
	stop()
	committedSum := func() (sum int64, all bool) {
		all = true
		for q := range 4 {
			off, ok := f.ConsumerOffset(group, topic, q)
			all = all && ok
			sum += off
		}
		return sum, all
	}
	waitFor(t, 10*time.Second, "offsets of every queue", func() bool { _, all := committedSum(); return all })
	time.Sleep(200 * time.Millisecond) // the last one-way updates
	committed, _ := committedSum()
	if committed < 6 {
		t.Fatalf("Shutdown persisted offsets summing to %d after 8 messages were consumed", committed)
	}

	send("new", 4)
	var second collector
	newConsumer(t, f, group, topic, "*", second.handle)
	want := 4 + int(8-committed)
	waitFor(t, 20*time.Second, "the new messages", func() bool { return second.len() >= want })
	time.Sleep(200 * time.Millisecond)
	got := second.bodies()
	old := 0
	for _, b := range got {
		if strings.HasPrefix(b, "old-") {
			old++
		}
	}
	for i := range 4 {
		if !slices.Contains(got, fmt.Sprintf("new-%d", i)) {
			t.Fatalf("restarted consumer got %q, missing new-%d", got, i)
		}
	}
	if len(got) != want || old != int(8-committed) {
		t.Fatalf("restarted consumer got %q; want the 4 new ones and the %d old ones past the committed offsets", got, 8-committed)
	}
}

func TestRetryAndDeadLetter(t *testing.T) {
	f := startFake(t, rmqfake.Options{})
	topic := unique("retry")
	f.CreateTopic(topic, 1)
	p := newProducer(t, f)

	// Fails once, then succeeds: the message comes back via %RETRY%group.
	group := unique("g")
	var mu sync.Mutex
	var seen []int32
	newConsumer(t, f, group, topic, "*", func(_ context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range msgs {
			if string(m.Body) != "flaky" || m.Topic != topic || m.GetTags() != "x" {
				t.Errorf("unexpected message %v", m)
			}
			seen = append(seen, m.ReconsumeTimes)
		}
		if len(seen) == 1 {
			return consumer.ConsumeRetryLater, nil
		}
		return consumer.ConsumeSuccess, nil
	})
	if _, err := p.SendSync(context.Background(), message(topic, "flaky", "x")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "redelivery", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) >= 2 })
	mu.Lock()
	if !slices.Equal(seen, []int32{0, 1}) {
		t.Fatalf("reconsume times %v, want [0 1]", seen)
	}
	mu.Unlock()
	retried := f.Messages("%RETRY%"+group, 0)
	if len(retried) != 1 || retried[0].ReconsumeTimes != 1 || retried[0].Properties["RETRY_TOPIC"] != topic {
		t.Fatalf("retry topic holds %+v", retried)
	}

	// Always fails with maxReconsumeTimes 1: two attempts, then the DLQ.
	dlqGroup := unique("g")
	var attempts atomic.Int32
	newConsumer(t, f, dlqGroup, topic, "*", func(context.Context, ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		attempts.Add(1)
		return consumer.ConsumeRetryLater, nil
	}, consumer.WithMaxReconsumeTimes(1))
	waitFor(t, 20*time.Second, "dead letter", func() bool { return len(f.Messages("%DLQ%"+dlqGroup, 0)) == 1 })
	dead := f.Messages("%DLQ%"+dlqGroup, 0)[0]
	if string(dead.Body) != "flaky" || dead.ReconsumeTimes != 2 || dead.Properties["RETRY_TOPIC"] != topic || attempts.Load() != 2 {
		t.Fatalf("dead letter %+v after %d attempts", dead, attempts.Load())
	}
}

func TestAutoCreateTopics(t *testing.T) {
	ctx := context.Background()
	off := startFake(t, rmqfake.Options{})
	if _, err := newProducer(t, off).SendSync(ctx, message(unique("nope"), "x", "")); err == nil {
		t.Fatal("send to an unknown topic succeeded without AutoCreateTopics")
	}

	on := startFake(t, rmqfake.Options{AutoCreateTopics: true, DefaultQueues: 2})
	topic := unique("auto")
	res, err := newProducer(t, on).SendSync(ctx, message(topic, "x", ""))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(on.Topics(), topic) || len(on.Messages(topic, res.MessageQueue.QueueId)) != 1 {
		t.Fatalf("topics %v", on.Topics())
	}
}
