package rmqfake_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
	"github.com/apache/rocketmq-client-go/v2/rlog"

	"github.com/mqgate/mqgate/plugins/rocketmq/rmqfake"
)

func TestMain(m *testing.M) {
	rlog.SetLogLevel("error")
	code := m.Run()
	if readerDir != "" {
		os.RemoveAll(readerDir)
	}
	os.Exit(code)
}

var seq atomic.Int64

// unique names producers, groups and topics: the client shares one
// internal client per IP@instance process-wide.
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

// The consumers of these tests are rocketmq-client-go's push consumer run
// in an rmqread process, built once without the race detector: the
// client races with itself at start-up (see internal/brokertest/rmqread),
// and inside this -race test binary that report would fail the test.
var (
	readerOnce sync.Once
	readerDir  string // removed by TestMain
	readerBin  string
	readerErr  error
)

func rmqreadBin(t *testing.T) string {
	t.Helper()
	readerOnce.Do(func() {
		if readerDir, readerErr = os.MkdirTemp("", "rmqfake-test"); readerErr != nil {
			return
		}
		readerBin = filepath.Join(readerDir, "rmqread")
		out, err := exec.Command("go", "build", "-o", readerBin, "../../../internal/brokertest/rmqread").CombinedOutput()
		if err != nil {
			readerErr = fmt.Errorf("building rmqread: %v\n%s", err, out)
		}
	})
	if readerErr != nil {
		t.Fatal(readerErr)
	}
	return readerBin
}

// delivery is one message as a consumer got it (a line of rmqread).
type delivery struct {
	Topic          string
	Key            string
	Value          []byte
	Tags           string
	Properties     map[string]string
	QueueID        int32  `json:"queue_id"`
	Offset         int64  `json:"offset"`
	OffsetMsgID    string `json:"offset_msg_id"`
	StoreHost      string `json:"store_host"`
	ReconsumeTimes int32  `json:"reconsume_times"`
}

// consumerProc is a clustering push consumer of one group reading a topic
// from its first offset, in a process of its own.
type consumerProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.Closer
	lines  chan delivery
	ended  chan error // what ended stdout
	stderr bytes.Buffer
	got    []delivery
	exited bool // stop saw it exit
}

// startConsumer starts a consumer; args are more rmqread flags.
func startConsumer(t *testing.T, f *rmqfake.Fake, group, topic string, args ...string) *consumerProc {
	t.Helper()
	c := &consumerProc{t: t, lines: make(chan delivery), ended: make(chan error, 1)}
	c.cmd = exec.Command(rmqreadBin(t), append([]string{"-nameserver", f.Addr(), "-topic", topic, "-group", group}, args...)...)
	stdin, err := c.cmd.StdinPipe() // closing it stops the consumer
	if err != nil {
		t.Fatal(err)
	}
	c.stdin = stdin
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.cmd.Stderr = &c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		dec := json.NewDecoder(stdout)
		for {
			var d delivery
			if err := dec.Decode(&d); err != nil {
				c.ended <- err
				close(c.lines)
				return
			}
			c.lines <- d
		}
	}()
	t.Cleanup(func() {
		if !c.exited {
			_ = c.cmd.Process.Kill()
			for range c.lines { // until the reader of its stdout is done
			}
			_ = c.cmd.Wait()
		}
	})
	return c
}

// fail ends the test with what the consumer wrote on stderr, read once
// the process is gone.
func (c *consumerProc) fail(format string, args ...any) {
	c.t.Helper()
	_ = c.cmd.Process.Kill()
	go func() { // the reader of its stdout may be waiting to hand a line
		for range c.lines {
		}
	}()
	_ = c.cmd.Wait()
	c.exited = true
	c.t.Fatalf(format+"\nrmqread's stderr:\n%s", append(args, c.stderr.String())...)
}

