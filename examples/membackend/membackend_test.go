package membackend_test

import (
	"context"
	"errors"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mqgate/mqgate/examples/membackend"
	"github.com/mqgate/mqgate/sdk"
	"github.com/mqgate/mqgate/sdk/plugintest"
)

// waitLimit turns a hang into a failure; nothing asserts how long a call
// takes.
const waitLimit = 10 * time.Second

// newBackend returns a Backend configured with config, closed when t ends.
func newBackend(t *testing.T, config string) *membackend.Backend {
	t.Helper()
	b := membackend.New(nil)
	if err := b.Configure(context.Background(), []byte(config)); err != nil {
		t.Fatalf("Configure(%s): %v", config, err)
	}
	t.Cleanup(func() { _ = b.Close() }) // Close never fails
	return b
}

// The conformance suite, in-process.
func TestConformance(t *testing.T) {
	plugintest.RunBackend(t, func(t *testing.T) sdk.Backend {
		b := membackend.New(nil)
		if err := b.Configure(context.Background(), []byte(`{"partitions": 4}`)); err != nil {
			t.Fatal(err)
		}
		return b
	})
}

// The conformance suite through a real plugin process, started the way the
// gateway starts a third-party plugin: so every call crosses gRPC.
func TestPluginProcess(t *testing.T) {
	t.Parallel() // building and listing take the most time; overlap them
	bin := buildPlugin(t)

	t.Run("RefusesToRunByHand", func(t *testing.T) {
		out, err := exec.Command(bin).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "This binary is a plugin") {
			t.Fatalf("started without the handshake cookie: err %v, output %q; want a refusal", err, out)
		}
	})

	// What mqgate check asks crosses gRPC intact: the same suite, each
	// plugin a process of its own.
	t.Run("ConfigValidation", func(t *testing.T) {
		plugintest.RunConfigValidation(t, func(t *testing.T) plugintest.Plugin {
			return plugintest.StartBackendProcess(t, exec.Command(bin))
		}, validConfigs...)
	})

	b := plugintest.StartBackendProcess(t, exec.Command(bin))
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	// A refused config comes back naming its key, which the gateway
	// points at in plugins.yaml.
	var ce *sdk.ConfigError
	if err := b.Configure(ctx, []byte(`{"partitons": 4}`)); !errors.As(err, &ce) || ce.Key != "partitons" {
		t.Fatalf("Configure with a misspelt key: %v; want a *sdk.ConfigError naming partitons", err)
	}
	if err := b.Configure(ctx, []byte(`{"partitions": 4}`)); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	plugintest.RunBackend(t, func(*testing.T) sdk.Backend { return b })
}

// buildPlugin builds cmd/membackend into a temporary directory, with the
// race detector when the test has it.
func buildPlugin(t *testing.T) string {
	t.Helper()
	return plugintest.BuildPlugin(t, "github.com/mqgate/mqgate/examples/membackend/cmd/membackend")
}

// The point of the example: a plugin and its tests build from the SDK
// alone, without the gateway, its bundled plugins, Kafka, gin or Thrift.
func TestImportsOnlySDK(t *testing.T) {
	t.Parallel() // building and listing take the most time; overlap them
	const pattern = "github.com/mqgate/mqgate/examples/membackend/..."
	out, err := exec.Command("go", "list", "-deps", "-test", pattern).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	forbidden := []string{
		"github.com/mqgate/mqgate/core",
		"github.com/mqgate/mqgate/plugins",
		"github.com/mqgate/mqgate/frontends",
		"github.com/mqgate/mqgate/cmd",
		"github.com/twmb/franz-go",
		"github.com/gin-gonic/gin",
		"github.com/apache/thrift",
	}
	sawSDK := false
	for line := range strings.Lines(string(out)) {
		pkg, _, _ := strings.Cut(strings.TrimSpace(line), " ") // "p [p.test]" for test variants
		sawSDK = sawSDK || pkg == "github.com/mqgate/mqgate/sdk"
		for _, f := range forbidden {
			if pkg == f || strings.HasPrefix(pkg, f+"/") {
				t.Errorf("%s depends on %s", pattern, pkg)
			}
		}
	}
	if !sawSDK {
		t.Fatalf("go list -deps %s does not list the sdk; output:\n%s", pattern, out)
	}
}

