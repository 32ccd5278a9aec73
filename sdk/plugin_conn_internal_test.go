package sdk

import (
	"bufio"
	"bytes"
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/mqgate/mqgate/sdk/proto"
)

// FuzzReadBatch holds a plugin's reading of a produce batch from its
// connection (records whose bytes alias one buffer) to what the generated
// code reads, copying every field out: the same batch, or an error for
// both.
func FuzzReadBatch(f *testing.F) {
	// Small seeds: the fuzzer minimizes every input it finds interesting,
	// which for kilobytes of values takes it minutes.
	for _, m := range []proto.Message{
		&pb.ProduceBatch{Id: 7, TimeoutMs: 1000, Records: []*pb.Record{
			{Topic: "orders", Partition: -1, Hash: 3, HasKey: true, Key: []byte("k"), Value: []byte("v"), Headers: []*pb.Header{{Key: "trace", Value: []byte("0a")}}},
			{Topic: "orders", Qid: "2", Value: []byte("w"), TimestampMs: 1},
		}},
		&pb.ProduceBatch{Id: 1, Records: []*pb.Record{{Topic: "t", HasKey: true, Key: []byte{}, Value: nil, Tags: "a"}}},
	} {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		in = bytes.Clone(in) // flipped below; the fuzzer's input must stay as it is
		got, errGot := readBatch(bufio.NewReader(bytes.NewReader(in)), len(in))
		want := &pb.ProduceBatch{}
		errWant := want.UnmarshalVT(in)
		if (errGot == nil) != (errWant == nil) {
			t.Fatalf("reading the batch: %v; copying it out: %v", errGot, errWant)
		}
		if errGot != nil {
			return
		}
		wantRecs := recordsFromPB(want.Records)
		same := func() bool {
			return got.id == want.Id && got.timeoutMs == want.TimeoutMs && len(got.records) == len(wantRecs) &&
				(len(wantRecs) == 0 || reflect.DeepEqual(got.records, wantRecs))
		}
		if !same() {
			t.Fatalf("read %+v, want %v", got, want)
		}
		// What was read shares no bytes with the caller's input.
		for i := range in {
			in[i] ^= 0xff
		}
		if !same() {
			t.Fatal("the batch changed when the input it was read from did")
		}
	})
}

// A plugin that appends to a record's key or value, as Go code does, must
// not write over the next record, which shares the batch's buffer.
func TestReadBatchValuesHaveNoRoomPastTheirEnd(t *testing.T) {
	in, err := proto.Marshal(&pb.ProduceBatch{Records: []*pb.Record{
		{Topic: "t", HasKey: true, Key: []byte("k0"), Value: []byte("AAAA"), Headers: []*pb.Header{{Key: "h", Value: []byte("x")}}},
		{Topic: "t", HasKey: true, Key: []byte("k1"), Value: []byte("BBBB")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := readBatch(bufio.NewReader(bytes.NewReader(in)), len(in))
	if err != nil {
		t.Fatal(err)
	}
	r0 := batch.records[0]
	_ = append(r0.Value, "XXXXXXXXXXXX"...)
	_ = append(r0.Key, "XXXXXXXXXXXX"...)
	_ = append(r0.Headers[0].Value, "XXXXXXXXXXXX"...)
	if r1 := batch.records[1]; string(r1.Key) != "k1" || string(r1.Value) != "BBBB" {
		t.Fatalf("after appends to record 0, record 1 is key %q value %q", r1.Key, r1.Value)
	}
}
