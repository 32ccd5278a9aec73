package sdk_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mqgate/mqgate/sdk"
)

// socketPair is a connected pair of Unix sockets, as the plugin host
// creates for a plugin connection.
func socketPair(t testing.TB) (gateway, plugin net.Conn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conns := make([]net.Conn, 2)
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "produce-conn")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		conns[i] = c
	}
	return conns[0], conns[1]
}

// servedConn returns the gateway's Backend for plugin, with a produce
// connection served by impl attached, once the plugin has said it serves
// it. Closing the returned plugin end ends the connection.
func servedConn(t *testing.T, plugin *streamPlugin, impl sdk.Backend) (sdk.Backend, net.Conn) {
	t.Helper()
	b := dialStreamPlugin(t, plugin)
	gw, pl := socketPair(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = sdk.ServePluginConn(ctx, pl, impl) }()
	t.Cleanup(func() { cancel(); <-done })
	if !sdk.AttachPluginConn(b, gw, slog.New(slog.DiscardHandler)) {
		t.Fatal("the gateway's Backend did not take the plugin connection")
	}
	waitFor(t, "the plugin to serve its plugin connection", func() bool { return sdk.UsesPluginConn(b) })
	return b, pl
}

// waitFor waits, within a generous bound, for cond.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s", what)
		}
	}
}

// Concurrent calls share the connection, each gets its own results, and
// none goes over gRPC.
func TestPluginConnAnswersEachCaller(t *testing.T) {
	be := &echoBackend{}
	plugin := &streamPlugin{BackendServer: sdk.NewBackendServer(be)}
	b, _ := servedConn(t, plugin, be)
	produceConcurrently(t, b)
	if s, u := plugin.streams.Load(), plugin.unaryCalls.Load(); s != 0 || u != 0 {
		t.Errorf("%d streams and %d unary calls for 640 calls, want none: every call goes on the plugin connection", s, u)
	}
}

// Errors keep their codes across the connection, and a batch's error
// reaches its caller alone.
func TestPluginConnKeepsErrorCodes(t *testing.T) {
	be := &memBackend{failWith: sdk.Errorf(sdk.CodeTopicNotExist, "topic gone does not exist")}
	b, _ := servedConn(t, &streamPlugin{BackendServer: sdk.NewBackendServer(be)}, be)
	_, err := produceKeys(b, context.Background(), "gone", "k")
	if sdk.CodeOf(err) != sdk.CodeTopicNotExist || !strings.Contains(err.Error(), "topic gone does not exist") {
		t.Fatalf("got %v (code %d), want code 14 naming the topic", err, sdk.CodeOf(err))
	}
}

// A plugin built with an SDK that does not know the connection never
// says it serves it: its calls take the gRPC stream.
func TestPluginConnNotServedTakesTheStream(t *testing.T) {
	plugin := &streamPlugin{BackendServer: sdk.NewBackendServer(&echoBackend{})}
	b := dialStreamPlugin(t, plugin)
	gw, _ := socketPair(t) // the plugin's end is never read or written
	if !sdk.AttachPluginConn(b, gw, slog.New(slog.DiscardHandler)) {
		t.Fatal("the gateway's Backend did not take the plugin connection")
	}
	res, err := produceKeys(b, context.Background(), "t", "k")
	if err != nil || res[0].Qid != "k" {
		t.Fatalf("got %+v, %v", res, err)
	}
	if n := plugin.streams.Load(); n != 1 {
		t.Errorf("%d streams opened, want the call on the gRPC stream", n)
	}
}

// A plugin that closes its end (it died) fails the batches pending on it
// with code 17, which a caller may retry; later calls take the gRPC stream.
func TestPluginConnClosedByPluginFailsPendingAndFallsBack(t *testing.T) {
	be := &echoBackend{hold: make(chan struct{})}
	plugin := &streamPlugin{BackendServer: sdk.NewBackendServer(be)}
	b, pl := servedConn(t, plugin, be)
	errs := make(chan error, 1)
	go func() {
		_, err := produceKeys(b, context.Background(), "slow", "pending")
		errs <- err
	}()
	// Once the plugin holds the batch, its end goes away.
	waitFor(t, "the batch to reach the plugin", func() bool { return be.holding.Load() > 0 })
	pl.Close()
	if err := <-errs; sdk.CodeOf(err) != sdk.CodeUnavailable {
		t.Fatalf("a batch pending on a closed connection got %v (code %d), want code 17", err, sdk.CodeOf(err))
	}
	close(be.hold)
	res, err := produceKeys(b, context.Background(), "t", "after")
	if err != nil || res[0].Qid != "after" {
		t.Fatalf("the next call got %+v, %v", res, err)
	}
	if n := plugin.streams.Load(); n != 1 {
		t.Errorf("%d streams opened, want the next call on the gRPC stream", n)
	}
}

