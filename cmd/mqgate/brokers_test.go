package main

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
	"sort"
	"sync/atomic"
	"testing"
	"time"

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
	// address or the RocketMQ name server. An embedded broker's is set by
	// each gateway that starts it.
	addr string
	// embedded is a broker the gateway's plugin runs on a port the OS
	// picks; latest, set by the gateway that runs it, says where it
	// listens now (a restarted plugin restarts it on a new port).
	embedded bool
	latest   func() string
	// readUntil reads topic from the start with the broker's own client
	// until done says it has read enough, failing t after 2 minutes.
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
	b := &testBroker{
		plugin:   "kafka",
		config:   fmt.Sprintf("{brokers: embedded, listen: %q, data_dir: %q}", anyPort, filepath.Join(dir, "data")),
		embedded: true,
	}
	b.readUntil = func(t *testing.T, topic string, done func([]brokerRecord) bool) []brokerRecord {
		if b.latest == nil {
			t.Fatal("the embedded broker has not started")
		}
		return readKafka(t, b.latest(), topic, done)
	}
	return b
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
	// A guard against a hang, not a speed requirement.
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
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

// readRocketMQ reads topic from its first offset with rocketmq-client-go's
// push consumer, in a new group, until done says it has read enough. The
// client runs in a process of its own, rmqread (see its doc comment for
// why).
func readRocketMQ(t *testing.T, f *rmqfake.Fake, topic string, done func([]brokerRecord) bool) []brokerRecord {
	t.Helper()
	// The client refuses to consume a topic that does not exist yet (a
	// topic created by its first, delayed, message, say).
	deadline := time.Now().Add(120 * time.Second) // a guard against a hang
	for !slices.Contains(f.Topics(), topic) {
		if time.Now().After(deadline) {
			t.Fatalf("topic %s never appeared on the RocketMQ fake", topic)
		}
		time.Sleep(20 * time.Millisecond)
	}
	group := fmt.Sprintf("reader-%d-%d", os.Getpid(), rocketmqReaders.Add(1))
	cmd := exec.Command(rmqreadBin, "-nameserver", f.Addr(), "-topic", topic, "-group", group)
	stdin, err := cmd.StdinPipe() // closing it ends the reader
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan brokerRecord)
	ended := make(chan error, 1)
	go func() {
		dec := json.NewDecoder(stdout)
		for {
			var m struct {
				Key, Tags  string
				Value      []byte // base64 in JSON: bodies may be binary
				Properties map[string]string
				QueueID    int32 `json:"queue_id"`
				Offset     int64
			}
			if err := dec.Decode(&m); err != nil {
				ended <- err
				return
			}
			lines <- brokerRecord{Key: m.Key, Value: string(m.Value), Tags: m.Tags, Headers: m.Properties, Partition: m.QueueID, Offset: m.Offset}
		}
	}()
	defer func() {
		stdin.Close()
		_ = cmd.Process.Kill() // it exits on its own once stdin closes; this is for a wedged one
		go io.Copy(io.Discard, stdout)
		_ = cmd.Wait()
	}()
	timeout := time.After(time.Until(deadline))
	var out []brokerRecord
	for !done(out) {
		select {
		case r := <-lines:
			out = append(out, r)
		case err := <-ended:
			t.Fatalf("rmqread stopped after %d records of %s: %v\n%s", len(out), topic, err, stderr.String())
		case <-timeout:
			t.Fatalf("read %d records from %s with rocketmq-client-go, not enough", len(out), topic)
		}
	}
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
