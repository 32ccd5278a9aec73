package sdk_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mqgate/mqgate/sdk"
)

// socketPair is a connected pair of Unix sockets, as the plugin host
// creates for a produce connection.
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
	go func() { defer close(done); _ = sdk.ServeProduceConn(ctx, pl, impl) }()
	t.Cleanup(func() { cancel(); <-done })
	if !sdk.AttachProduceConn(b, gw) {
		t.Fatal("the gateway's Backend did not take the produce connection")
	}
	waitFor(t, "the plugin to serve its produce connection", func() bool { return sdk.ProducesOverConn(b) })
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
func TestProduceConnAnswersEachCaller(t *testing.T) {
	be := &echoBackend{}
	plugin := &streamPlugin{BackendServer: sdk.NewBackendServer(be)}
	b, _ := servedConn(t, plugin, be)
	produceConcurrently(t, b)
	if s, u := plugin.streams.Load(), plugin.unaryCalls.Load(); s != 0 || u != 0 {
		t.Errorf("%d streams and %d unary calls for 640 calls, want none: every call goes on the produce connection", s, u)
	}
}

// Errors keep their codes across the connection, and a batch's error
// reaches its caller alone.
func TestProduceConnKeepsErrorCodes(t *testing.T) {
	be := &memBackend{failWith: sdk.Errorf(sdk.CodeTopicNotExist, "topic gone does not exist")}
	b, _ := servedConn(t, &streamPlugin{BackendServer: sdk.NewBackendServer(be)}, be)
	_, err := produceKeys(b, context.Background(), "gone", "k")
	if sdk.CodeOf(err) != sdk.CodeTopicNotExist || !strings.Contains(err.Error(), "topic gone does not exist") {
		t.Fatalf("got %v (code %d), want code 14 naming the topic", err, sdk.CodeOf(err))
	}
}

// A plugin built with an SDK that does not know the connection never
// says it serves it: its calls take the gRPC stream.
func TestProduceConnNotServedTakesTheStream(t *testing.T) {
	plugin := &streamPlugin{BackendServer: sdk.NewBackendServer(&echoBackend{})}
	b := dialStreamPlugin(t, plugin)
	gw, _ := socketPair(t) // the plugin's end is never read or written
	if !sdk.AttachProduceConn(b, gw) {
		t.Fatal("the gateway's Backend did not take the produce connection")
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
func TestProduceConnClosedByPluginFailsPendingAndFallsBack(t *testing.T) {
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
// timeout or code 17, the connection is given up, and later calls take
// the gRPC stream.
func TestProduceConnStalledPluginFreesCallers(t *testing.T) {
	plugin := &streamPlugin{BackendServer: sdk.NewBackendServer(&echoBackend{})}
	b := dialStreamPlugin(t, plugin)
	gw, pl := socketPair(t)
	if _, err := io.WriteString(pl, sdk.ProduceConnHello); err != nil { // and reads nothing
		t.Fatal(err)
	}
	sdk.AttachProduceConn(b, gw)
	waitFor(t, "the plugin to serve its produce connection", func() bool { return sdk.ProducesOverConn(b) })
	produceIntoStall(t, b)
	waitFor(t, "the stalled connection to be given up", func() bool { return !sdk.ProducesOverConn(b) })
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
func TestProduceConnRefusesOversizedMessage(t *testing.T) {
	gw, pl := socketPair(t)
	errc := make(chan error, 1)
	go func() { errc <- sdk.ServeProduceConn(context.Background(), pl, &echoBackend{}) }()
	hello := make([]byte, len(sdk.ProduceConnHello))
	if _, err := io.ReadFull(gw, hello); err != nil || string(hello) != sdk.ProduceConnHello {
		t.Fatalf("the plugin said %q, %v; want its hello", hello, err)
	}
	var head [4]byte
	binary.BigEndian.PutUint32(head[:], sdk.MaxMessageBytes+1)
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
