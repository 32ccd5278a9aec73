package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mqgate/mqgate/plugins/rocketmq/rmqfake"
)

// testBroker is the broker behind a gateway under test, with that broker's
// own client for reading back what the gateway wrote. Integration tests of
// every core feature run over brokerKinds, so a feature is tested on each
// backend from one table.
type testBroker struct {
	// plugin is the bundled plugin serving the broker.
	plugin string
	// config is the cluster's plugin config, a YAML flow map.
	config string
	// addr is where the broker's own clients connect: the Kafka bootstrap
	// address or the RocketMQ name server.
	addr string
	// readUntil reads topic from the start with the broker's own client
	// until done says it has read enough, failing t after 30 s.
	readUntil func(t *testing.T, topic string, done func([]brokerRecord) bool) []brokerRecord
	// pause, when not nil, makes the broker stop answering produce
	// requests (true) or answer again (false).
	pause func(bool)
}

// brokerRecord is a record as the broker's own client read it. Tags come
// from RocketMQ's TAGS or Kafka's "tags" header.
type brokerRecord struct {
	Key, Value, Tags string
	Headers          map[string]string
	Partition        int32
	Offset           int64
}

type brokerKind struct {
	name string
	// local starts a broker like the default deployment's: topics are
	// created on first produce; data that survives the gateway lives under
	// dir.
	local func(t *testing.T, dir string) *testBroker
	// external starts a production-like broker holding only topics, each
	// with two partitions, that creates no topics on produce.
	external func(t *testing.T, topics ...string) *testBroker
}

var brokerKinds = []brokerKind{
	{"kafka", embeddedKafka, externalKafka},
	{"rocketmq", fakeRocketMQ, externalRocketMQ},
}

// forEachBroker runs test once per backend, as a subtest.
func forEachBroker(t *testing.T, test func(t *testing.T, kind brokerKind)) {
	for _, k := range brokerKinds {
		t.Run(k.name, func(t *testing.T) { test(t, k) })
	}
}

func embeddedKafka(t *testing.T, dir string) *testBroker {
	addr := freeAddr(t)
	return &testBroker{
		plugin: "kafka",
		config: fmt.Sprintf("{brokers: embedded, listen: %q, data_dir: %q}", addr, filepath.Join(dir, "data")),
		addr:   addr,
		readUntil: func(t *testing.T, topic string, done func([]brokerRecord) bool) []brokerRecord {
			return readKafka(t, addr, topic, done)
		},
	}
}

// read reads want records of topic from the start with the broker's own
// client.
func (b *testBroker) read(t *testing.T, topic string, want int) []brokerRecord {
	t.Helper()
	return b.readUntil(t, topic, func(rs []brokerRecord) bool { return len(rs) >= want })
}

func readKafka(t *testing.T, addr, topic string, done func([]brokerRecord) bool) []brokerRecord {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []brokerRecord
	for !done(out) {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d records from %s with franz-go, not enough", len(out), topic)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Logf("fetch: %v", err) })
		for _, r := range fs.Records() {
			br := brokerRecord{Key: string(r.Key), Value: string(r.Value), Headers: map[string]string{}, Partition: r.Partition, Offset: r.Offset}
			for _, h := range r.Headers {
				br.Headers[h.Key] = string(h.Value)
			}
			br.Tags = br.Headers["tags"]
			out = append(out, br)
		}
	}
	return out
}

var rocketmqReaders atomic.Int64

// fakeRocketMQ is the RocketMQ protocol fake with topic auto-creation, as
// a development broker (autoCreateTopicEnable) has it.
func fakeRocketMQ(t *testing.T, _ string) *testBroker {
	return startRocketMQ(t, rmqfake.Options{AutoCreateTopics: true})
}

func externalRocketMQ(t *testing.T, topics ...string) *testBroker {
	return startRocketMQ(t, rmqfake.Options{}, topics...)
}

