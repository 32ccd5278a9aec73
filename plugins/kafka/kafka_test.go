package kafka

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mqgate/mqgate/internal/testport"
	"github.com/mqgate/mqgate/sdk"
	"github.com/mqgate/mqgate/sdk/plugintest"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// newEmbedded returns a configured backend running an embedded broker on a
// port the OS picks, persisting to dir. extra is merged into the config.
func newEmbedded(t *testing.T, dir string, extra string) *Backend {
	t.Helper()
	b := New(slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})))
	cfg := fmt.Sprintf(`{"brokers": "embedded", "listen": "127.0.0.1:0", "data_dir": %q%s}`, dir, extra)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Configure(ctx, []byte(cfg)); err != nil {
		t.Fatalf("Configure(%s): %v", cfg, err)
	}
	return b
}

// testWriter sends logs to t.Log, so they show only for failing tests.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

func TestConformance(t *testing.T) {
	plugintest.RunBackend(t, func(t *testing.T) sdk.Backend {
		b := newEmbedded(t, t.TempDir(), "")
		if addrs := b.Addrs(); len(addrs) != 1 || addrs[0] == "127.0.0.1:0" {
			t.Fatalf("Addrs() = %v; want the port the OS picked", addrs)
		}
		return b
	})
}

// What mqgate check is told of a config is what Configure finds, for an
// embedded broker and for external ones.
func TestConfigValidation(t *testing.T) {
	plugintest.RunConfigValidation(t, func(*testing.T) plugintest.Plugin { return New(slog.New(slog.DiscardHandler)) },
		fmt.Appendf(nil, `{"brokers": "embedded", "listen": "127.0.0.1:0", "data_dir": %q, "retention": "1h"}`, t.TempDir()),
		[]byte(`{"brokers": ["127.0.0.1:1"], "produce_timeout": "5s", "client_id": "check"}`))
}

func TestConfigureErrors(t *testing.T) {
	for _, tc := range []struct {
		name, config, key string
	}{
		{"unknown key", `{"brokers": "embedded", "bogus": 1}`, "bogus"},
		{"missing brokers", `{}`, "brokers"},
		{"brokers not embedded", `{"brokers": "localhost"}`, "brokers"},
		{"broker without port", `{"brokers": ["a:1", "b"]}`, "brokers.1"},
		{"listen with external brokers", `{"brokers": ["a:9092"], "listen": "127.0.0.1:0"}`, "listen"},
		{"bad retention", `{"brokers": "embedded", "retention": "a week"}`, "retention"},
		{"negative retention", `{"brokers": "embedded", "retention": "-1h"}`, "retention"},
		{"partitions wrong type", `{"brokers": "embedded", "default_partitions": "4"}`, "default_partitions"},
		{"zero partitions", `{"brokers": "embedded", "default_partitions": 0}`, "default_partitions"},
		{"bad produce timeout", `{"brokers": "embedded", "produce_timeout": "soon"}`, "produce_timeout"},
		{"bad group heartbeat", `{"brokers": "embedded", "group_heartbeat": "often"}`, "group_heartbeat"},
		{"group heartbeat over a third of the session", `{"brokers": "embedded", "group_heartbeat": "16s"}`, "group_heartbeat"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := New(nil)
			defer b.Close()
			err := b.Configure(context.Background(), []byte(tc.config))
			ce, ok := errors.AsType[*sdk.ConfigError](err)
			if !ok {
				t.Fatalf("Configure(%s) = %v; want a *sdk.ConfigError", tc.config, err)
			}
			if ce.Key != tc.key {
				t.Errorf("Configure(%s) names key %q (%v); want %q", tc.config, ce.Key, ce, tc.key)
			}
		})
	}
}

