package sdk_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/mqgate/mqgate/sdk"
)

// memBackend is an in-memory Backend for exercising the gRPC adapters.
type memBackend struct {
	mu       sync.Mutex
	produced []sdk.Record
	commits  [][]sdk.Offset
	feed     chan sdk.Record // what consumers hand out
	polled   []int           // maxRecords of each Poll
	failWith error
}

func (m *memBackend) Configure(_ context.Context, cfg []byte) error {
	if bytes.Contains(cfg, []byte("bogus")) {
		return &sdk.ConfigError{Key: "bogus", Msg: "unknown key"}
	}
	return nil
}
func (m *memBackend) EnsureTopics(context.Context, []sdk.TopicSpec) error { return nil }
func (m *memBackend) Produce(_ context.Context, rs []sdk.Record) ([]sdk.ProduceResult, error) {
	if m.failWith != nil {
		return nil, m.failWith
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]sdk.ProduceResult, len(rs))
	for i, r := range rs {
		if r.Partition > 9 {
			out[i].Err = sdk.Errorf(sdk.CodeIllegal, "partition %d out of range", r.Partition)
			continue
		}
		m.produced = append(m.produced, r)
		out[i] = sdk.ProduceResult{Qid: "0", Offset: int64(len(m.produced) - 1)}
	}
	return out, nil
}
func (m *memBackend) Consume(ctx context.Context, sub sdk.Subscription) (sdk.Consumer, error) {
	if sub.Group == "" {
		return nil, sdk.Errorf(sdk.CodeIllegal, "group: must not be empty")
	}
	return &memConsumer{m: m}, nil
}
func (m *memBackend) Commit(context.Context, string, []sdk.Offset) error { return nil }
func (m *memBackend) Fetch(context.Context, sdk.FetchRequest) ([]sdk.FetchResult, error) {
	return nil, nil
}
func (m *memBackend) ListOffsets(context.Context, []string, string) ([]sdk.QidOffsets, error) {
	return nil, sdk.Errorf(sdk.CodeTopicNotExist, "topic nope does not exist")
}
func (m *memBackend) Close() error { return nil }

type memConsumer struct{ m *memBackend }

func (c *memConsumer) Poll(ctx context.Context, max int) (sdk.ConsumeEvent, error) {
	c.m.mu.Lock()
	c.m.polled = append(c.m.polled, max)
	c.m.mu.Unlock()
	var ev sdk.ConsumeEvent
	select {
	case r := <-c.m.feed:
		ev.Records = append(ev.Records, r)
	case <-ctx.Done():
		return ev, ctx.Err()
	}
	for len(ev.Records) < max {
		select {
		case r := <-c.m.feed:
			ev.Records = append(ev.Records, r)
		default:
			return ev, nil
		}
	}
	return ev, nil
}
func (c *memConsumer) Commit(_ context.Context, offs []sdk.Offset) error {
	if len(offs) == 0 {
		return sdk.Errorf(sdk.CodeIllegal, "nothing to commit")
	}
	c.m.mu.Lock()
	c.m.commits = append(c.m.commits, offs)
	c.m.mu.Unlock()
	return nil
}
func (c *memConsumer) Close() error { return nil }

// dial serves impl over an in-memory gRPC connection with the options the
// gateway and plugins use, and returns the client side.
func dial(t *testing.T, impl sdk.Backend) sdk.Backend {
	t.Helper()
	return dialServer(t, func(srv *grpc.Server) error { return (&sdk.BackendPlugin{Impl: impl}).GRPCServer(nil, srv) })
}

// dialServer serves what register registers over an in-memory gRPC
// connection and returns the gateway's Backend over it.
func dialServer(t *testing.T, register func(*grpc.Server) error) sdk.Backend {
	t.Helper()
	raw, err := (&sdk.BackendPlugin{}).GRPCClient(context.Background(), nil, serveInMemory(t, register))
	if err != nil {
		t.Fatal(err)
	}
	return raw.(sdk.Backend)
}

