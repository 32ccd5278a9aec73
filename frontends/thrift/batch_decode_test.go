package thriftapi

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"testing"
	"unsafe"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/mqgate/mqgate/frontends/thrift/gen-go/producer"
)

// Limits of the decoding tests: small enough for the fuzzer to cross.
const (
	testMaxElems = 64
	testMaxBytes = 4096
)

// encodeBatchArgs returns sendBatchSync's arguments as a client writes
// them after the message header: what decodeBatchArgs reads.
func encodeBatchArgs(t testing.TB, compact bool, msgs []*producer.Message) []byte {
	t.Helper()
	mem := thrift.NewTMemoryBuffer()
	args := &producer.ProducerServiceSendBatchSyncArgs{Messages: msgs}
	if err := args.Write(context.Background(), wireProtocol(compact, mem)); err != nil {
		t.Fatal(err)
	}
	return mem.Bytes()
}

func wireProtocol(compact bool, trans thrift.TTransport) thrift.TProtocol {
	conf := &thrift.TConfiguration{}
	if compact {
		return thrift.NewTCompactProtocolConf(trans, conf)
	}
	return thrift.NewTBinaryProtocolConf(trans, conf)
}

// generatedArgs reads b with the generated code, through the
// guardedProtocol a connection reads with: what the server answered
// before decodeBatchArgs, and what it answers for what that leaves alone.
func generatedArgs(b []byte, compact bool) (msgs []*producer.Message, err error) {
	mem := &thrift.TMemoryBuffer{Buffer: bytes.NewBuffer(b)}
	g := &guardedProtocol{TProtocol: wireProtocol(compact, mem), maxElems: testMaxElems, compact: compact, maxBytes: testMaxBytes}
	defer func() {
		if r := recover(); r != nil {
			switch r := r.(type) {
			case errTooDeep:
				err = r
			case readAbort:
				err = r.err
			default:
				panic(r)
			}
		}
	}()
	args := &producer.ProducerServiceSendBatchSyncArgs{}
	err = args.Read(context.Background(), g)
	return args.Messages, err
}

// batchOf returns messages built by each, one per i < n.
func batchOf(n int, each func(i int, m *producer.Message)) []*producer.Message {
	var ms []*producer.Message
	for i := range n {
		m := producer.NewMessage()
		each(i, m)
		ms = append(ms, m)
	}
	return ms
}

func strp(s string) *string { return &s }

// Batches as clients send them decode to the messages the generated code
// reads, on both protocols, and their bodies are the frame's own bytes,
// with no room past their end.
func TestDecodeBatchArgsAsGenerated(t *testing.T) {
	batches := map[string][]*producer.Message{
		"DDMQ's SDK: topic, key, body": batchOf(3, func(i int, m *producer.Message) {
			m.Topic, m.Key, m.Body = "orders", fmt.Sprintf("k%d", i), bytes.Repeat([]byte{byte(i)}, 300)
		}),
		"every field": batchOf(2, func(i int, m *producer.Message) {
			m.Topic, m.Key, m.Value, m.HashId, m.Tags, m.PartitionId = "t", "k", "a value", -1<<40-int64(i), "tag", int32(i)
			m.Body, m.Version = []byte("body"), strp("java-1.0")
			m.Properties = map[string]string{"trace": "abc", "来源": "app", "": ""}
		}),
		"topics and tags that change": batchOf(4, func(i int, m *producer.Message) {
			m.Topic, m.Tags, m.Body = fmt.Sprintf("t%d", i/2), fmt.Sprintf("tag%d", i%2), []byte{1}
		}),
		"an empty body and empty properties": batchOf(1, func(_ int, m *producer.Message) {
			m.Topic, m.Body, m.Properties = "t", []byte{}, map[string]string{}
		}),
		"partitions and hash ids at their limits": batchOf(4, func(i int, m *producer.Message) {
			m.Topic, m.Body = "t", []byte("x")
			m.PartitionId = []int32{-2, -1, 1<<31 - 1, -1 << 31}[i]
			m.HashId = []int64{0, -1, 1<<63 - 1, -1 << 63}[i]
		}),
		"no messages":           {},
		"a message of defaults": {producer.NewMessage()},
	}
	for name, msgs := range batches {
		for _, compact := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s, compact %v", name, compact), func(t *testing.T) {
				b := encodeBatchArgs(t, compact, msgs)
				got, ok := decodeBatchArgs(b, compact, testMaxElems, testMaxBytes)
				if !ok {
					t.Fatal("not decoded")
				}
				want, err := generatedArgs(b, compact)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("decoded %s;\nthe generated code reads %s", dump(got), dump(want))
				}
				for i, m := range got {
					if len(m.Body) == 0 {
						continue
					}
					if cap(m.Body) != len(m.Body) {
						t.Errorf("message %d: body of %d bytes has room for %d", i, len(m.Body), cap(m.Body))
					}
					if !within(m.Body, b) {
						t.Errorf("message %d: body is a copy, not the frame's bytes", i)
					}
				}
			})
		}
	}
}

