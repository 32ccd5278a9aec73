package thriftapi

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mqgate/mqgate/internal/syncbuf"
)

// heapInuse is the heap in use after a collection.
func heapInuse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// On the unframed transport, a string field's length prefix arrives
// before its bytes: clients that declare 64 MiB and send a few bytes cost
// the gateway what they send, not what they declare.
func TestDeclaredFieldLengthDoesNotAllocate(t *testing.T) {
	const (
		conns        = 50
		declared     = 64 << 20
		perConnBound = 1 << 20
	)
	srv := startServer(t, Options{Transport: TransportBuffered, Protocol: ProtocolBinary,
		MaxRequestBytes: declared + requestOverhead, DefaultTimeout: time.Minute}, &fakeProducer{})
	before := heapInuse()

	// A binary-protocol sendSync call whose message's topic declares
	// 64 MiB, followed by a few of its bytes.
	call := binary.BigEndian.AppendUint32(nil, 0x80010001) // version 1, CALL
	call = binary.BigEndian.AppendUint32(call, uint32(len("sendSync")))
	call = append(call, "sendSync"...)
	call = binary.BigEndian.AppendUint32(call, 1) // seqid
	call = append(call, 12, 0, 1)                 // field 1: struct Message
	call = append(call, 11, 0, 1)                 // field 1: string topic
	call = binary.BigEndian.AppendUint32(call, declared)
	call = append(call, "orders"...)
	for range conns {
		conn, err := net.Dial("tcp", srv.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		if _, err := conn.Write(call); err != nil {
			t.Fatal(err)
		}
	}
	// Every call's goroutine is reading the field.
	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		if n := strings.Count(stacks, "(*guardedProtocol).readBytes"); n < conns {
			return fmt.Errorf("%d goroutines reading a field; want %d", n, conns)
		}
		return nil
	})
	grown := int64(heapInuse()) - int64(before)
	t.Logf("heap in use grew %.1f MiB for %d connections declaring %d MiB fields", float64(grown)/(1<<20), conns, declared>>20)
	if grown > conns*perConnBound {
		t.Errorf("heap grew %d MiB for %d connections declaring %d MiB each; want under %d MiB",
			grown>>20, conns, declared>>20, conns*perConnBound>>20)
	}
}

func TestReadGrowing(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 50000)
	for _, tc := range []struct {
		name    string
		r       io.Reader
		n       int
		wantErr error
	}{
		{name: "whole", r: bytes.NewReader(data), n: len(data)},
		{name: "a prefix", r: bytes.NewReader(data), n: 200000},
		{name: "one byte at a time", r: iotest.OneByteReader(bytes.NewReader(data)), n: 70000},
		{name: "data with EOF", r: iotest.DataErrReader(bytes.NewReader(data)), n: len(data)},
		{name: "short", r: bytes.NewReader(data), n: len(data) + 1, wantErr: io.ErrUnexpectedEOF},
		{name: "failing", r: iotest.TimeoutReader(bytes.NewReader(data)), n: len(data), wantErr: iotest.ErrTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readGrowing(tc.r, tc.n)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v; want %v", err, tc.wantErr)
			}
			if err == nil && !bytes.Equal(got, data[:tc.n]) {
				t.Errorf("read %d bytes, not the first %d", len(got), tc.n)
			}
		})
	}
}

// Requests a server has read and not answered hold at most
// MaxRequestBytesInFlight: a connection whose request finds no room is
// closed, and once the bytes are released calls go through again.
func TestRequestBytesInFlightBound(t *testing.T) {
	const maxRequest = 128 << 10
	logs := &syncbuf.Buffer{}
	srv := startServer(t, Options{MaxMessageBytes: 64 << 10, MaxRequestBytes: maxRequest, MaxRequestBytesInFlight: 1,
		DefaultTimeout: time.Minute, Logger: slog.New(slog.NewTextHandler(logs, nil))}, &fakeProducer{})
	limit := srv.opts.MaxRequestBytesInFlight // raised to one request and its overhead
	if limit != maxRequest+requestOverhead {
		t.Fatalf("MaxRequestBytesInFlight = %d; want it raised to %d", limit, maxRequest+requestOverhead)
	}
	inFlight := func() float64 { return testutil.ToFloat64(srv.metrics.requestBytesInFlight) }

	// A frame of the largest size, most of it sent.
	const held = 120 << 10
	holder, err := net.Dial("tcp", srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if _, err := holder.Write(append(binary.BigEndian.AppendUint32(nil, maxRequest), make([]byte, held-4)...)); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if got := inFlight(); got != held {
			return fmt.Errorf("%v request bytes in flight; want %d", got, held)
		}
		return nil
	})

	// Another such request's bytes do not fit: its connection is closed.
	other, err := net.Dial("tcp", srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.Write(append(binary.BigEndian.AppendUint32(nil, maxRequest), make([]byte, 80<<10)...)); err != nil {
		t.Fatal(err)
	}
	if err := other.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	if _, err := other.Read(b[:]); err == nil {
		t.Fatal("the server answered a request it had no room for")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the server kept a connection whose request had no room")
	}
	if got := testutil.ToFloat64(srv.metrics.requestsRefused); got != 1 {
		t.Errorf("%v refusals counted; want 1", got)
	}
	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if !strings.Contains(logs.String(), "its request found no room in thrift.max_request_bytes_in_flight") {
			return fmt.Errorf("the log does not say why the connection was closed:\n%s", logs.String())
		}
		return nil
	})

	holder.Close()
	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if got := inFlight(); got != 0 {
			return fmt.Errorf("%v request bytes in flight after the clients left; want 0", got)
		}
		return nil
	})
	client := dial(t, srv.addr, TransportFramed, ProtocolCompact)
	if r, err := client.SendSync(context.Background(), newMessage("t", "k", "v"), 5000); err != nil || r.Code != 0 {
		t.Fatalf("a call after the bytes were released = %+v, %v", r, err)
	}
	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if got := inFlight(); got != 0 {
			return fmt.Errorf("%v request bytes in flight after the answer; want 0", got)
		}
		return nil
	})
}