// serveInMemory serves what register registers over an in-memory
// connection with the options the gateway and plugins use, and returns the
// client's connection; both close when the test ends.
func serveInMemory(t *testing.T, register func(*grpc.Server) error) *grpc.ClientConn {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer(sdk.ServerOptions()...)
	if err := register(srv); err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	opts := append(sdk.DialOptions(),
		grpc.WithContextDialer(func(context.Context, string) (net.Conn, error) { return lis.Dial() }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	conn, err := grpc.NewClient("passthrough:///bufnet", opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); srv.Stop() })
	return conn
}

// overBothWays runs test with dial serving the plugin over gRPC alone, and
// with a plugin connection attached.
func overBothWays(t *testing.T, test func(t *testing.T, dial func(*testing.T, sdk.Backend) sdk.Backend)) {
	t.Run("grpc", func(t *testing.T) { test(t, dial) })
	t.Run("conn", func(t *testing.T) { test(t, dialConn) })
}

// dialConn is dial with a plugin connection attached and served.
func dialConn(t *testing.T, impl sdk.Backend) sdk.Backend {
	b, _ := servedConn(t, &streamPlugin{BackendServer: sdk.NewBackendServer(impl)}, impl)
	return b
}

// Records reach the plugin as they were sent, over gRPC and over the
// plugin connection; what a plugin keeps of a batch stays as it was
// after later batches.
func TestProduceCrossesTheWireIntact(t *testing.T) {
	t.Run("grpc", func(t *testing.T) {
		mem := &memBackend{}
		testProduceCrossesTheWireIntact(t, mem, dial(t, mem))
	})
	t.Run("conn", func(t *testing.T) {
		mem := &memBackend{}
		b, _ := servedConn(t, &streamPlugin{BackendServer: sdk.NewBackendServer(mem)}, mem)
		testProduceCrossesTheWireIntact(t, mem, b)
	})
}