// until reads deliveries until done says there are enough, and returns
// all so far.
func (c *consumerProc) until(what string, done func([]delivery) bool) []delivery {
	c.t.Helper()
	timeout := time.After(30 * time.Second)
	for !done(c.got) {
		select {
		case d, ok := <-c.lines:
			if !ok {
				c.fail("the consumer stopped after %d deliveries, waiting for %s: %v", len(c.got), what, <-c.ended)
			}
			c.got = append(c.got, d)
		case <-timeout:
			c.fail("the consumer got %d messages in 30 s, waiting for %s: %q", len(c.got), what, bodies(c.got))
		}
	}
	return c.got
}

// stop shuts the consumer down (which persists its offsets), waits for
// its process to exit and returns every delivery it printed.
func (c *consumerProc) stop() []delivery {
	c.t.Helper()
	c.stdin.Close()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case d, ok := <-c.lines:
			if ok {
				c.got = append(c.got, d)
				continue
			}
			if err := <-c.ended; err != io.EOF {
				c.fail("reading the consumer: %v", err)
			}
			err := c.cmd.Wait()
			c.exited = true
			if err != nil {
				c.t.Fatalf("the consumer: %v\n%s", err, c.stderr.String()) // read after Wait
			}
			return c.got
		case <-timeout:
			c.fail("the consumer did not stop within 30 s")
		}
	}
}

// atLeast is an until condition: n deliveries.
func atLeast(n int) func([]delivery) bool {
	return func(ds []delivery) bool { return len(ds) >= n }
}

// sawAll is an until condition: every one of bodies delivered.
func sawAll(bodies ...string) func([]delivery) bool {
	return func(ds []delivery) bool {
		for _, b := range bodies {
			if !slices.ContainsFunc(ds, func(d delivery) bool { return string(d.Value) == b }) {
				return false
			}
		}
		return true
	}
}

// bodies are the bodies of ds, sorted.
func bodies(ds []delivery) []string {
	var b []string
	for _, d := range ds {
		b = append(b, string(d.Value))
	}
	slices.Sort(b)
	return b
}