func externalKafka(t *testing.T, topics ...string) *testBroker {
	eb := startExternalBroker(t, topics...)
	addr := eb.cluster.ListenAddrs()[0]
	return &testBroker{
		plugin: "kafka",
		config: fmt.Sprintf("{brokers: [%q]}", addr),
		addr:   addr,
		readUntil: func(t *testing.T, topic string, done func([]brokerRecord) bool) []brokerRecord {
			return readKafka(t, addr, topic, done)
		},
		pause: eb.paused.Store,
	}
}

func startRocketMQ(t *testing.T, opts rmqfake.Options, topics ...string) *testBroker {
	t.Helper()
	f, err := rmqfake.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	for _, topic := range topics {
		if err := f.CreateTopic(topic, 2); err != nil {
			t.Fatal(err)
		}
	}
	return &testBroker{
		plugin: "rocketmq",
		config: fmt.Sprintf("{nameservers: [%q]}", f.Addr()),
		addr:   f.Addr(),
		readUntil: func(t *testing.T, topic string, done func([]brokerRecord) bool) []brokerRecord {
			return readRocketMQ(t, f, topic, done)
		},
		pause: f.Pause,
	}
}

// readRocketMQ reads with rocketmq-client-go's push consumer, in a new
// group from the first offset.
func readRocketMQ(t *testing.T, f *rmqfake.Fake, topic string, done func([]brokerRecord) bool) []brokerRecord {
	t.Helper()
	nameserver := f.Addr()
	// The client refuses to consume a topic that does not exist yet (a
	// topic created by its first, delayed, message, say).
	deadline := time.Now().Add(30 * time.Second)
	for !slices.Contains(f.Topics(), topic) {
		if time.Now().After(deadline) {
			t.Fatalf("topic %s never appeared on the RocketMQ fake", topic)
		}
		time.Sleep(20 * time.Millisecond)
	}
	n := rocketmqReaders.Add(1)
	instance := fmt.Sprintf("reader-%d", n)
	// rocketmq-client-go v2.1.2 races with itself: a client's first route
	// refresh, 10 ms after it starts, reads SubscriptionData.SubVersion
	// while a push consumer's start-up rebalance writes it. Starting the
	// shared client first, through a producer with the same instance
	// name, gets that refresh done before the consumer exists.
	warm, err := rmq.NewProducer(producer.WithNsResolver(primitive.NewPassthroughResolver([]string{nameserver})),
		producer.WithInstanceName(instance), producer.WithGroupName(instance))
	if err != nil {
		t.Fatal(err)
	}
	if err := warm.Start(); err != nil {
		t.Fatal(err)
	}
	defer warm.Shutdown()
	time.Sleep(100 * time.Millisecond)
	c, err := rmq.NewPushConsumer(
		consumer.WithGroupName(fmt.Sprintf("reader-%d-%d", time.Now().UnixNano(), n)),
		consumer.WithInstance(instance),
		consumer.WithNsResolver(primitive.NewPassthroughResolver([]string{nameserver})),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset),
	)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var out []brokerRecord
	err = c.Subscribe(topic, consumer.MessageSelector{}, func(_ context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range msgs {
			br := brokerRecord{Key: m.GetKeys(), Value: string(m.Body), Tags: m.GetTags(), Headers: m.GetProperties(),
				Partition: int32(m.Queue.QueueId), Offset: m.QueueOffset}
			out = append(out, br)
		}
		return consumer.ConsumeSuccess, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Shutdown()
	for {
		mu.Lock()
		enough, got := done(out), len(out)
		mu.Unlock()
		if enough {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("read %d records from %s with rocketmq-client-go, not enough", got, topic)
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	// Queues are consumed in parallel; offset order within a queue is
	// what RocketMQ promises.
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Partition != out[j].Partition {
			return out[i].Partition < out[j].Partition
		}
		return out[i].Offset < out[j].Offset
	})
	return out
}