func TestConfigure(t *testing.T) {
	for _, tc := range []struct {
		name, config string
		wantKeys     []string // of the problems reported, in order; none for success
		wantParts    int      // of a topic created without a count
	}{
		{"Empty", ``, nil, 4},
		{"NoKeys", `{}`, nil, 4},
		{"Partitions", `{"partitions": 7}`, nil, 7},
		{"UnknownKey", `{"partitions": 2, "retention": "1h"}`, []string{"retention"}, 0},
		{"Zero", `{"partitions": 0}`, []string{"partitions"}, 0},
		{"Negative", `{"partitions": -1}`, []string{"partitions"}, 0},
		{"TooMany", `{"partitions": 5000}`, []string{"partitions"}, 0},
		{"Fraction", `{"partitions": 2.5}`, []string{"partitions"}, 0},
		{"String", `{"partitions": "4"}`, []string{"partitions"}, 0},
		{"Null", `{"partitions": null}`, []string{"partitions"}, 0},
		{"EveryProblemAtOnce", `{"partitons": 2, "retention": "1h", "partitions": 0}`, []string{"partitons", "retention", "partitions"}, 0},
		{"NotAnObject", `[4]`, []string{""}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := membackend.New(nil)
			t.Cleanup(func() { _ = b.Close() })
			// mqgate check asks ValidateConfig; it must find what Configure does.
			if got := keys(b.ValidateConfig([]byte(tc.config))); !slices.Equal(got, tc.wantKeys) {
				t.Errorf("ValidateConfig(%s) reports keys %q; want %q", tc.config, got, tc.wantKeys)
			}
			err := b.Configure(context.Background(), []byte(tc.config))
			if got := keys(sdk.ConfigErrorsOf(err)); !slices.Equal(got, tc.wantKeys) {
				t.Fatalf("Configure(%s) = %v; reports keys %q, want %q", tc.config, err, got, tc.wantKeys)
			}
			if tc.wantKeys != nil {
				return
			}
			if err != nil {
				t.Fatalf("Configure(%s): %v", tc.config, err)
			}
			if got := partitionsOf(t, b, "t"); got != tc.wantParts {
				t.Errorf("a topic created with the default has %d partitions; want %d", got, tc.wantParts)
			}
		})
	}
}

// keys lists the keys errs name, in order; nil for none.
func keys(errs sdk.ConfigErrors) []string {
	var out []string
	for _, e := range errs {
		out = append(out, e.Key)
	}
	return out
}

// validConfigs are configs Configure accepts, for RunConfigValidation.
var validConfigs = [][]byte{[]byte(`{"partitions": 2}`), []byte(`{}`)}

// ValidateConfig agrees with Configure, as the SDK's suite checks it; see
// TestPluginProcess for the same through a plugin process.
func TestConfigValidation(t *testing.T) {
	plugintest.RunConfigValidation(t, func(*testing.T) plugintest.Plugin { return membackend.New(nil) }, validConfigs...)
}

// partitionsOf creates topic with the default partition count and returns
// that count.
func partitionsOf(t *testing.T, b *membackend.Backend, topic string) int {
	t.Helper()
	ctx := context.Background()
	if err := b.EnsureTopics(ctx, []sdk.TopicSpec{{Name: topic}}); err != nil {
		t.Fatal(err)
	}
	offs, err := b.ListOffsets(ctx, []string{topic}, "")
	if err != nil {
		t.Fatal(err)
	}
	return len(offs)
}

