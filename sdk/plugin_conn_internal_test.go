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
// connection to what the generated code reads, copying every field out:
// the same batch, or an error for both. The records' bytes are the batch
// buffer's, with no room past their ends, and their strings are copies.
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
		// Into the pool's buffers (for a ProduceReleaser) or one of its
		// own: alternately, by the input's length.
		got, errGot := readBatch(bufio.NewReader(bytes.NewReader(in)), len(in), len(in)%2 == 0)
		want := &pb.ProduceBatch{}
		errWant := want.UnmarshalVT(in)
		if (errGot == nil) != (errWant == nil) {
			t.Fatalf("reading the batch: %v; copying it out: %v", errGot, errWant)
		}
		if errGot != nil {
			return
		}
		wantRecs := recordsFromPB(want.Records)
		if got.id != want.Id || got.timeoutMs != want.TimeoutMs || len(got.records) != len(wantRecs) ||
			(len(wantRecs) > 0 && !reflect.DeepEqual(got.records, wantRecs)) {
			t.Fatalf("read %+v, want %v", got, want)
		}
		for i, r := range got.records {
			// Not even into a pooled buffer's room past the batch.
			for _, b := range append([][]byte{r.Key, r.Value}, headerValues(r)...) {
				if cap(b) != len(b) {
					t.Fatalf("record %d: bytes with room past their end (%d of %d)", i, len(b), cap(b))
				}
			}
		}
		if got.buf != nil {
			// Back to the pool, for later inputs to be read into a
			// buffer that held an earlier one, as a plugin's are.
			pool.Put(got.buf)
		}

		// Decoded from a buffer of its own, as readBatch does: the bytes
		// are the buffer's, with no room past their ends; the strings are
		// copies.
		buf := bytes.Clone(in) // flipped below; the fuzzer's input must stay as it is
		got, err := decodeProduceBatch(buf)
		if err != nil {
			t.Fatal(err)
		}
		for i := range buf {
			buf[i] ^= 0xff
		}
		shared := func(what string, b, want []byte) {
			if len(b) > 0 && bytes.Equal(b, want) {
				t.Fatalf("%s is a copy, not the batch's buffer", what)
			}
			if cap(b) != len(b) {
				t.Fatalf("%s has room past its end (%d of %d)", what, len(b), cap(b))
			}
		}
		for i, r := range got.records {
			w := wantRecs[i]
			if r.Topic != w.Topic || r.Qid != w.Qid || r.Tags != w.Tags {
				t.Fatalf("record %d's strings changed with the batch's buffer: %+v, want %+v", i, r, w)
			}
			shared("a key", r.Key, w.Key)
			shared("a value", r.Value, w.Value)
			for j, h := range r.Headers {
				if h.Key != w.Headers[j].Key {
					t.Fatalf("record %d's header key changed with the batch's buffer", i)
				}
				shared("a header value", h.Value, w.Headers[j].Value)
			}
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
	for _, pooled := range []bool{false, true} {
		batch, err := readBatch(bufio.NewReader(bytes.NewReader(in)), len(in), pooled)
		if err != nil {
			t.Fatal(err)
		}
		r0, r1 := batch.records[0], batch.records[1]
		_ = append(r0.Value, "XXXXXXXXXXXX"...)
		_ = append(r0.Key, "XXXXXXXXXXXX"...)
		_ = append(r0.Headers[0].Value, "XXXXXXXXXXXX"...)
		if string(r1.Key) != "k1" || string(r1.Value) != "BBBB" {
			t.Fatalf("pooled %t: after appends to record 0, record 1 is key %q value %q", pooled, r1.Key, r1.Value)
		}
		// The last record's value ends where the batch does, not at the
		// end of a pooled buffer's room.
		if cap(r1.Value) != len(r1.Value) {
			t.Fatalf("pooled %t: the last value has room past its end (%d of %d)", pooled, len(r1.Value), cap(r1.Value))
		}
	}
}

// headerValues are r's header values.
func headerValues(r Record) [][]byte {
	var vs [][]byte
	for _, h := range r.Headers {
		vs = append(vs, h.Value)
	}
	return vs
}