// A plugin that stops reading fills the socket's buffer, and a write then
// blocks. No caller waits past its own deadline for that: each gets a
// timeout or code 17; once a frame begun cannot be finished either, the
// connection is given up, and later calls take the gRPC stream.
func TestPluginConnStalledPluginFreesCallers(t *testing.T) {
	defer sdk.SetConnStallTimeout(500 * time.Millisecond)()
	plugin := &streamPlugin{BackendServer: sdk.NewBackendServer(&echoBackend{})}
	b := dialStreamPlugin(t, plugin)
	gw, pl := socketPair(t)
	if _, err := io.WriteString(pl, sdk.PluginConnHello); err != nil { // and reads nothing
		t.Fatal(err)
	}
	sdk.AttachPluginConn(b, gw, slog.New(slog.DiscardHandler))
	waitFor(t, "the plugin to serve its plugin connection", func() bool { return sdk.UsesPluginConn(b) })
	produceIntoStall(t, b)
	waitFor(t, "the stalled connection to be given up", func() bool { return !sdk.UsesPluginConn(b) })
	res, err := produceKeys(b, context.Background(), "t", "after")
	if err != nil || res[0].Qid != "after" {
		t.Fatalf("the call after the stall got %+v, %v", res, err)
	}
	if n := plugin.streams.Load(); n != 1 {
		t.Errorf("%d streams opened, want the call after the stall on the gRPC stream", n)
	}
}

// A plugin refuses a message longer than the protocol's bound before
// allocating for it, and ends the connection.
func TestPluginConnRefusesOversizedMessage(t *testing.T) {
	gw, pl := socketPair(t)
	errc := make(chan error, 1)
	go func() { errc <- sdk.ServePluginConn(context.Background(), pl, &echoBackend{}) }()
	hello := make([]byte, len(sdk.PluginConnHello))
	if _, err := io.ReadFull(gw, hello); err != nil || string(hello) != sdk.PluginConnHello {
		t.Fatalf("the plugin said %q, %v; want its hello", hello, err)
	}
	var head [13]byte // length, kind (a produce batch), stream id
	binary.BigEndian.PutUint32(head[:], sdk.MaxMessageBytes+1)
	head[4] = 1
	if _, err := gw.Write(head[:]); err != nil {
		t.Fatal(err)
	}
	err := <-errc
	if err == nil || !strings.Contains(err.Error(), fmt.Sprint(sdk.MaxMessageBytes)) {
		t.Fatalf("serving ended with %v, want an error naming the bound of %d bytes", err, sdk.MaxMessageBytes)
	}
	if _, err := gw.Read(head[:]); err != io.EOF {
		t.Errorf("reading the gateway's end after the refusal: %v, want EOF", err)
	}
}

