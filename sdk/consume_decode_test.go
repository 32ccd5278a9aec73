package sdk

import (
	"bytes"
	"reflect"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	pb "github.com/mqgate/mqgate/sdk/proto"
)

// consumeSeeds are ConsumeResponse batches to start from: small, so the
// fuzzer explores rather than minimizes.
func consumeSeeds(t testing.TB) [][]byte {
	var out [][]byte
	for _, recs := range [][]*pb.Record{
		{
			{Topic: "orders", Qid: "2", Partition: 2, Offset: 41, HasKey: true, Key: []byte("k"), Value: []byte("v"),
				Headers: []*pb.Header{{Key: "trace", Value: []byte("0a")}, {Key: "empty", Value: []byte{}}}, Tags: "a", TimestampMs: 1700000000000},
			{Topic: "orders", Qid: "2", Partition: 2, Offset: 42, Value: []byte("w")},
			{Topic: "orders", Qid: "3", Partition: 3, Offset: 7, HasKey: true, Value: []byte{}},
		},
		{{Topic: "t", Partition: -1, Hash: 1<<64 - 1, Offset: -5}},
		{},
	} {
		b, err := proto.Marshal(&pb.ConsumeResponse{Kind: &pb.ConsumeResponse_Batch_{Batch: &pb.ConsumeResponse_Batch{Records: recs}}})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// TestDecodeBatchReadsWhatTheGeneratedCodeReads: a batch decoded straight
// into records is what decoding it as a message and converting gives.
func TestDecodeBatchReadsWhatTheGeneratedCodeReads(t *testing.T) {
	for _, in := range consumeSeeds(t) {
		checkDecodeBatch(t, in)
	}
}

// TestDecodeBatchRefusesMalformedInput: truncated messages, a known field
// of the wrong wire type and a bad varint are errors, as in the generated
// code; unknown fields are skipped.
func TestDecodeBatchRefusesMalformedInput(t *testing.T) {
	whole := consumeSeeds(t)[0]
	batch, ok := batchOf(whole)
	if !ok {
		t.Fatal("the seed holds no batch")
	}
	wrap := func(b []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, fieldResponseBatch, protowire.BytesType), b)
	}
	for cut := 1; cut < len(batch); cut++ {
		// A cut between two records is a shorter batch; any other is an
		// error: as the generated code reads it, either way.
		checkDecodeBatch(t, wrap(bytes.Clone(batch[:cut])))
	}
	rec := func(fields ...[]byte) []byte {
		r := bytes.Join(fields, nil)
		return protowire.AppendBytes(protowire.AppendTag(nil, fieldBatchRecords, protowire.BytesType), r)
	}
	for name, in := range map[string][]byte{
		"topic as a varint":     rec(protowire.AppendVarint(protowire.AppendTag(nil, fieldRecordTopic, protowire.VarintType), 1)),
		"offset as bytes":       rec(protowire.AppendBytes(protowire.AppendTag(nil, fieldRecordOffset, protowire.BytesType), []byte("x"))),
		"records as a varint":   protowire.AppendVarint(protowire.AppendTag(nil, fieldBatchRecords, protowire.VarintType), 1),
		"a varint of 11 bytes":  rec(append(protowire.AppendTag(nil, fieldRecordOffset, protowire.VarintType), bytes.Repeat([]byte{0xff}, 11)...)),
		"a header key as fixed": rec(protowire.AppendBytes(protowire.AppendTag(nil, fieldRecordHeaders, protowire.BytesType), protowire.AppendFixed32(protowire.AppendTag(nil, fieldHeaderKey, protowire.Fixed32Type), 1))),
		"field number 0":        rec([]byte{0x00, 0x01}),
	} {
		if _, err := decodeBatch(in); err == nil {
			t.Errorf("%s: decoded", name)
		}
		checkDecodeBatch(t, wrap(in))
	}
	unknown := rec(protowire.AppendFixed64(protowire.AppendTag(nil, 99, protowire.Fixed64Type), 1),
		protowire.AppendBytes(protowire.AppendTag(nil, fieldRecordValue, protowire.BytesType), []byte("v")))
	recs, err := decodeBatch(unknown)
	if err != nil || len(recs) != 1 || string(recs[0].Value) != "v" {
		t.Fatalf("a record with an unknown field: %v, %v", recs, err)
	}
}

// FuzzDecodeBatch holds the gateway's decoding of a consumed batch from
// the plugin connection to the generated code's: the same records, or an
// error for both; and what it decodes shares no bytes with its input.
func FuzzDecodeBatch(f *testing.F) {
	for _, in := range consumeSeeds(f) {
		f.Add(in)
	}
	f.Fuzz(checkDecodeBatch)
}

// checkDecodeBatch checks the decoding of in, a ConsumeResponse, against
// UnmarshalVT and recordsFromPB.
func checkDecodeBatch(t *testing.T, in []byte) {
	t.Helper()
	in = bytes.Clone(in) // flipped below; the fuzzer's input must stay as it is
	want := &pb.ConsumeResponse{}
	errWant := want.UnmarshalVT(in)
	batch, ok := batchOf(in)
	if !ok {
		return // not a lone batch: the generated code decodes it
	}
	got, errGot := decodeBatch(batch)
	if (errGot == nil) != (errWant == nil) {
		t.Fatalf("decoding straight: %v; the generated code: %v", errGot, errWant)
	}
	if errGot != nil {
		return
	}
	wantRecs := recordsFromPB(want.GetBatch().GetRecords())
	if len(got) != len(wantRecs) || (len(got) > 0 && !reflect.DeepEqual(got, wantRecs)) {
		t.Fatalf("decoded %+v, want %+v", got, wantRecs)
	}
	for i := range in {
		in[i] ^= 0xff
	}
	if len(got) > 0 && !reflect.DeepEqual(got, wantRecs) {
		t.Fatal("what was decoded changed with its input: it shares bytes with it")
	}
}