// within reports whether v's bytes are some of b's.
func within(v, b []byte) bool {
	start, end := uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(unsafe.Pointer(unsafe.SliceData(b)))+uintptr(len(b))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(v)))
	return p >= start && p+uintptr(len(v)) <= end
}

func dump(msgs []*producer.Message) string {
	var b bytes.Buffer
	for _, m := range msgs {
		fmt.Fprintf(&b, "%+v ", *m)
	}
	return b.String()
}

// What clients do not send (unknown fields, fields of another type,
// lengths and counts past the limits, truncated frames) is left to the
// generated code, which skips or refuses it as it always has.
func TestDecodeBatchArgsLeavesTheRest(t *testing.T) {
	msg := batchOf(1, func(_ int, m *producer.Message) { m.Topic, m.Body = "t", []byte("body") })
	compactOK := encodeBatchArgs(t, true, msg)
	cases := map[string]struct {
		b       []byte
		compact bool
		wantErr string // "" when the generated code reads it
	}{
		// A field 2 (i32 7) before the list in the arguments.
		"an unknown argument": {append([]byte{0x25, 0x0e}, compactOK...), true, ""},
		// Field 1 as an i32 rather than a list.
		"the list of another type": {[]byte{0x15, 0x02, 0x00}, true, ""},
		// A list of 2 i32s.
		"a list of another element type": {[]byte{0x19, 0x25, 0x02, 0x04, 0x00}, true, "EOF"},
		// One message with field 10, a string, then a STOP.
		"an unknown message field": {[]byte{0x19, 0x1c, 0xa8, 0x01, 'x', 0x00, 0x00}, true, ""},
		// Message field 1 (topic) as an i32.
		"a message field of another type": {[]byte{0x19, 0x1c, 0x15, 0x02, 0x00, 0x00}, true, ""},
		// A field header with its id in long form (zigzag 1).
		"a long form field id": {[]byte{0x09, 0x02, 0x1c, 0x00, 0x00}, true, ""},
		"a truncated frame":    {compactOK[:len(compactOK)-3], true, "field longer than the request"},
		// A list of 100 messages, over testMaxElems.
		"a list over the limit": {[]byte{0x19, 0xfc, 0x64}, true, "container size"},
		// A topic of 5000 bytes, over testMaxBytes.
		"a string over the limit": {[]byte{0x19, 0x1c, 0x18, 0x88, 0x27}, true, "field longer"},
		// Binary: a list whose element count is negative.
		"a negative count": {[]byte{15, 0, 1, 12, 0xff, 0xff, 0xff, 0xff}, false, "negative"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if msgs, ok := decodeBatchArgs(tc.b, tc.compact, testMaxElems, testMaxBytes); ok {
				t.Fatalf("decoded %s; want it left to the generated code", dump(msgs))
			}
			_, err := generatedArgs(tc.b, tc.compact)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("the generated code refuses it: %v", err)
			case tc.wantErr != "" && (err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.wantErr))):
				t.Fatalf("the generated code reads it with %v; want an error with %q", err, tc.wantErr)
			}
		})
	}
}

// Whatever decodeBatchArgs decodes, the generated code reads the same
// messages from; and it never reads past a frame, nor panics.
func FuzzDecodeBatchArgs(f *testing.F) {
	seeds := [][]*producer.Message{
		batchOf(2, func(i int, m *producer.Message) {
			m.Topic, m.Key, m.Body, m.HashId, m.PartitionId = "orders", "k", []byte{byte(i)}, 42, 3
			m.Properties = map[string]string{"a": "b"}
			m.Version, m.Tags, m.Value = strp("v"), "tag", "value"
		}),
		{producer.NewMessage()},
		{},
	}
	for _, msgs := range seeds {
		f.Add(encodeBatchArgs(f, true, msgs), true)
		f.Add(encodeBatchArgs(f, false, msgs), false)
	}
	f.Fuzz(func(t *testing.T, b []byte, compact bool) {
		got, ok := decodeBatchArgs(b, compact, testMaxElems, testMaxBytes)
		if !ok {
			return
		}
		want, err := generatedArgs(b, compact)
		if err != nil {
			t.Fatalf("decoded %s; the generated code refuses it: %v", dump(got), err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("decoded %s;\nthe generated code reads %s", dump(got), dump(want))
		}
	})
}
