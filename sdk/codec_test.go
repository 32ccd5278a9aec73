package sdk

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	pb "github.com/mqgate/mqgate/sdk/proto"
)

func sampleProduce(n int) *pb.ProduceRequest { return sampleProduceOf(n, 1024) }

// sampleProduceOf is n records with values of size bytes.
func sampleProduceOf(n, size int) *pb.ProduceRequest {
	rs := make([]Record, n)
	for i := range rs {
		rs[i] = Record{Topic: "orders", Partition: -1, Hash: uint64(i), Key: []byte(fmt.Sprintf("key-%d", i)),
			Value: bytes.Repeat([]byte{'v'}, size), Headers: []Header{{Key: "trace", Value: []byte("0af7651916cd43dd")}}}
	}
	return &pb.ProduceRequest{Records: recordsToPB(rs)}
}

// TestCodecWritesWhatProtoWrites: the codec's bytes are gRPC's proto
// codec's, both ways, so ends built with either interoperate.
func TestCodecWritesWhatProtoWrites(t *testing.T) {
	plain := encoding.GetCodecV2("proto")
	for _, msg := range []proto.Message{
		sampleProduce(3),
		&pb.ProduceRequest{},
		&pb.EnsureTopicsRequest{Topics: []*pb.TopicSpec{{Name: "t", Partitions: 4, Configs: map[string]string{"retention.ms": "1000"}}}},
		&pb.ConsumeResponse{Kind: &pb.ConsumeResponse_CommitResult_{CommitResult: &pb.ConsumeResponse_CommitResult{Id: 7, Error: &pb.Error{Code: 17, Message: "down", Lasting: true}}}},
		sampleProduce(200), // above the pooling threshold
	} {
		ours, err := theCodec.Marshal(msg)
		if err != nil {
			t.Fatal(err)
		}
		theirs, err := plain.Marshal(msg)
		if err != nil {
			t.Fatal(err)
		}
		// Map fields are written in no fixed order by either; compare
		// what each end reads back instead of bytes.
		back := msg.ProtoReflect().New().Interface()
		if err := plain.Unmarshal(ours, back); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(back, msg) {
			t.Errorf("%T: proto reads back something else from the codec's bytes", msg)
		}
		back = msg.ProtoReflect().New().Interface()
		if err := theCodec.Unmarshal(theirs, back); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(back, msg) {
			t.Errorf("%T: the codec reads back something else from proto's bytes", msg)
		}
		ours.Free()
		theirs.Free()
	}
}

func TestCodecRefusesMalformedInput(t *testing.T) {
	for _, in := range [][]byte{{0x0a, 0x05, 0x01}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, {0x0a}} {
		var msg pb.ProduceRequest
		if err := theCodec.Unmarshal(memOf(in), &msg); err == nil {
			t.Errorf("%x: read without an error", in)
		}
	}
}

// BenchmarkCodec is one ProduceRequest of 100 records of 1 KiB through
// Marshal and Unmarshal, by the codec and by gRPC's proto codec.
func BenchmarkCodec(b *testing.B) {
	msg := sampleProduce(100)
	for _, c := range []encoding.CodecV2{encoding.GetCodecV2("proto"), theCodec} {
		b.Run(fmt.Sprintf("%T", c), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				data, err := c.Marshal(msg)
				if err != nil {
					b.Fatal(err)
				}
				var back pb.ProduceRequest
				if err := c.Unmarshal(data, &back); err != nil {
					b.Fatal(err)
				}
				data.Free()
			}
		})
	}
}

func memOf(b []byte) mem.BufferSlice { return mem.BufferSlice{mem.SliceBuffer(b)} }

// FuzzCodec holds the generated decoder to gRPC's proto codec: the same
// input is refused by both or read to equal messages, unknown fields (which
// neither end reads) left out. The differences allowed are none a
// conforming peer writes: a field of a known number with another wire type
// is refused by the codec where proto keeps it as an unknown field; a
// string that is not UTF-8 is read by the codec where proto refuses it;
// and malformed unknown fields (an unmatched group, a field number out of
// range) are skipped by the codec where proto refuses the message, as long
// as what the codec read is a valid message.
func FuzzCodec(f *testing.F) {
	// Small seeds: with 1 KiB values the fuzzer spends its time
	// minimizing them.
	for _, m := range []proto.Message{sampleProduceOf(2, 8), &pb.ConsumeResponse{Kind: &pb.ConsumeResponse_PollError{PollError: &pb.Error{Code: 17}}}} {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	plain := encoding.GetCodecV2("proto")
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, newMsg := range []func() proto.Message{
			func() proto.Message { return new(pb.ProduceRequest) },
			func() proto.Message { return new(pb.ConsumeResponse) },
			func() proto.Message { return new(pb.EnsureTopicsRequest) },
		} {
			ours, theirs := newMsg(), newMsg()
			errOurs := theCodec.Unmarshal(memOf(in), ours)
			errTheirs := plain.Unmarshal(memOf(in), theirs)
			if errOurs != nil && errTheirs == nil && strings.Contains(errOurs.Error(), "wrong wireType") {
				continue
			}
			if errOurs == nil && errTheirs != nil && strings.Contains(errTheirs.Error(), "UTF-8") {
				continue // the codec does not check strings for UTF-8
			}
			if errOurs == nil && errTheirs != nil {
				// The codec skips malformed unknown fields (an unmatched
				// group, a field number out of range) that proto refuses:
				// what it read must still be a whole, valid message.
				dropUnknown(ours.ProtoReflect())
				b, err := proto.Marshal(ours)
				back := newMsg()
				if err == nil {
					err = proto.Unmarshal(b, back)
				}
				if err != nil || !proto.Equal(back, ours) {
					t.Fatalf("%T: the codec read %v where proto refused the input (%v), and that is not a valid message: %v", ours, ours, errTheirs, err)
				}
				continue
			}
			if (errOurs == nil) != (errTheirs == nil) {
				t.Fatalf("%T: codec error %v, proto error %v", ours, errOurs, errTheirs)
			}
			// Unknown fields are compared as what they say, not as bytes:
			// the codec keeps a tag written in an overlong varint as
			// written, proto writes it anew.
			dropUnknown(ours.ProtoReflect())
			dropUnknown(theirs.ProtoReflect())
			if errOurs == nil && !proto.Equal(ours, theirs) {
				t.Fatalf("%T: codec read %v, proto read %v", ours, ours, theirs)
			}
		}
	})
}

// A string that is not UTF-8 (a Thrift client's tags may be any bytes)
// crosses the codec both ways as it is.
func TestCodecPassesStringsThatAreNotUTF8(t *testing.T) {
	msg := &pb.ProduceRequest{Records: []*pb.Record{{Topic: "t", Tags: "tag\xff"}}}
	data, err := theCodec.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	var back pb.ProduceRequest
	if err := theCodec.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if back.Records[0].Tags != "tag\xff" {
		t.Errorf("tags read back as %q", back.Records[0].Tags)
	}
}

// dropUnknown clears the unknown fields of m and of every message in it.
func dropUnknown(m protoreflect.Message) {
	m.SetUnknown(nil)
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := range v.List().Len() {
				dropUnknown(v.List().Get(i).Message())
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				dropUnknown(mv.Message())
				return true
			})
		case fd.Message() != nil && !fd.IsMap():
			dropUnknown(v.Message())
		}
		return true
	})
}
