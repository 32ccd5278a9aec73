package thriftapi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/frontends/thrift/gen-go/producer"
	"github.com/mqgate/mqgate/sdk"
)

func TestDecodeMessage(t *testing.T) {
	t.Run("nil message", func(t *testing.T) {
		_, _, err := decodeMessage(nil, oneMessage, 100, true)
		if sdk.CodeOf(err) != sdk.CodeIllegal || err.Error() != "message: required" {
			t.Fatalf("err = %v, want code 11 message: required", err)
		}
	})
	t.Run("size counts everything", func(t *testing.T) {
		m := newMessage("t", "kk", "vvv")
		m.Tags = "t"
		m.Properties = map[string]string{"h": "x"}
		if _, _, err := decodeMessage(m, oneMessage, 8, true); err != nil {
			t.Fatalf("8 bytes at a limit of 8: %v", err)
		}
		_, _, err := decodeMessage(m, oneMessage, 7, true)
		if sdk.CodeOf(err) != sdk.CodeTooLarge || !strings.Contains(err.Error(), "message is 8 bytes") {
			t.Fatalf("8 bytes at a limit of 7: %v", err)
		}
	})
}

func TestSummarize(t *testing.T) {
	for _, tc := range []struct {
		name     string
		failures []failure
		n        int
		want     string
	}{
		{"one", []failure{{1, 14, "topic x does not exist"}}, 5, "1 of 5 failed: [1] code 14 topic x does not exist"},
		{"ranges", []failure{{0, 12, "t"}, {1, 12, "t"}, {2, 12, "t"}, {4, 12, "t"}, {6, 12, "t"}, {7, 12, "t"}}, 8,
			"6 of 8 failed: [0-2 4 6-7] code 12 t"},
		{"reasons in order of first appearance", []failure{{0, 15, "b"}, {1, 14, "a"}, {2, 15, "b"}}, 3,
			"3 of 3 failed: [0 2] code 15 b; [1] code 14 a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := summarize(tc.failures, tc.n); got != tc.want {
				t.Errorf("summarize = %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("bounded", func(t *testing.T) {
		var fs []failure
		for i := 0; i < 20000; i += 2 {
			fs = append(fs, failure{i, 17, "é unavailable " + strings.Repeat("x", i%7)})
		}
		got := summarize(fs, 20000)
		if len(got) > maxSummaryBytes || !strings.HasSuffix(got, "...") || !strings.HasPrefix(got, "10000 of 20000 failed: [") {
			t.Errorf("summary of %d bytes: %.80q...", len(got), got)
		}
	})
}

// FuzzMessageMapping builds Thrift messages from fuzz input and checks that
// decoding never panics, refuses only with codes 11 and 16 naming the
// message, and otherwise yields a message that honours the mapping.
func FuzzMessageMapping(f *testing.F) {
	f.Add("orders", "k", "v", []byte{0, 1, 255}, true, int64(7), "tag", int32(-1), []byte("a\x00b\x00c\x00d"), 64, true)
	f.Add("", "", "", []byte(nil), false, int64(0), "", int32(-2), []byte(nil), 0, false)
	f.Add("a b", "k", "v", []byte(nil), false, int64(-9), "", int32(-3), []byte("\x00"), 1, true)
	f.Add("t", "", "", []byte{}, true, int64(0), "", int32(5), []byte("x\x00y"), 3, false)
	f.Add("t", "", "v", []byte(nil), false, int64(math.MinInt64), "", int32(-1), []byte("KEYS\x00k\x00 \x00v"), 99, true)
	f.Add("t", "", "v", []byte(nil), false, int64(0), "", int32(-7), []byte("a\x00\t \x00"), 99, true)
	f.Fuzz(func(t *testing.T, topic, key, value string, body []byte, bodySet bool, hashID int64, tags string, partitionID int32, props []byte, maxBytes int, strict bool) {
		m := &producer.Message{Topic: topic, Key: key, Value: value, HashId: hashID, Tags: tags, PartitionId: partitionID}
		if bodySet {
			m.Body = append([]byte{}, body...)
		}
		if len(props) > 0 {
			m.Properties = map[string]string{}
			parts := bytes.Split(props, []byte{0})
			for i := 0; i+1 < len(parts); i += 2 {
				m.Properties[string(parts[i])] = string(parts[i+1])
			}
		}
		gotTopic, got, err := decodeMessage(m, oneMessage, maxBytes, strict)
		if err != nil {
			var e *sdk.Error
			if !errors.As(err, &e) || e.Code != sdk.CodeIllegal && e.Code != sdk.CodeTooLarge {
				t.Fatalf("error %v (%T) is not code 11 or 16", err, err)
			}
			if !strings.HasPrefix(e.Msg, "message") {
				t.Fatalf("error %q does not name the message", e.Msg)
			}
			return
		}
		if gotTopic != topic {
			t.Fatalf("topic = %q, want %q", gotTopic, topic)
		}
		if (got.Key == nil) != (key == "") || string(got.Key) != key {
			t.Fatalf("key = %q, want %q", got.Key, key)
		}
		wantValue := []byte(value)
		if bodySet {
			wantValue = m.Body
		}
		if len(got.Value) == 0 || !bytes.Equal(got.Value, wantValue) {
			t.Fatalf("value = %q, want %q, not empty", got.Value, wantValue)
		}
		for k, v := range m.Properties {
			if javaBlank(k) || javaBlank(v) || reservedProperties[k] {
				t.Fatalf("property %q: %q passed", k, v)
			}
		}
		checkPlacement(t, got, partitionID, hashID, strict)
		if got.Size() > maxBytes || len(got.Headers) != len(m.Properties) ||
			!slices.IsSortedFunc(got.Headers, func(a, b sdk.Header) int { return strings.Compare(a.Key, b.Key) }) {
			t.Fatalf("headers %v of size %d from %v", got.Headers, got.Size(), m.Properties)
		}
	})
}

// checkPlacement checks the partition choice decodeMessage made for a
// message with partitionId and hashId.
func checkPlacement(t *testing.T, got produce.Message, partitionID int32, hashID int64, strict bool) {
	t.Helper()
	switch {
	case strict && partitionID >= 0:
		// DDMQ's partitionId % n (RmqSender, ProducerAsyncServerImpl).
		if got.Partition != sdk.PartitionHash || got.HashID == nil || *got.HashID != int64(partitionID) {
			t.Fatalf("partitionId %d: partition %d, HashID %v; want by hash %d", partitionID, got.Partition, got.HashID, partitionID)
		}
	case strict && partitionID == sdk.PartitionHash:
		if got.Partition != sdk.PartitionHash || got.HashID == nil || *got.HashID != hashID {
			t.Fatalf("hashId %d: partition %d, HashID %v; want by hash %d, 0 included", hashID, got.Partition, got.HashID, hashID)
		}
	case strict:
		if got.Partition != sdk.PartitionRandom || got.HashID != nil {
			t.Fatalf("partitionId %d: partition %d, HashID %v; want random", partitionID, got.Partition, got.HashID)
		}
	default:
		if got.Partition != partitionID || got.Partition < sdk.PartitionRandom {
			t.Fatalf("partition = %d, want %d", got.Partition, partitionID)
		}
		if got.HashID != nil && (partitionID != sdk.PartitionHash || *got.HashID != hashID || hashID == 0) {
			t.Fatalf("HashID = %d for partitionId %d hashId %d", *got.HashID, partitionID, hashID)
		}
	}
}

// FuzzServeConn feeds arbitrary bytes to a connection of a framed, compact
// server: whatever arrives, the server neither panics nor hangs, and the
// producer only sees valid messages.
func FuzzServeConn(f *testing.F) {
	for _, seed := range [][]byte{
		frameOf(f, func(p thrift.TProtocol) {
			ctx := context.Background()
			p.WriteMessageBegin(ctx, "sendSync", thrift.CALL, 1)
			args := producer.NewProducerServiceSendSyncArgs()
			args.Message, args.Timeout = newMessage("orders", "k", "v"), 100
			args.Write(ctx, p)
			p.WriteMessageEnd(ctx)
		}),
		frameOf(f, func(p thrift.TProtocol) {
			ctx := context.Background()
			p.WriteMessageBegin(ctx, "sendBatchSync", thrift.CALL, 2)
			args := producer.NewProducerServiceSendBatchSyncArgs()
			m := newMessage("orders", "", "")
			m.Body, m.Properties = []byte{1, 2}, map[string]string{"a": "b"}
			args.Messages = []*producer.Message{m, newMessage("", "", "")}
			args.Write(ctx, p)
			p.WriteMessageEnd(ctx)
		}),
		hugeList(f),
		[]byte("GET / HTTP/1.1\r\n\r\n"),
	} {
		f.Add(seed)
	}
	fake := &fakeProducer{produce: func(ctx context.Context, topic string, msgs []produce.Message) ([]sdk.ProduceResult, error) {
		return okResults(msgs), nil
	}}
	s := NewProducerServer(Options{Logger: discardLogger(), MaxRequestBytes: 1 << 20, MaxMessageBytes: 1 << 10}, fake)
	f.Fuzz(func(t *testing.T, input []byte) {
		client, server := net.Pipe()
		c := &serverConn{s: s.server, conn: server}
		done := make(chan struct{})
		go func() {
			defer close(done)
			c.serve()
		}()
		go io.Copy(io.Discard, client)
		client.SetWriteDeadline(time.Now().Add(5 * time.Second))
		client.Write(input) // the server may close before reading it all
		client.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("connection still served 10s after the client closed it")
		}
		for _, call := range fake.takeCalls() {
			for _, m := range call.msgs {
				if call.topic == "" || m.Value == nil || m.Size() > 1<<10 {
					t.Fatalf("producer got an invalid message: %s %+v", call.topic, m)
				}
			}
		}
	})
}

// frameOf is one framed compact message written by write.
func frameOf(tb testing.TB, write func(p thrift.TProtocol)) []byte {
	buf := thrift.NewTMemoryBuffer()
	write(thrift.NewTCompactProtocolConf(buf, nil))
	body := buf.Bytes()
	frame := make([]byte, 4+len(body))
	frame[0], frame[1], frame[2], frame[3] = byte(len(body)>>24), byte(len(body)>>16), byte(len(body)>>8), byte(len(body))
	copy(frame[4:], body)
	return frame
}