func TestProducePlacement(t *testing.T) {
	b := newBackend(t, `{"partitions": 3}`)
	ctx := context.Background()
	// The topic does not exist: the first produce creates it with the
	// default 3 partitions.
	res, err := b.Produce(ctx, []sdk.Record{
		{Topic: "auto", Partition: 2},
		{Topic: "auto", Partition: sdk.PartitionHash, Hash: 10}, // 10 % 3
		{Topic: "auto", Partition: 3},
		{Topic: "auto", Partition: -3},
		{Topic: "auto", Partition: 2}, // the failed records took no offset
		{Topic: "auto", Partition: sdk.PartitionRandom},
	})
	if err != nil || len(res) != 6 {
		t.Fatalf("Produce of 6 records: %d results, %v", len(res), err)
	}
	for i, want := range []struct {
		partition int32 // -1: any valid one
		offset    int64
		errHas    string
	}{
		{2, 0, ""},
		{1, 0, ""},
		{0, 0, "topic auto has 3 partitions"},
		{0, 0, "partition -3"},
		{2, 1, ""},
		{-1, -1, ""},
	} {
		r := res[i]
		switch {
		case want.errHas != "":
			if sdk.CodeOf(r.Err) != sdk.CodeIllegal || !strings.Contains(r.Err.Error(), want.errHas) {
				t.Errorf("record %d: error %v; want code %d naming %q", i, r.Err, sdk.CodeIllegal, want.errHas)
			}
		case r.Err != nil:
			t.Errorf("record %d: %v", i, r.Err)
		case want.partition == -1:
			if r.Partition < 0 || r.Partition >= 3 || r.Qid != strconv.Itoa(int(r.Partition)) {
				t.Errorf("random record: partition %d qid %q; want one of 0..2, qid the same number", r.Partition, r.Qid)
			}
		case r.Partition != want.partition || r.Qid != strconv.Itoa(int(want.partition)) || r.Offset != want.offset:
			t.Errorf("record %d at partition %d qid %q offset %d; want partition %d qid %q offset %d",
				i, r.Partition, r.Qid, r.Offset, want.partition, strconv.Itoa(int(want.partition)), want.offset)
		}
	}
}

// polled is what a Poll running on another goroutine returned.
type polled struct {
	ev  sdk.ConsumeEvent
	err error
}

// pollAsync polls c on a goroutine of its own.
func pollAsync(c sdk.Consumer, maxRecords int) <-chan polled {
	ch := make(chan polled, 1)
	go func() {
		ev, err := c.Poll(context.Background(), maxRecords)
		ch <- polled{ev, err}
	}()
	return ch
}

// await receives from ch, failing t if nothing comes within waitLimit.
func await[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitLimit):
		t.Fatalf("%s did not return within %v", what, waitLimit)
		panic("unreachable")
	}
}

// consume starts a consumer that is closed when t ends, and takes its
// Assigned event.
func consume(t *testing.T, b sdk.Backend, sub sdk.Subscription) (sdk.Consumer, []sdk.Offset) {
	t.Helper()
	c, err := b.Consume(context.Background(), sub)
	if err != nil {
		t.Fatalf("Consume(%+v): %v", sub, err)
	}
	t.Cleanup(func() { _ = c.Close() }) // Close never fails
	ev := await(t, pollAsync(c, 10), "the first Poll")
	if ev.err != nil || len(ev.ev.Records) != 0 {
		t.Fatalf("first Poll: %d records, error %v; want the assignment", len(ev.ev.Records), ev.err)
	}
	return c, ev.ev.Assigned
}

// produce produces one record per value to topic's partition, failing t on
// any error.
func produce(t *testing.T, b sdk.Backend, topic string, partition int32, values ...string) {
	t.Helper()
	records := make([]sdk.Record, len(values))
	for i, v := range values {
		records[i] = sdk.Record{Topic: topic, Partition: partition, Value: []byte(v)}
	}
	res, err := b.Produce(context.Background(), records)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
}