func testProduceCrossesTheWireIntact(t *testing.T, mem *memBackend, b sdk.Backend) {
	binary := make([]byte, 256)
	for i := range binary {
		binary[i] = byte(i)
	}
	in := []sdk.Record{
		{Topic: "t", Key: []byte("k"), Value: binary, Tags: "tagA", Partition: sdk.PartitionHash, Hash: 77,
			Headers: []sdk.Header{{Key: "b", Value: []byte("2")}, {Key: "a", Value: []byte("1")}, {Key: "b", Value: nil}}},
		{Topic: "t", Key: []byte{}, Value: []byte{}, Partition: 3},
		{Topic: "t", Key: nil, Value: []byte("x"), Partition: sdk.PartitionRandom},
		{Topic: "t", Value: []byte("bad"), Partition: 12},
	}
	res, err := b.Produce(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	// Another batch, of other bytes, before looking at what the first left.
	if _, err := b.Produce(context.Background(), []sdk.Record{{Topic: "u", Value: bytes.Repeat([]byte{0xff}, 512)}}); err != nil {
		t.Fatal(err)
	}
	if len(res) != 4 || res[0].Err != nil || res[2].Offset != 2 {
		t.Fatalf("results = %+v", res)
	}
	if sdk.CodeOf(res[3].Err) != sdk.CodeIllegal || !strings.Contains(res[3].Err.Error(), "partition 12") {
		t.Fatalf("result 3 error = %v, want code 11 naming the partition", res[3].Err)
	}
	got := mem.produced
	if !bytes.Equal(got[0].Value, binary) || string(got[0].Key) != "k" || got[0].Topic != "t" || got[0].Tags != "tagA" || got[0].Hash != 77 || got[0].Partition != sdk.PartitionHash {
		t.Fatalf("record 0 arrived as %+v", got[0])
	}
	if len(got[0].Headers) != 3 || got[0].Headers[0].Key != "b" || got[0].Headers[1].Key != "a" || string(got[0].Headers[1].Value) != "1" {
		t.Fatalf("headers lost order or content: %+v", got[0].Headers)
	}
	if got[1].Key == nil || len(got[1].Key) != 0 || got[1].Partition != 3 {
		t.Fatalf("an empty key must stay an empty key, not become no key: %+v", got[1])
	}
	if got[2].Key != nil {
		t.Fatalf("no key must stay no key: %+v", got[2])
	}
}

func TestErrorsKeepTheirCodes(t *testing.T) {
	overBothWays(t, func(t *testing.T, dial func(*testing.T, sdk.Backend) sdk.Backend) {
		mem := &memBackend{failWith: sdk.Errorf(sdk.CodeTopicNotExist, "topic gone does not exist")}
		b := dial(t, mem)
		_, err := b.Produce(context.Background(), []sdk.Record{{Topic: "gone"}})
		if sdk.CodeOf(err) != sdk.CodeTopicNotExist || err.Error() != "topic gone does not exist" {
			t.Fatalf("Produce error = %v (code %d), want code 14 with the plugin's message", err, sdk.CodeOf(err))
		}
		err = b.Configure(context.Background(), []byte(`{"bogus": 1}`))
		var ce *sdk.ConfigError
		if !errors.As(err, &ce) || ce.Key != "bogus" {
			t.Fatalf("Configure error = %#v, want a ConfigError naming bogus", err)
		}
		if _, err := b.ListOffsets(context.Background(), []string{"nope"}, ""); sdk.CodeOf(err) != sdk.CodeTopicNotExist {
			t.Fatalf("ListOffsets error = %v, want code 14", err)
		}
		if _, err := b.Consume(context.Background(), sdk.Subscription{}); err != nil {
			// Consume errors arrive on the first Poll, as the stream opens lazily.
			t.Fatalf("Consume: %v", err)
		}
	})
}

// A plugin's lasting outage stays lasting across the wire, so the gateway
// answers it rather than retrying it into the request's deadline.
func TestLastingErrorsStayLasting(t *testing.T) {
	overBothWays(t, func(t *testing.T, dial func(*testing.T, sdk.Backend) sdk.Backend) {
		for _, lasting := range []bool{false, true} {
			var fail error = sdk.Errorf(sdk.CodeUnavailable, "kafka SASL authentication failed")
			if lasting {
				fail = sdk.Lasting(sdk.Errorf(sdk.CodeUnavailable, "kafka SASL authentication failed"))
			}
			b := dial(t, &memBackend{failWith: fail})
			_, err := b.Produce(context.Background(), []sdk.Record{{Topic: "t"}})
			if sdk.CodeOf(err) != sdk.CodeUnavailable || err.Error() != "kafka SASL authentication failed" {
				t.Fatalf("Produce error = %v (code %d), want code 17 with the plugin's message", err, sdk.CodeOf(err))
			}
			if errors.Is(err, sdk.ErrLasting) != lasting {
				t.Errorf("lasting %v became lasting %v on the wire", lasting, !lasting)
			}
		}
	})
}

func TestBatchOverFourMiB(t *testing.T) {
	overBothWays(t, func(t *testing.T, dial func(*testing.T, sdk.Backend) sdk.Backend) {
		mem := &memBackend{}
		b := dial(t, mem)
		var in []sdk.Record
		for range 6 {
			in = append(in, sdk.Record{Topic: "big", Value: bytes.Repeat([]byte("x"), 900<<10)})
		}
		res, err := b.Produce(context.Background(), in)
		if err != nil {
			t.Fatalf("a 5.3 MiB batch must pass: %v", err)
		}
		if len(res) != 6 || len(mem.produced) != 6 || len(mem.produced[5].Value) != 900<<10 {
			t.Fatalf("got %d results, %d records", len(res), len(mem.produced))
		}
	})
}

func TestConsumeStreamRespectsCreditsAndCommits(t *testing.T) {
	overBothWays(t, func(t *testing.T, dial func(*testing.T, sdk.Backend) sdk.Backend) {
		mem := &memBackend{feed: make(chan sdk.Record, 100)}
		for i := range 10 {
			mem.feed <- sdk.Record{Topic: "t", Qid: "0", Offset: int64(i), Value: []byte{byte(i)}}
		}
		b := dial(t, mem)
		ctx, c := subscribe(t, b)
		var seen []int64
		for len(seen) < 10 {
			ev, err := c.Poll(ctx, 3)
			if err != nil {
				t.Fatalf("Poll: %v", err)
			}
			if len(ev.Records) > 3 {
				t.Fatalf("Poll(3) returned %d records", len(ev.Records))
			}
			for _, r := range ev.Records {
				seen = append(seen, r.Offset)
			}
		}
		for i, o := range seen {
			if o != int64(i) {
				t.Fatalf("offsets out of order: %v", seen)
			}
		}
		mem.mu.Lock()
		for _, n := range mem.polled {
			if n > 3 {
				t.Errorf("the plugin was allowed to poll %d records with only 3 credits granted", n)
			}
		}
		mem.mu.Unlock()
		if err := c.Commit(ctx, []sdk.Offset{{Topic: "t", Qid: "0", Offset: 10}}); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		if err := c.Commit(ctx, nil); sdk.CodeOf(err) != sdk.CodeIllegal {
			t.Fatalf("an empty commit must come back as the plugin's code 11, got %v", err)
		}
		mem.mu.Lock()
		defer mem.mu.Unlock()
		if len(mem.commits) != 1 || mem.commits[0][0].Offset != 10 {
			t.Fatalf("commits = %+v", mem.commits)
		}
	})
}

func TestConsumeErrorsReachPoll(t *testing.T) {
	overBothWays(t, func(t *testing.T, dial func(*testing.T, sdk.Backend) sdk.Backend) {
		b := dial(t, &memBackend{})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := b.Consume(ctx, sdk.Subscription{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Poll(ctx, 1); sdk.CodeOf(err) != sdk.CodeIllegal || !strings.Contains(err.Error(), "group") {
			t.Fatalf("Poll error = %v, want code 11 naming group", err)
		}
	})
}

// sdk is what third parties import: it must not drag in the gateway, the
// bundled plugins, gin or thrift.
func TestSDKDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/mqgate/mqgate/sdk").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"github.com/mqgate/mqgate/core", "github.com/mqgate/mqgate/plugins", "github.com/mqgate/mqgate/frontends", "github.com/gin-gonic/", "github.com/apache/thrift", "github.com/twmb/franz-go"} {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("sdk depends on %s", dep)
			}
		}
	}
}