// TestDataDirPersists: records survive closing the backend and starting a
// new one on the same data directory.
func TestDataDirPersists(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const topic = "persisted"

	b := newEmbedded(t, dir, "")
	if err := b.EnsureTopics(ctx, []sdk.TopicSpec{{Name: topic, Partitions: 2}}); err != nil {
		t.Fatal(err)
	}
	var in []sdk.Record
	for i := range 5 {
		in = append(in, sdk.Record{Topic: topic, Partition: 1, Key: []byte("k"), Value: []byte("v" + strconv.Itoa(i)), Tags: "t"})
	}
	res, err := b.Produce(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("record %d: %v", i, r.Err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b2 := newEmbedded(t, dir, "")
	defer b2.Close()
	offs, err := b2.ListOffsets(ctx, []string{topic}, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(offs) != 2 || offs[1].End != res[4].Offset+1 {
		t.Fatalf("after restart ListOffsets = %+v; want 2 partitions, partition 1 ending at %d", offs, res[4].Offset+1)
	}
	fr, err := b2.Fetch(ctx, sdk.FetchRequest{
		Positions:  []sdk.FetchPosition{{Topic: topic, Qid: "1", Offset: res[0].Offset}},
		MaxRecords: 100,
		MaxWait:    time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if fr[0].Err != nil || len(fr[0].Records) != len(in) {
		t.Fatalf("after restart fetched %d records (err %v); want %d", len(fr[0].Records), fr[0].Err, len(in))
	}
	for i, r := range fr[0].Records {
		if string(r.Value) != string(in[i].Value) || r.Offset != res[i].Offset || r.Tags != "t" {
			t.Errorf("record %d after restart: %q at %d tags %q; want %q at %d tags t", i, r.Value, r.Offset, r.Tags, in[i].Value, res[i].Offset)
		}
	}
}

// TestRetentionReachesBroker checks the configured retention is the
// embedded broker's log.retention.ms. Whether kfake then deletes old
// records is kfake's business and would need waiting to observe.
func TestRetentionReachesBroker(t *testing.T) {
	b := newEmbedded(t, t.TempDir(), `, "retention": "36h"`)
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := b.clients()
	if err != nil {
		t.Fatal(err)
	}
	rcs, err := c.adm.DescribeBrokerConfigs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := strconv.FormatInt((36 * time.Hour).Milliseconds(), 10)
	var found bool
	for _, rc := range rcs {
		for _, c := range rc.Configs {
			if c.Key == "log.retention.ms" {
				found = true
				if c.Value == nil || *c.Value != want {
					t.Errorf("log.retention.ms = %v; want %s", c.MaybeValue(), want)
				}
			}
		}
	}
	if !found {
		t.Errorf("broker configs %+v lack log.retention.ms", rcs)
	}
}

func TestRetentionTick(t *testing.T) {
	for _, tc := range []struct {
		retention, want time.Duration
	}{
		{7 * 24 * time.Hour, 5 * time.Minute},
		{10 * time.Minute, time.Minute},
		{time.Second, time.Second},
	} {
		if got := retentionTick(tc.retention); got != tc.want {
			t.Errorf("retentionTick(%v) = %v; want %v", tc.retention, got, tc.want)
		}
	}
}

func TestCallsBeforeConfigure(t *testing.T) {
	b := New(nil)
	_, err := b.Produce(context.Background(), []sdk.Record{{Topic: "t"}})
	if sdk.CodeOf(err) != sdk.CodeUnavailable {
		t.Errorf("Produce before Configure: %v; want code %d", err, sdk.CodeUnavailable)
	}
	if err := b.Close(); err != nil {
		t.Errorf("Close of an unconfigured backend: %v", err)
	}
}

// TestRecordSizes: a record over 1 MiB round trips on the embedded broker;
// one over its 16 MiB limit fails alone with CodeTooLarge naming the limit.
func TestRecordSizes(t *testing.T) {
	b := newEmbedded(t, t.TempDir(), "")
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const topic = "sizes"
	big := bytes.Repeat([]byte("0123456789abcdef"), (2<<20)/16) // 2 MiB
	huge := make([]byte, embeddedMaxMessageBytes+1)
	res, err := b.Produce(ctx, []sdk.Record{
		{Topic: topic, Partition: 0, Value: big},
		{Topic: topic, Partition: 0, Value: huge},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil {
		t.Fatalf("2 MiB record: %v", res[0].Err)
	}
	if code := sdk.CodeOf(res[1].Err); code != sdk.CodeTooLarge || !strings.Contains(res[1].Err.Error(), strconv.Itoa(embeddedMaxMessageBytes)) {
		t.Errorf("record over the limit: code %d, %v; want code %d naming %d", code, res[1].Err, sdk.CodeTooLarge, embeddedMaxMessageBytes)
	}
	fr, err := b.Fetch(ctx, sdk.FetchRequest{Positions: []sdk.FetchPosition{{Topic: topic, Qid: res[0].Qid, Offset: res[0].Offset}}, MaxRecords: 1, MaxWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if fr[0].Err != nil || len(fr[0].Records) != 1 || !bytes.Equal(fr[0].Records[0].Value, big) {
		t.Fatalf("fetching the 2 MiB record: %d records, err %v", len(fr[0].Records), fr[0].Err)
	}
}

// TestUnknownTopic: reading a topic that does not exist says so.
func TestUnknownTopic(t *testing.T) {
	b := newEmbedded(t, t.TempDir(), "")
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := b.ListOffsets(ctx, []string{"missing"}, ""); sdk.CodeOf(err) != sdk.CodeTopicNotExist {
		t.Errorf("ListOffsets of a missing topic: %v; want code %d", err, sdk.CodeTopicNotExist)
	}
	fr, err := b.Fetch(ctx, sdk.FetchRequest{Positions: []sdk.FetchPosition{{Topic: "missing", Qid: "0"}}})
	if err != nil {
		t.Fatal(err)
	}
	if sdk.CodeOf(fr[0].Err) != sdk.CodeTopicNotExist {
		t.Errorf("Fetch of a missing topic: %v; want code %d", fr[0].Err, sdk.CodeTopicNotExist)
	}
}

// TestDefaultPartitions: topics created without a partition count, by
// EnsureTopics or by producing, get default_partitions.
func TestDefaultPartitions(t *testing.T) {
	b := newEmbedded(t, t.TempDir(), `, "default_partitions": 3`)
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.EnsureTopics(ctx, []sdk.TopicSpec{{Name: "ensured"}}); err != nil {
		t.Fatal(err)
	}
	res, err := b.Produce(ctx, []sdk.Record{{Topic: "auto", Partition: sdk.PartitionRandom, Value: []byte("v")}})
	if err != nil || res[0].Err != nil {
		t.Fatalf("producing to a new topic: %v %v", err, res[0].Err)
	}
	for _, topic := range []string{"ensured", "auto"} {
		offs, err := b.ListOffsets(ctx, []string{topic}, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(offs) != 3 {
			t.Errorf("topic %s has %d partitions; want 3", topic, len(offs))
		}
	}
}

// firstOfTwoPartitions starts an embedded broker with topic, of two
// partitions, and a first member of group g on it, which has taken its
// assignment of both. The context ends after 30 s.
func firstOfTwoPartitions(t *testing.T, topic string) (*Backend, context.Context, sdk.Subscription, sdk.Consumer) {
	t.Helper()
	b := newEmbedded(t, t.TempDir(), "")
	t.Cleanup(func() { _ = b.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	if err := b.EnsureTopics(ctx, []sdk.TopicSpec{{Name: topic, Partitions: 2}}); err != nil {
		t.Fatal(err)
	}
	sub := sdk.Subscription{Group: "g", Topics: []string{topic}}
	first, err := b.Consume(ctx, sub)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = first.Close() })
	if ev, err := first.Poll(ctx, 10); err != nil || len(ev.Assigned) != 2 {
		t.Fatalf("first member's first event: %+v, %v; want both partitions assigned", ev, err)
	}
	return b, ctx, sub, first
}

// TestPollWakesOnRevoke: a member waiting in Poll learns that a new member
// took some of its partitions.
func TestPollWakesOnRevoke(t *testing.T) {
	const topic = "rebalanced"
	b, ctx, sub, first := firstOfTwoPartitions(t, topic)
	second, err := b.Consume(ctx, sub)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	ev, err := first.Poll(ctx, 10) // waits in kgo until the revoke wakes it
	if err != nil || len(ev.Revoked) != 1 {
		t.Fatalf("first member's next event: %+v, %v; want one partition revoked", ev, err)
	}
	// The rebalance waits for the first member's commit after the revoke,
	// so the partition's next owner starts where that commit says.
	moved := ev.Revoked[0]
	if _, err := b.Produce(ctx, []sdk.Record{
		{Topic: topic, Partition: mustPartition(t, moved.Qid), Value: []byte("0")},
		{Topic: topic, Partition: mustPartition(t, moved.Qid), Value: []byte("1")},
	}); err != nil {
		t.Fatal(err)
	}
	if err := first.Commit(ctx, []sdk.Offset{{Topic: topic, Qid: moved.Qid, Offset: 1}}); err != nil {
		t.Fatalf("committing the revoked partition right after the revoke: %v", err)
	}
	ev, err = second.Poll(ctx, 10)
	if err != nil || len(ev.Assigned) != 1 || ev.Assigned[0].Qid != moved.Qid {
		t.Fatalf("second member's first event: %+v, %v; want partition %s assigned", ev, err, moved.Qid)
	}
	ev, err = second.Poll(ctx, 10)
	if err != nil || len(ev.Records) == 0 || ev.Records[0].Offset != 1 || string(ev.Records[0].Value) != "1" {
		t.Fatalf("the next owner's first records: %+v, %v; want offset 1, the first member's commit", ev.Records, err)
	}
}

// TestPartitionFetchableLateGetsItsRecords: a member's partition that
// becomes fetchable after the member's first fetch went out gets its
// records once that fetch's wait ends. franz-go keeps one fetch in flight
// per broker and does not widen it, so the fetch wait bounds how late the
// records of a newly assigned partition can come; it was a minute with the
// embedded broker, past this test's deadline. Here partition 0 has a
// commit, so it is fetchable at once, and partition 1 has none: the broker
// holds the listing of its start offset until the fetch of partition 0 is
// out, which is the order a loaded machine sometimes gives them.
func TestPartitionFetchableLateGetsItsRecords(t *testing.T) {
	const topic = "late"
	b, ctx, sub, first := firstOfTwoPartitions(t, topic)
	if err := first.Commit(ctx, []sdk.Offset{{Topic: topic, Qid: "0", Offset: 0}}); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	// The second member's is the only fetch from now on; it names topics
	// by ID, a listing by name.
	fetchedWithout1 := make(chan struct{})
	var fetchOnce, listOnce sync.Once
	b.cluster.ControlKey(int16(kmsg.Fetch), func(r kmsg.Request) (kmsg.Response, error, bool) {
		b.cluster.KeepControl()
		var ps []int32
		for _, rt := range r.(*kmsg.FetchRequest).Topics {
			for _, rp := range rt.Partitions {
				ps = append(ps, rp.Partition)
			}
		}
		if slices.Contains(ps, 0) && !slices.Contains(ps, 1) {
			fetchOnce.Do(func() { close(fetchedWithout1) })
		}
		return nil, nil, false
	})
	b.cluster.ControlKey(int16(kmsg.ListOffsets), func(r kmsg.Request) (kmsg.Response, error, bool) {
		b.cluster.KeepControl()
		lists1 := false
		for _, rt := range r.(*kmsg.ListOffsetsRequest).Topics {
			for _, rp := range rt.Partitions {
				lists1 = lists1 || rt.Topic == topic && rp.Partition == 1
			}
		}
		if lists1 {
			listOnce.Do(func() {
				b.cluster.SleepControl(func() {
					select {
					case <-fetchedWithout1:
					case <-ctx.Done():
					}
				})
			})
		}
		return nil, nil, false
	})

	second, err := b.Consume(ctx, sub)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	select {
	case <-fetchedWithout1:
	case <-ctx.Done():
		t.Fatal("the member never fetched partition 0 alone")
	}
	if _, err := b.Produce(ctx, []sdk.Record{{Topic: topic, Partition: 1, Value: []byte("late")}}); err != nil {
		t.Fatal(err)
	}
	for {
		ev, err := second.Poll(ctx, 10)
		if err != nil {
			t.Fatalf("waiting for partition 1's record: %v", err)
		}
		if len(ev.Records) > 0 {
			if r := ev.Records[0]; r.Qid != "1" || string(r.Value) != "late" {
				t.Fatalf("records %+v; want partition 1's", ev.Records)
			}
			return
		}
	}
}

func mustPartition(t *testing.T, qid string) int32 {
	t.Helper()
	p, err := strconv.Atoi(qid)
	if err != nil {
		t.Fatal(err)
	}
	return int32(p)
}

// TestKilledBrokerKeepsRecords: records produced to a topic that Produce
// itself created survive the process being killed without Close, as a
// plugin host does to a hung plugin. The test runs itself as the child.
func TestKilledBrokerKeepsRecords(t *testing.T) {
	const env, topic, value = "MQGATE_KAFKA_KILLED_CHILD", "created-by-produce", "survives"
	if dir := os.Getenv(env); dir != "" {
		b := newEmbedded(t, dir, "")
		res, err := b.Produce(context.Background(), []sdk.Record{{Topic: topic, Partition: 0, Value: []byte(value)}})
		if err != nil || res[0].Err != nil {
			t.Fatalf("child: producing: %v %v", err, res[0].Err)
		}
		fmt.Printf("\nproduced %d\n", res[0].Offset)
		select {} // wait to be killed
	}

	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestKilledBrokerKeepsRecords$")
	cmd.Env = append(os.Environ(), env+"="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var offset int64 = -1
	var lines []string
	sc := bufio.NewScanner(stdout)
	for offset < 0 && sc.Scan() {
		lines = append(lines, sc.Text())
		if s, ok := strings.CutPrefix(sc.Text(), "produced "); ok {
			offset, _ = strconv.ParseInt(s, 10, 64)
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait() // killed: the error says so
	if offset < 0 {
		t.Fatalf("child never produced; its output:\n%s", strings.Join(lines, "\n"))
	}

	b := newEmbedded(t, dir, "")
	defer b.Close()
	fr, err := b.Fetch(ctx, sdk.FetchRequest{Positions: []sdk.FetchPosition{{Topic: topic, Qid: "0", Offset: offset}}, MaxRecords: 1, MaxWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if fr[0].Err != nil || len(fr[0].Records) != 1 || string(fr[0].Records[0].Value) != value {
		t.Fatalf("after the kill, fetching %s at %d: %+v, err %v; want %q", topic, offset, fr[0].Records, fr[0].Err, value)
	}
}

// TestFetchManyPositions: one Fetch reads several partitions, and one
// partition at two offsets, answering each position in order.
func TestFetchManyPositions(t *testing.T) {
	b := newEmbedded(t, t.TempDir(), "")
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const topic = "many"
	var in []sdk.Record
	for p := range int32(2) {
		for i := range 3 {
			in = append(in, sdk.Record{Topic: topic, Partition: p, Value: fmt.Appendf(nil, "p%d-%d", p, i)})
		}
	}
	if _, err := b.Produce(ctx, in); err != nil {
		t.Fatal(err)
	}
	positions := []sdk.FetchPosition{{Topic: topic, Qid: "0", Offset: 0}, {Topic: topic, Qid: "1", Offset: 1}, {Topic: topic, Qid: "0", Offset: 2}}
	fr, err := b.Fetch(ctx, sdk.FetchRequest{Positions: positions, MaxRecords: 1, MaxWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"p0-0", "p1-1", "p0-2"} {
		r := fr[i]
		if r.Err != nil || r.Qid != positions[i].Qid || len(r.Records) != 1 || string(r.Records[0].Value) != want || r.NextOffset != positions[i].Offset+1 {
			t.Errorf("position %d (%+v): %+v; want one record %q, next %d", i, positions[i], r, want, positions[i].Offset+1)
		}
	}
}

// A cluster that cannot be reached is "backend unavailable" (17, retriable),
// not a bare timeout: the caller learns to retry, and why.
func TestUnreachableBrokersAreUnavailable(t *testing.T) {
	dead := testport.Reserve(t).Addr // dials are refused
	b := New(slog.New(slog.DiscardHandler))
	t.Cleanup(func() { _ = b.Close() })
	if err := b.Configure(context.Background(), []byte(fmt.Sprintf(`{"brokers":[%q]}`, dead))); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := b.Produce(ctx, []sdk.Record{{Topic: "t", Value: []byte("v"), Partition: sdk.PartitionRandom}})
	if sdk.CodeOf(err) != sdk.CodeUnavailable || !strings.Contains(err.Error(), "unreachable") || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("Produce to a dead cluster = %v (code %d), want code 17 saying the brokers are unreachable, and why", err, sdk.CodeOf(err))
	}
	// The calls behind stats, fetch and commit say the same, not that the
	// topic is missing.
	calls := map[string]func(context.Context) error{
		"Commit": func(ctx context.Context) error {
			return b.Commit(ctx, "g", []sdk.Offset{{Topic: "t", Qid: "0", Offset: 1}})
		},
		"ListOffsets": func(ctx context.Context) error {
			_, err := b.ListOffsets(ctx, []string{"t"}, "g")
			return err
		},
	}
	for name, call := range calls {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := call(ctx)
		cancel()
		if sdk.CodeOf(err) != sdk.CodeUnavailable || !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("%s on a dead cluster = %v (code %d), want code 17 naming the dial error", name, err, sdk.CodeOf(err))
		}
	}
}

// A record's value is never null on the broker or to the gateway: a nil
// value is produced as an empty one, and a tombstone another producer
// wrote is consumed as an empty value, so a dead-lettered or re-produced
// tombstone does not delete its key from a compacted topic. The plugin
// protocol carried values so; in the gateway's process the backend keeps
// to it.
func TestValuesAreNeverNull(t *testing.T) {
	b := newEmbedded(t, t.TempDir(), "")
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const topic = "tombstones"
	if _, err := b.Produce(ctx, []sdk.Record{{Topic: topic, Partition: 0, Key: []byte("k"), Value: nil}}); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 0, Key: []byte("k"), Value: nil}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	fr, err := b.Fetch(ctx, sdk.FetchRequest{Positions: []sdk.FetchPosition{{Topic: topic, Qid: "0", Offset: 0}}, MaxRecords: 2, MaxWait: time.Second})
	if err != nil || len(fr) != 1 || len(fr[0].Records) != 2 {
		t.Fatalf("Fetch = %+v, %v; want 2 records", fr, err)
	}
	if fr[0].Records[1].Value == nil {
		t.Error("a tombstone was fetched with a nil value, want an empty one")
	}
	// kgo reads a null value as nil and an empty one as empty.
	cons, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	fs := cons.PollRecords(ctx, 1)
	if recs := fs.Records(); len(recs) != 1 || recs[0].Value == nil {
		t.Fatalf("the broker holds %+v (errors %v); want the first record's value empty, not null", recs, fs.Errors())
	}
}
