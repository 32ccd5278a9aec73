package httpapi

import (
	"bytes"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/frontends/http/httppb"
	"github.com/mqgate/mqgate/sdk"
)

// testLimits are the limits the decoder gets in tests of its own.
var testLimits = bodyLimits{maxMessages: 1000, maxDecoded: 64 << 20}

// encodeProtobuf is msgs as a ProduceRequest, encoded by the protobuf
// module's generated code: what a Go client built from mqgate_http.proto
// sends.
func encodeProtobuf(t testing.TB, msgs []produce.Message) []byte {
	t.Helper()
	req := &httppb.ProduceRequest{}
	for _, m := range msgs {
		pm := &httppb.Message{Key: m.Key, Value: m.Value, Tags: m.Tags, HashId: m.HashID}
		if m.Partition != sdk.PartitionHash {
			pm.Partition = &m.Partition
		}
		for _, h := range m.Headers {
			pm.Headers = append(pm.Headers, &httppb.Header{Key: []byte(h.Key), Value: h.Value})
		}
		req.Messages = append(req.Messages, pm)
	}
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestProduceProtobuf(t *testing.T) {
	msgs := []produce.Message{
		{Value: []byte{0, 1, 0xff, '"', '\\'}, Partition: sdk.PartitionHash},
		{Key: []byte{}, Value: []byte{}, Partition: 0, HashID: int64p(0)},
		{Key: []byte("ключ <&>"), Value: []byte("\"quoted\"\n"), Tags: "t", Partition: sdk.PartitionRandom,
			Headers: []sdk.Header{{Key: "h", Value: []byte{}}, {Key: "h", Value: []byte("2")}, {Key: "", Value: []byte{0xff}}, {Key: "\xfe", Value: []byte("x")}}},
		{Key: []byte{0xfe}, Value: []byte("v"), Partition: 7, HashID: int64p(-42)},
	}
	fp := &fakeProducer{}
	s := newTestServer(t, Options{}, fp, nil)
	status, body := doProduce(t, s, "", "application/x-protobuf", nil, string(encodeProtobuf(t, msgs)))
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	checkJSON(t, body, `{"results": [{"partition": 1, "offset": 100, "code": 0}, {"partition": 1, "offset": 101, "code": 0},
		{"partition": 1, "offset": 102, "code": 0}, {"partition": 1, "offset": 103, "code": 0}]}`)
	// Binary keys and header values arrive as sent, which JSON cannot carry
	// but in value_base64.
	if calls := fp.Calls(); len(calls) != 1 || !reflect.DeepEqual(calls[0].msgs, msgs) {
		t.Fatalf("produced %#v\nwant %#v", calls, msgs)
	}
}

func TestDecodeProtobufWireRules(t *testing.T) {
	// Fields in any order, a scalar given twice keeps its last value, and
	// a message without value has an empty one: what every protobuf
	// reader does.
	var m []byte
	m = protowire.AppendTag(m, pbPartition, protowire.VarintType)
	m = protowire.AppendVarint(m, 3)
	m = protowire.AppendTag(m, pbKey, protowire.BytesType)
	m = protowire.AppendBytes(m, []byte("first"))
	m = protowire.AppendTag(m, pbKey, protowire.BytesType)
	m = protowire.AppendBytes(m, []byte("last"))
	body := protowire.AppendTag(nil, pbMessages, protowire.BytesType)
	body = protowire.AppendBytes(body, m)
	got, err := decodeProtobuf(body, testLimits)
	if err != nil {
		t.Fatal(err)
	}
	want := []produce.Message{{Key: []byte("last"), Value: []byte{}, Partition: 3}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded %#v, want %#v", got, want)
	}
	// Keys and values alias the body but cannot be appended over it.
	got[0].Key = append(got[0].Key, 'X')
	if !bytes.Contains(body, []byte("last")) || bytes.Contains(body, []byte("lastX")) {
		t.Fatalf("an append to a key wrote over the body: %q", body)
	}
}

func TestProduceProtobufRefuses(t *testing.T) {
	const ct = "application/x-protobuf"
	msg := func(fields ...[]byte) []byte {
		body := protowire.AppendTag(nil, pbMessages, protowire.BytesType)
		return protowire.AppendBytes(body, bytes.Join(fields, nil))
	}
	bytesField := func(num protowire.Number, v string) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), []byte(v))
	}
	varintField := func(num protowire.Number, v uint64) []byte {
		return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
	}
	ok := msg(bytesField(pbValue, "v"))
	for _, tc := range []struct {
		name   string
		opts   Options
		body   []byte
		status int
		code   sdk.Code
		msg    string
	}{
		{name: "empty body", body: nil, status: 400, code: 11, msg: "request body holds no message; want a ProduceRequest with at least one of messages (application/x-protobuf)"},
		{name: "JSON sent as protobuf", body: []byte(`{"value": "v"}`), status: 400, code: 11, msg: "ProduceRequest: unknown field 15 at byte 0"},
		{name: "truncated", body: ok[:len(ok)-1], status: 400, code: 11, msg: "ProduceRequest: messages[0]: malformed protobuf at byte 0: unexpected EOF"},
		{name: "unknown top field", body: append(bytes.Clone(ok), bytesField(2, "x")...), status: 400, code: 11,
			msg: "ProduceRequest: unknown field 2 at byte 5; it has only messages (1)"},
		{name: "messages not length-delimited", body: varintField(pbMessages, 1), status: 400, code: 11,
			msg: "ProduceRequest: messages (field 1) at byte 0 has wire type 0; want 2 (length-delimited)"},
		{name: "unknown message field", body: append(bytes.Clone(ok), msg(bytesField(9, "x"))...), status: 400, code: 11,
			msg: "messages[1]: unknown field 9; a Message has key (1), value (2), headers (3), tags (4), partition (5) and hash_id (6)"},
		{name: "key as a varint", body: msg(varintField(pbKey, 1)), status: 400, code: 11, msg: "messages[0].key: wire type 0; want 2"},
		{name: "partition below -2", body: msg(varintField(pbPartition, uint64(0xfffffffffffffffd))), status: 400, code: 11,
			msg: "messages[0].partition: must be -1 (by hash), -2 (random) or a partition >= 0; got -3"},
		{name: "partition whose low 32 bits are below -2", body: msg(varintField(pbPartition, 1<<31)), status: 400, code: 11,
			msg: "messages[0].partition: must be -1 (by hash), -2 (random) or a partition >= 0; got -2147483648"},
		{name: "headers that would take more than a body", opts: Options{MaxBodyBytes: 4000},
			body: msg(bytes.Repeat(bytesField(pbHeaders, ""), 101)), status: 413, code: 16,
			msg: "the messages hold 101 headers in all, 4040 bytes once decoded, over http.max_body_bytes (4000)"},
		{name: "tags not UTF-8", body: msg(bytesField(pbTags, "\xff")), status: 400, code: 11, msg: "messages[0].tags: not valid UTF-8"},
		{name: "unknown header field", body: msg(bytesField(pbHeaders, string(bytesField(3, "x")))), status: 400, code: 11,
			msg: "messages[0].headers[0]: unknown field 3; a Header has key (1) and value (2)"},
		{name: "too many messages, counted before decoding", opts: Options{MaxBatchMessages: 2},
			body: bytes.Join([][]byte{ok, ok, msg(bytesField(9, "bad"))}, nil), status: 413, code: 16,
			msg: "3 messages exceed http.max_batch_messages (2)"},
		{name: "headers that find no room among the bodies in memory", opts: Options{MaxBodyBytes: 4100, MaxBodyBytesInFlight: 4100},
			body: msg(bytes.Repeat(bytesField(pbHeaders, ""), 101)), status: 503, code: 17,
			msg: "http.max_body_bytes_in_flight (4100 bytes)"},
		{name: "message too large", opts: Options{MaxMessageBytes: 3}, body: msg(bytesField(pbValue, "abcd")), status: 413, code: 16,
			msg: "message 0 is 4 bytes, over http.max_message_bytes (3)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fp := &fakeProducer{}
			s := newTestServer(t, tc.opts, fp, nil)
			status, body := doProduce(t, s, "", ct, nil, string(tc.body))
			checkError(t, status, body, tc.status, tc.code, tc.msg)
			if calls := fp.Calls(); len(calls) != 0 {
				t.Errorf("bad input reached the producer: %+v", calls)
			}
		})
	}
}

