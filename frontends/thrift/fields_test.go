package thriftapi

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"
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