// A consume stream over the connection hands out records for the credits
// granted and commits, and none of it goes over gRPC.
func TestPluginConnCarriesConsumeStreams(t *testing.T) {
	mem := &memBackend{feed: make(chan sdk.Record, 10)}
	for i := range 5 {
		mem.feed <- sdk.Record{Topic: "t", Qid: "0", Offset: int64(i), Value: []byte{byte(i)}}
	}
	plugin := &streamPlugin{BackendServer: sdk.NewBackendServer(mem)}
	b, _ := servedConn(t, plugin, mem)
	ctx, c := subscribe(t, b)
	var seen []int64
	for len(seen) < 5 {
		ev, err := c.Poll(ctx, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range ev.Records {
			if len(r.Value) != 1 || r.Value[0] != byte(r.Offset) {
				t.Fatalf("record %d arrived with value %v", r.Offset, r.Value)
			}
			seen = append(seen, r.Offset)
		}
	}
	if err := c.Commit(ctx, []sdk.Offset{{Topic: "t", Qid: "0", Offset: 5}}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(seen) != "[0 1 2 3 4]" {
		t.Fatalf("polled offsets %v", seen)
	}
	mem.mu.Lock()
	commits := fmt.Sprint(mem.commits)
	mem.mu.Unlock()
	if commits != "[[{t 0 5 false}]]" {
		t.Fatalf("the plugin saw commits %s", commits)
	}
	if n := plugin.consumes.Load(); n != 0 {
		t.Errorf("%d Consume streams over gRPC, want none", n)
	}
}

// A plugin that closes its end of the connection ends the consume streams
// on it with code 17, as a plugin that is gone ends a gRPC stream; the
// next stream opens over gRPC.
func TestPluginConnClosedEndsConsumeStreams(t *testing.T) {
	mem := &memBackend{feed: make(chan sdk.Record, 10)}
	mem.feed <- sdk.Record{Topic: "t", Qid: "0", Offset: 0}
	plugin := &streamPlugin{BackendServer: sdk.NewBackendServer(mem)}
	b, pl := servedConn(t, plugin, mem)
	ctx, c := subscribe(t, b)
	if ev, err := c.Poll(ctx, 1); err != nil || len(ev.Records) != 1 {
		t.Fatalf("first Poll = %+v, %v; want a record", ev, err)
	}
	pl.Close()
	_, err := c.Poll(ctx, 1)
	if sdk.CodeOf(err) != sdk.CodeUnavailable || !errors.Is(err, sdk.ErrStreamEnded) {
		t.Fatalf("Poll after the connection closed = %v (code %d), want the stream ended with code 17", err, sdk.CodeOf(err))
	}
	// The first stream's poll in the plugin may take one of these before
	// it learns the connection is gone.
	mem.feed <- sdk.Record{Topic: "t", Qid: "0", Offset: 1}
	mem.feed <- sdk.Record{Topic: "t", Qid: "0", Offset: 2}
	_, c2 := subscribe(t, b)
	if ev, err := c2.Poll(ctx, 1); err != nil || len(ev.Records) != 1 {
		t.Fatalf("Poll of a new stream = %+v, %v", ev, err)
	}
	if n := plugin.consumes.Load(); n != 1 {
		t.Errorf("%d Consume streams over gRPC, want the new one", n)
	}
}

// A caller that gives up while its large batch is being written gets a
// timeout, but the connection goes on: the batch's frame is finished
// behind it, and consume streams and later calls on the connection carry
// on, where closing it would have ended every stream on the plugin.
func TestPluginConnCallerGivingUpMidWriteKeepsTheConnection(t *testing.T) {
	mem := &memBackend{feed: make(chan sdk.Record, 10)}
	mem.feed <- sdk.Record{Topic: "t", Qid: "0", Offset: 0}
	mem.feed <- sdk.Record{Topic: "t", Qid: "0", Offset: 1}
	plugin := &streamPlugin{BackendServer: sdk.NewBackendServer(mem)}
	b, _ := servedConn(t, plugin, mem)
	ctx, c := subscribe(t, b)
	if ev, err := c.Poll(ctx, 1); err != nil || len(ev.Records) != 1 {
		t.Fatalf("first Poll = %+v, %v", ev, err)
	}
	short, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	_, err := b.Produce(short, []sdk.Record{{Topic: "t", Value: make([]byte, 64<<20)}})
	if c := sdk.CodeOf(err); err != nil && c != sdk.CodeTimeout {
		t.Fatalf("a batch whose caller gave up got %v (code %d), want a timeout", err, c)
	}
	if ev, err := c.Poll(ctx, 1); err != nil || len(ev.Records) != 1 {
		t.Fatalf("Poll after a caller gave up mid-write = %+v, %v; want the stream to go on", ev, err)
	}
	if _, err := produceKeys(b, ctx, "t", "after"); err != nil {
		t.Fatal(err)
	}
	if !sdk.UsesPluginConn(b) || plugin.consumes.Load() != 0 || plugin.streams.Load() != 0 {
		t.Fatalf("connection in use %v, %d gRPC consume streams, %d produce streams; want it all on the connection",
			sdk.UsesPluginConn(b), plugin.consumes.Load(), plugin.streams.Load())
	}
}