func TestPollWaitsForRecords(t *testing.T) {
	b := newBackend(t, `{"partitions": 2}`)
	produce(t, b, "t", 0, "old")
	c, assigned := consume(t, b, sdk.Subscription{Group: "g", Topics: []string{"t"}, Start: sdk.StartLatest})
	want := []sdk.Offset{{Topic: "t", Qid: "0", Offset: 1}, {Topic: "t", Qid: "1", Offset: 0}}
	if len(assigned) != len(want) || assigned[0] != want[0] || assigned[1] != want[1] {
		t.Fatalf("assigned %+v; want %+v (StartLatest: after the existing record)", assigned, want)
	}

	// Nothing new: Poll waits until its context ends.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if ev, err := c.Poll(ctx, 10); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Poll with nothing to read: %+v, %v; want it to wait until the deadline", ev, err)
	}

	// A waiting Poll wakes for a produce.
	ch := pollAsync(c, 10)
	produce(t, b, "t", 1, "new")
	got := await(t, ch, "a Poll waiting for records")
	if got.err != nil || len(got.ev.Records) != 1 || string(got.ev.Records[0].Value) != "new" {
		t.Fatalf("Poll: %+v, %v; want the one new record", got.ev, got.err)
	}
}

// The documented limit: without group coordination, two members of one
// group each get every partition and read every record.
func TestSecondMemberGetsSamePartitions(t *testing.T) {
	b := newBackend(t, `{"partitions": 2}`)
	produce(t, b, "t", 0, "a")
	produce(t, b, "t", 1, "b")
	sub := sdk.Subscription{Group: "g", Topics: []string{"t"}, Start: sdk.StartEarliest}
	for member := range 2 {
		c, assigned := consume(t, b, sub)
		if len(assigned) != 2 {
			t.Errorf("member %d assigned %+v; want both partitions", member, assigned)
		}
		var values []string
		for len(values) < 2 {
			got := await(t, pollAsync(c, 10), "Poll")
			if got.err != nil {
				t.Fatal(got.err)
			}
			for _, r := range got.ev.Records {
				values = append(values, string(r.Value))
			}
		}
		if len(values) != 2 {
			t.Errorf("member %d read %q; want both records", member, values)
		}
	}
}

func TestCommitErrors(t *testing.T) {
	b := newBackend(t, `{"partitions": 1}`)
	produce(t, b, "t", 0, "a", "b")
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		group   string
		offsets []sdk.Offset
		code    sdk.Code
		msgHas  string
	}{
		{"NoGroup", "", []sdk.Offset{{Topic: "t", Qid: "0", Offset: 1}}, sdk.CodeIllegal, "group"},
		{"UnknownTopic", "g", []sdk.Offset{{Topic: "nope", Qid: "0", Offset: 1}}, sdk.CodeTopicNotExist, "nope"},
		{"BadQid", "g", []sdk.Offset{{Topic: "t", Qid: "00", Offset: 1}}, sdk.CodeIllegal, "from 0 to 0"},
		// The good first offset is not stored either.
		{"PastEnd", "g", []sdk.Offset{{Topic: "t", Qid: "0", Offset: 1}, {Topic: "t", Qid: "0", Offset: 3}}, sdk.CodeIllegal, "0 to 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := b.Commit(ctx, tc.group, tc.offsets)
			if sdk.CodeOf(err) != tc.code || !strings.Contains(err.Error(), tc.msgHas) {
				t.Fatalf("Commit: %v (code %d); want code %d naming %q", err, sdk.CodeOf(err), tc.code, tc.msgHas)
			}
		})
	}
	offs, err := b.ListOffsets(ctx, []string{"t"}, "g")
	if err != nil || len(offs) != 1 || offs[0].Committed != -1 || offs[0].End != 2 {
		t.Fatalf("after failed commits, ListOffsets = %+v, %v; want one qid, end 2, nothing committed", offs, err)
	}
	if _, err := b.ListOffsets(ctx, []string{"t", "nope"}, ""); sdk.CodeOf(err) != sdk.CodeTopicNotExist {
		t.Errorf("ListOffsets of an unknown topic: %v; want code %d", err, sdk.CodeTopicNotExist)
	}
}