// FuzzDecodeProtobuf checks the decoder against the protobuf module's own
// reader: whatever it accepts, proto.Unmarshal reads as the same messages,
// and what it refuses is refused with a code and a message.
func FuzzDecodeProtobuf(f *testing.F) {
	f.Add(encodeProtobuf(f, []produce.Message{
		{Key: []byte("k"), Value: []byte("v"), Tags: "t", Partition: 2, HashID: int64p(-1),
			Headers: []sdk.Header{{Key: "a", Value: []byte("1")}}},
		{Value: []byte{}, Partition: sdk.PartitionRandom},
	}))
	f.Add([]byte{0x0a, 0x00})
	f.Add([]byte(`{"value": "v"}`))
	f.Add([]byte{0x0a, 0x02, 0x28, 0x7d})
	f.Fuzz(func(t *testing.T, body []byte) {
		msgs, err := decodeProtobuf(body, testLimits)
		if err != nil {
			var e *sdk.Error
			if !errors.As(err, &e) || (e.Code != sdk.CodeIllegal && e.Code != sdk.CodeTooLarge) || e.Msg == "" {
				t.Fatalf("error %#v is not an *sdk.Error with code 11 or 16 and a message", err)
			}
			return
		}
		var req httppb.ProduceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			t.Fatalf("decoded %d messages from a body proto.Unmarshal refuses: %v", len(msgs), err)
		}
		if len(req.ProtoReflect().GetUnknown()) != 0 || len(req.Messages) != len(msgs) {
			t.Fatalf("decoded %d messages, proto.Unmarshal %d (unknown fields %x)", len(msgs), len(req.Messages), req.ProtoReflect().GetUnknown())
		}
		for i, pm := range req.Messages {
			m := msgs[i]
			want := produce.Message{Key: pm.Key, Value: nonNil(pm.Value), Tags: pm.Tags, HashID: pm.HashId, Partition: pm.GetPartition()}
			if pm.Partition == nil {
				want.Partition = sdk.PartitionHash
			}
			if pm.Key != nil {
				want.Key = nonNil(pm.Key)
			}
			for _, h := range pm.Headers {
				want.Headers = append(want.Headers, sdk.Header{Key: string(h.Key), Value: nonNil(h.Value)})
			}
			if m.Partition < sdk.PartitionRandom || !reflect.DeepEqual(m, want) {
				t.Fatalf("message %d: decoded %#v, proto.Unmarshal %#v", i, m, want)
			}
		}
	})
}

func BenchmarkDecodeProtobuf(b *testing.B) {
	value := []byte(strings.Repeat("abcdefghijklmnopqrstuvwxyz012345", 32))
	var msgs []produce.Message
	for i := range 100 {
		msgs = append(msgs, produce.Message{Key: []byte("key-" + string(rune('a'+i%26))), Value: value, Partition: sdk.PartitionHash})
	}
	body := encodeProtobuf(b, msgs)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := decodeProtobuf(body, testLimits); err != nil {
			b.Fatal(err)
		}
	}
}
