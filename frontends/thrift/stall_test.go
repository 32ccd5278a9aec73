package thriftapi

import (
	"context"
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/sdk"
)

// A client that sends a call's header and then stalls loses the
// connection once the request timeout passes: it cannot hold a slot
// forever. A handler that is merely slow is not cut short.
func TestStalledRequestIsClosed(t *testing.T) {
	slow := &fakeProducer{produce: func(ctx context.Context, topic string, msgs []produce.Message) ([]sdk.ProduceResult, error) {
		time.Sleep(300 * time.Millisecond) // longer than the read timeout below
		return make([]sdk.ProduceResult, len(msgs)), nil
	}}
	srv := startServer(t, Options{DefaultTimeout: 100 * time.Millisecond, MaxTimeout: 5 * time.Second}, slow)

	// The slow call still answers: the read timeout covers reading only.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := dial(t, srv.addr, TransportFramed, ProtocolCompact)
	if r, err := client.SendSync(ctx, newMessage("t", "k", "v"), 5000); err != nil || r.Code != 0 {
		t.Fatalf("a slow handler's call = %+v, %v; want it answered", r, err)
	}

	conn, err := net.Dial("tcp", srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A frame announcing 1000 bytes, holding only a compact call header
	// for sendSync: the server reads the header, then waits for the rest.
	header := append([]byte{0x82, 0x21, 0x00, byte(len("sendSync"))}, "sendSync"...)
	frame := binary.BigEndian.AppendUint32(nil, 1000)
	if _, err := conn.Write(append(frame, header...)); err != nil {
		t.Fatal(err)
	}
	if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	var buf [1]byte
	if _, err := conn.Read(buf[:]); err == nil {
		t.Fatal("the server answered a request it never fully received")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the server kept a stalled request's connection open")
	}
}

// A connection that sends nothing for the idle timeout is closed; a
// handler's own time does not count as idle, and a connection in use
// stays open.
func TestIdleConnectionIsClosed(t *testing.T) {
	const idle = 500 * time.Millisecond
	slow := &fakeProducer{produce: func(ctx context.Context, topic string, msgs []produce.Message) ([]sdk.ProduceResult, error) {
		time.Sleep(idle + 200*time.Millisecond)
		return make([]sdk.ProduceResult, len(msgs)), nil
	}}
	srv := startServer(t, Options{IdleTimeout: idle, ReadTimeout: 5 * time.Second, DefaultTimeout: 5 * time.Second}, slow)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := dial(t, srv.addr, TransportFramed, ProtocolCompact)
	for i := range 2 {
		if r, err := client.SendSync(ctx, newMessage("t", "k", "v"), 5000); err != nil || r.Code != 0 {
			t.Fatalf("call %d on a connection in use = %+v, %v; want it answered", i, r, err)
		}
	}

	conn, err := net.Dial("tcp", srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	var buf [1]byte
	if _, err := conn.Read(buf[:]); err == nil {
		t.Fatal("the server sent something on a connection that never asked")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the server kept an idle connection open past thrift.limits.idle_timeout")
	}
}