func TestFetch(t *testing.T) {
	b := newBackend(t, `{"partitions": 2}`)
	produce(t, b, "t", 0, "a", "b", "c")
	ctx := context.Background()
	res, err := b.Fetch(ctx, sdk.FetchRequest{MaxRecords: 2, Positions: []sdk.FetchPosition{
		{Topic: "t", Qid: "0", Offset: 0},
		{Topic: "t", Qid: "0", Offset: 4},
		{Topic: "t", Qid: "2", Offset: 0},
		{Topic: "nope", Qid: "0", Offset: 0},
	}})
	if err != nil || len(res) != 4 {
		t.Fatalf("Fetch: %d results, %v", len(res), err)
	}
	if r := res[0]; r.Err != nil || len(r.Records) != 2 || r.NextOffset != 2 {
		t.Errorf("fetch of 2 from offset 0: %d records, next %d, %v; want 2, next 2", len(r.Records), r.NextOffset, r.Err)
	}
	for i, want := range []struct {
		code   sdk.Code
		msgHas string
	}{{}, {sdk.CodeIllegal, "valid offsets are 0 to 3"}, {sdk.CodeIllegal, "from 0 to 1"}, {sdk.CodeTopicNotExist, "nope"}} {
		if r := res[i]; i > 0 && (sdk.CodeOf(r.Err) != want.code || !strings.Contains(r.Err.Error(), want.msgHas)) {
			t.Errorf("position %d: %v; want code %d naming %q", i, r.Err, want.code, want.msgHas)
		}
	}

	// A fetch at the end waits up to MaxWait, and wakes for a produce.
	ch := make(chan []sdk.FetchResult, 1)
	go func() {
		res, _ := b.Fetch(ctx, sdk.FetchRequest{MaxWait: time.Hour, Positions: []sdk.FetchPosition{{Topic: "t", Qid: "1", Offset: 0}}})
		ch <- res
	}()
	produce(t, b, "t", 1, "x")
	if res := await(t, ch, "a Fetch waiting for records"); len(res) != 1 || len(res[0].Records) != 1 || res[0].NextOffset != 1 {
		t.Fatalf("waiting Fetch: %+v; want the new record, next 1", res)
	}
}

func TestCloseReleasesWaiters(t *testing.T) {
	b := membackend.New(nil)
	ctx := context.Background()
	if err := b.EnsureTopics(ctx, []sdk.TopicSpec{{Name: "t", Partitions: 1}}); err != nil {
		t.Fatal(err)
	}
	sub := sdk.Subscription{Group: "g", Topics: []string{"t"}}
	closing, _ := consume(t, b, sub)
	c, _ := consume(t, b, sub)
	polls := []<-chan polled{pollAsync(closing, 1), pollAsync(c, 1)}
	fetched := make(chan error, 1)
	go func() {
		_, err := b.Fetch(ctx, sdk.FetchRequest{MaxWait: time.Hour, Positions: []sdk.FetchPosition{{Topic: "t", Qid: "0"}}})
		fetched <- err
	}()

	if err := closing.Close(); err != nil {
		t.Fatal(err)
	}
	if got := await(t, polls[0], "Poll on a closed consumer"); sdk.CodeOf(got.err) != sdk.CodeUnavailable {
		t.Errorf("Poll on a closed consumer: %v; want code %d", got.err, sdk.CodeUnavailable)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if got := await(t, polls[1], "Poll on a closed backend"); sdk.CodeOf(got.err) != sdk.CodeUnavailable {
		t.Errorf("Poll on a closed backend: %v; want code %d", got.err, sdk.CodeUnavailable)
	}
	if err := await(t, fetched, "Fetch on a closed backend"); sdk.CodeOf(err) != sdk.CodeUnavailable {
		t.Errorf("Fetch on a closed backend: %v; want code %d", err, sdk.CodeUnavailable)
	}
	if _, err := b.Produce(ctx, []sdk.Record{{Topic: "t"}}); sdk.CodeOf(err) != sdk.CodeUnavailable {
		t.Errorf("Produce after Close: %v; want code %d", err, sdk.CodeUnavailable)
	}
}
