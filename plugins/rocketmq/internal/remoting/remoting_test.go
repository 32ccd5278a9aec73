package remoting

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

func TestEncodeRead(t *testing.T) {
	in := NewRequest(PullMessage, map[string]string{"topic": "t", "queueId": "3"}, []byte{0, 1, 2, 255})
	in.Opaque = 42
	frame, err := in.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if n := binary.BigEndian.Uint32(frame); int(n) != len(frame)-4 {
		t.Fatalf("length word %d for a frame of %d bytes", n, len(frame))
	}
	out, err := ReadCommand(bufio.NewReader(bytes.NewReader(frame)), MaxFrame)
	if err != nil {
		t.Fatal(err)
	}
	if out.Code != in.Code || out.Opaque != 42 || out.Language != "GO" || out.ExtFields["queueId"] != "3" || !bytes.Equal(out.Body, in.Body) {
		t.Fatalf("read back %+v", out)
	}
	resp := NewResponse(out, PullNotFound, "none", nil, nil)
	if !resp.IsResponse() || resp.Opaque != 42 || resp.IsOneway() {
		t.Fatalf("response %+v", resp)
	}
}

func TestReadMalformed(t *testing.T) {
	frame := func(total, headerWord uint32, rest string) []byte {
		b := binary.BigEndian.AppendUint32(nil, total)
		b = binary.BigEndian.AppendUint32(b, headerWord)
		return append(b, rest...)
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "EOF"},
		{"short length", []byte{0, 0}, "EOF"},
		{"length under 4", frame(3, 0, ""), "frame length 3 outside"},
		{"length over the limit", frame(1<<30, 0, ""), "outside 4..1024"},
		{"binary serialization", frame(6, 1<<24|2, "{}"), "serialization 1 not supported"},
		{"header past the frame", frame(6, 100, "{}"), "header length 100 exceeds"},
		{"truncated", frame(100, 2, "{}"), "unexpected EOF"},
		{"bad json", frame(7, 3, "{x}"), "header:"},
		{"wrong types", frame(16, 12, `{"code":"a"}`), "header:"},
	} {
		_, err := ReadCommand(bufio.NewReader(bytes.NewReader(tc.in)), 1024)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want an error containing %q", tc.name, err, tc.want)
		}
	}
}

func FuzzReadCommand(f *testing.F) {
	good, _ := NewRequest(HeartBeat, map[string]string{"a": "b"}, []byte("body")).Encode()
	f.Add(good)
	f.Add([]byte{0, 0, 0, 4, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ReadCommand(bufio.NewReader(bytes.NewReader(data)), 1<<16)
		if err != nil {
			return
		}
		// What decodes re-encodes and decodes to the same command.
		frame, err := c.Encode()
		if err != nil {
			t.Fatal(err)
		}
		again, err := ReadCommand(bufio.NewReader(bytes.NewReader(frame)), 1<<20)
		if err != nil || again.Code != c.Code || again.Opaque != c.Opaque || !bytes.Equal(again.Body, c.Body) {
			t.Fatalf("re-read %+v, %v; want %+v", again, err, c)
		}
	})
}

// A peer that answers out of order, and sends a request of its own.
func TestConnInvoke(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		r := bufio.NewReader(nc)
		a, _ := ReadCommand(r, MaxFrame)
		b, _ := ReadCommand(r, MaxFrame)
		if a == nil || b == nil {
			return
		}
		for _, c := range []*Command{
			NewRequest(NotifyConsumerIDsChanged, map[string]string{"consumerGroup": "g"}, nil),
			NewResponse(b, Success, "", map[string]string{"n": "b"}, nil),
			NewResponse(a, Success, "", map[string]string{"n": "a"}, nil),
		} {
			frame, _ := c.Encode()
			nc.Write(frame)
		}
		r.ReadByte() // hold the connection until the client closes it
	}()
	notified := make(chan string, 1)
	c, err := Dial(context.Background(), ln.Addr().String(), func(cmd *Command) { notified <- cmd.ExtFields["consumerGroup"] })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	results := make(chan string, 2)
	for range 2 {
		go func() {
			resp, err := c.Invoke(ctx, NewRequest(GetMaxOffset, nil, nil))
			if err != nil {
				results <- err.Error()
				return
			}
			results <- resp.ExtFields["n"]
		}()
	}
	got := map[string]bool{<-results: true, <-results: true}
	if !got["a"] || !got["b"] {
		t.Fatalf("responses %v; want each request to get its own", got)
	}
	if g := <-notified; g != "g" {
		t.Fatalf("the peer's request reached the handler as %q", g)
	}
	c.Close()
	if _, err := c.Invoke(ctx, NewRequest(GetMaxOffset, nil, nil)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Invoke after Close: %v; want ErrClosed", err)
	}
}