// chattyBackend's consumer reports assignment changes on every Poll (they
// take no credits), fails one Poll on request, and counts Polls.
type chattyBackend struct {
	memBackend
	mu       sync.Mutex
	polls    int
	failNext bool
}

func (b *chattyBackend) Consume(context.Context, sdk.Subscription) (sdk.Consumer, error) {
	return &chattyConsumer{b: b}, nil
}

type chattyConsumer struct{ b *chattyBackend }

func (c *chattyConsumer) Poll(ctx context.Context, max int) (sdk.ConsumeEvent, error) {
	c.b.mu.Lock()
	c.b.polls++
	fail := c.b.failNext
	c.b.failNext = false
	c.b.mu.Unlock()
	if fail {
		return sdk.ConsumeEvent{}, sdk.Errorf(sdk.CodeTopicNotExist, "topic t does not exist yet")
	}
	return sdk.ConsumeEvent{Assigned: []sdk.Offset{{Topic: "t", Qid: "0"}}}, nil
}
func (c *chattyConsumer) Commit(context.Context, []sdk.Offset) error { return nil }
func (c *chattyConsumer) Close() error                               { return nil }

func (b *chattyBackend) pollCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.polls
}

// A commit's answer must not wait behind events nobody is polling for.
func TestCommitIsNotStuckBehindUnpolledEvents(t *testing.T) {
	overBothWays(t, func(t *testing.T, dial func(*testing.T, sdk.Backend) sdk.Backend) {
		mem := &chattyBackend{}
		b := dial(t, mem)
		ctx, c := subscribe(t, b)
		if _, err := c.Poll(ctx, 1); err != nil { // grants credit; the plugin starts polling
			t.Fatal(err)
		}
		for mem.pollCount() < 50 { // far more events than any buffer
			if ctx.Err() != nil {
				t.Fatal("the plugin stopped polling")
			}
			time.Sleep(time.Millisecond)
		}
		if err := c.Commit(ctx, []sdk.Offset{{Topic: "t", Qid: "0", Offset: 1}}); err != nil {
			t.Fatalf("Commit while events queue up: %v", err)
		}
	})
}