// endQueues sends a sentinel "end-<queue>" with tag to the end of every
// queue of topic and returns their bodies. A consumer run with -serial
// prints each queue in offset order, so once it printed every sentinel it
// printed everything stored before them: a negative check needs no wait.
func endQueues(t *testing.T, f *rmqfake.Fake, topic string, queues int, tag string) []string {
	t.Helper()
	p := newProducer(t, f, producer.WithQueueSelector(producer.NewManualQueueSelector()))
	var ends []string
	for q := range queues {
		m := message(topic, fmt.Sprintf("end-%d", q), tag)
		m.Queue = &primitive.MessageQueue{Topic: topic, BrokerName: "broker-a", QueueId: q}
		if _, err := p.SendSync(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		ends = append(ends, string(m.Body))
	}
	return ends
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
	got := startConsumer(t, f, unique("g"), topic).until("5 messages", atLeast(5))
	want := []string{"async", "batch-0", "batch-1", "batch-2", "single"}
	if got := bodies(got); !slices.Equal(got, want) {
		t.Fatalf("consumed %q, want %q", got, want)
	}
	for _, m := range got {
		if string(m.Value) == "single" {
			if m.Tags != "ta" || m.Key != "k1 k2" || m.Properties["color"] != "red" ||
				m.Topic != topic || m.ReconsumeTimes != 0 || m.StoreHost != f.Addr() || m.OffsetMsgID != res0(f, topic, q) {
				t.Fatalf("consumed single: %+v", m)
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
	// A stray "c" would be stored before the end of its queue.
	ends := endQueues(t, f, topic, 2, "a")
	c := startConsumer(t, f, unique("g"), topic, "-tags", "a || b", "-serial")
	got := c.until("the end of both queues", sawAll(ends...))
	want := append([]string{"a0", "a3", "a6", "b1", "b4", "b7"}, ends...)
	slices.Sort(want)
	if got := bodies(got); !slices.Equal(got, want) {
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
	// One handler call at a time (-serial): when the 8th message is
	// printed, the client has recorded the consumed offsets of the 7
	// before it, and Shutdown persists what it recorded, one-way.
	first := startConsumer(t, f, group, topic, "-serial")
	first.until("8 old messages", atLeast(8))
	seen := first.stop()
	// Once the first client's connection is gone, everything it sent
	// has been applied, its last offset updates too: what the fake holds
	// now is where the restarted consumer must start.
	waitFor(t, 30*time.Second, "the first consumer to hang up", func() bool { return !f.GroupConnected(group) })
	if ids := f.Consumers(group); len(ids) != 0 {
		t.Fatalf("consumers %q still in the group after the only one shut down", ids)
	}
	// Shutdown sends every queue's offset, but rocketmq-client-go may
	// close its connection in the middle of writing the last of them: the
	// fake then reads a truncated frame, and that queue has no offset (a
	// broker would lose it the same way). The restarted consumer reads
	// such a queue from its start, which the count of old messages below
	// allows for.
	var committed int64
	var offsets []string
	missing := 0
	for q := range 4 {
		off, ok := f.ConsumerOffset(group, topic, q)
		offsets = append(offsets, fmt.Sprintf("queue %d: %d (%v)", q, off, ok))
		if !ok {
			missing++
			continue
		}
		committed += off
	}
	if missing > 1 || committed < 6-2*int64(missing) {
		var got []string
		for _, d := range seen {
			got = append(got, fmt.Sprintf("%s at %d/%d", d.Value, d.QueueID, d.Offset))
		}
		t.Fatalf("after 8 messages were consumed (%s), Shutdown persisted %s", strings.Join(got, ", "), strings.Join(offsets, ", "))
	}

	send("new", 4)
	ends := endQueues(t, f, topic, 4, "")
	second := startConsumer(t, f, group, topic, "-serial")
	var got []string
	for _, b := range bodies(second.until("the end of every queue", sawAll(ends...))) {
		if !strings.HasPrefix(b, "end-") {
			got = append(got, b)
		}
	}
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
	if want := 4 + int(8-committed); len(got) != want || old != int(8-committed) {
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
	c := startConsumer(t, f, group, topic, "-fail", "1")
	if _, err := p.SendSync(context.Background(), message(topic, "flaky", "x")); err != nil {
		t.Fatal(err)
	}
	var seen []int32
	for _, m := range c.until("redelivery", atLeast(2)) {
		if string(m.Value) != "flaky" || m.Topic != topic || m.Tags != "x" {
			t.Errorf("unexpected message %+v", m)
		}
		seen = append(seen, m.ReconsumeTimes)
	}
	if !slices.Equal(seen, []int32{0, 1}) {
		t.Fatalf("reconsume times %v, want [0 1]", seen)
	}
	retried := f.Messages("%RETRY%"+group, 0)
	if len(retried) != 1 || retried[0].ReconsumeTimes != 1 || retried[0].Properties["RETRY_TOPIC"] != topic {
		t.Fatalf("retry topic holds %+v", retried)
	}

	// Always fails with maxReconsumeTimes 1: two attempts, then the DLQ.
	dlqGroup := unique("g")
	dc := startConsumer(t, f, dlqGroup, topic, "-fail", "-1", "-max-reconsume", "1")
	waitFor(t, 30*time.Second, "dead letter", func() bool { return len(f.Messages("%DLQ%"+dlqGroup, 0)) == 1 })
	attempts := dc.stop()
	dead := f.Messages("%DLQ%"+dlqGroup, 0)[0]
	if string(dead.Body) != "flaky" || dead.ReconsumeTimes != 2 || dead.Properties["RETRY_TOPIC"] != topic || len(attempts) != 2 {
		t.Fatalf("dead letter %+v after %d attempts", dead, len(attempts))
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