// A failed Poll in the plugin reaches the gateway as that Poll's error and
// the subscription goes on: no new stream, no rebalance.
func TestPollErrorLeavesStreamUsable(t *testing.T) {
	overBothWays(t, func(t *testing.T, dial func(*testing.T, sdk.Backend) sdk.Backend) {
		mem := &chattyBackend{failNext: true}
		b := dial(t, mem)
		ctx, c := subscribe(t, b)
		_, err := c.Poll(ctx, 1)
		if sdk.CodeOf(err) != sdk.CodeTopicNotExist || errors.Is(err, sdk.ErrStreamEnded) {
			t.Fatalf("first Poll = %v, want the plugin's code 14 on a live stream", err)
		}
		if ev, err := c.Poll(ctx, 1); err != nil || len(ev.Assigned) != 1 {
			t.Fatalf("Poll after a poll error = %+v, %v; want the stream to go on", ev, err)
		}
	})
}

// subscribe opens a consumer of topic t for group g, closed when the test
// ends, and a context bounding the test's waits.
func subscribe(t *testing.T, b sdk.Backend) (context.Context, sdk.Consumer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	c, err := b.Consume(ctx, sdk.Subscription{Group: "g", Topics: []string{"t"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return ctx, c
}

// A Poll whose records outweigh one stream message travels as several,
// and arrives whole and in order.
func TestLargePollIsSplitAcrossMessages(t *testing.T) {
	overBothWays(t, func(t *testing.T, dial func(*testing.T, sdk.Backend) sdk.Backend) {
		defer sdk.SetMaxBatchMessageBytes(10 << 10)()
		mem := &memBackend{feed: make(chan sdk.Record, 100)}
		for i := range 40 {
			mem.feed <- sdk.Record{Topic: "t", Qid: "0", Offset: int64(i), Value: bytes.Repeat([]byte{byte(i)}, 1<<10)}
		}
		b := dial(t, mem)
		ctx, c := subscribe(t, b)
		var got []sdk.Record
		for len(got) < 40 {
			ev, err := c.Poll(ctx, 40)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, ev.Records...)
		}
		for i, r := range got {
			if r.Offset != int64(i) || len(r.Value) != 1<<10 || r.Value[0] != byte(i) {
				t.Fatalf("record %d arrived as offset %d with %d bytes", i, r.Offset, len(r.Value))
			}
		}
		if len(got) != 40 {
			t.Fatalf("got %d records, want 40", len(got))
		}
	})
}

// A plugin that is not an sdk.ClusterAdmin answers each of its calls with
// code 11 naming the call, over gRPC and in the gateway's process alike.
func TestNoClusterAdminNamesTheCall(t *testing.T) {
	mem := &memBackend{}
	for name, plugin := range map[string]any{"grpc": dial(t, mem), "in process": mem} {
		ctx := context.Background()
		calls := map[string]error{}
		_, calls["ListTopics"] = sdk.ListTopics(ctx, plugin)
		_, calls["ListGroups"] = sdk.ListGroups(ctx, plugin)
		_, calls["DescribeGroup"] = sdk.DescribeGroup(ctx, plugin, "g")
		calls["DeleteGroup"] = sdk.DeleteGroup(ctx, plugin, "g")
		calls["DeleteRecords"] = sdk.DeleteRecords(ctx, plugin, []sdk.Offset{{Topic: "t", Qid: "0", Offset: 1}})
		for call, err := range calls {
			if sdk.CodeOf(err) != sdk.CodeIllegal || !errors.Is(err, sdk.ErrNoClusterAdmin) || !strings.Contains(err.Error(), "does not implement "+call) {
				t.Errorf("%s: %s answered %v (code %d), want code 11 naming %s", name, call, err, sdk.CodeOf(err), call)
			}
		}
	}
}
