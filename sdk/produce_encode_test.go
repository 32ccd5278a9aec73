package sdk

import (
	"bytes"
	"math"
	"testing"
	"time"

	pb "github.com/mqgate/mqgate/sdk/proto"
)

// generatedBatch is what vtprotobuf writes for the batch recordBatch
// writes: the records converted, then marshalled.
func generatedBatch(t testing.TB, id uint64, records []Record, timeoutMs int64) []byte {
	t.Helper()
	b, err := (&pb.ProduceBatch{Id: id, Records: recordsToPB(records), TimeoutMs: timeoutMs}).MarshalVT()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func marshalRecordBatch(t testing.TB, id uint64, records []Record, timeoutMs int64) []byte {
	t.Helper()
	b := &recordBatch{id: id, records: records, timeoutMs: timeoutMs}
	buf := make([]byte, b.SizeVT())
	n, err := b.MarshalToSizedBufferVT(buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n]
}

// A batch marshalled straight from records is, byte for byte, what the
// generated code writes for the same records converted: keys absent,
// empty and set, headers, negative partitions, timestamps, and empty
// batches.
func TestRecordBatchAsGenerated(t *testing.T) {
	at := time.UnixMilli(1_700_000_000_123)
	batches := map[string][]Record{
		"no records": nil,
		"a value":    {{Topic: "t", Partition: PartitionHash, Value: []byte("v")}},
		"every field": {{
			Topic: "orders", Qid: "3", Partition: 7, Hash: math.MaxUint64, Offset: -5,
			Key: []byte("k"), Value: bytes.Repeat([]byte{0xff}, 300),
			Headers: []Header{{Key: "a", Value: []byte("b")}, {}, {Key: "only-key"}, {Value: []byte("only-value")}},
			Tags:    "tag", Timestamp: at,
		}},
		"an empty key, an empty value": {{Topic: "t", Key: []byte{}, Value: []byte{}, Partition: PartitionRandom}},
		"the epoch, and before":        {{Topic: "t", Timestamp: time.UnixMilli(0)}, {Topic: "t", Timestamp: time.UnixMilli(-1)}},
		"many": func() []Record {
			var rs []Record
			for i := range 200 {
				rs = append(rs, Record{Topic: "t", Key: []byte{byte(i)}, Value: bytes.Repeat([]byte{byte(i)}, i)})
			}
			return rs
		}(),
	}
	for name, records := range batches {
		for _, h := range []struct {
			id        uint64
			timeoutMs int64
		}{{0, 0}, {1, 30000}, {math.MaxUint64, math.MaxInt64}} {
			got := marshalRecordBatch(t, h.id, records, h.timeoutMs)
			if want := generatedBatch(t, h.id, records, h.timeoutMs); !bytes.Equal(got, want) {
				t.Errorf("%s, id %d, timeout %d:\n got %x\nwant %x", name, h.id, h.timeoutMs, got, want)
			}
		}
	}
}

// A buffer of another size than SizeVT's is refused, not overrun.
func TestRecordBatchWrongBuffer(t *testing.T) {
	b := &recordBatch{id: 1, records: []Record{{Topic: "t", Value: []byte("v")}}}
	buf := make([]byte, b.SizeVT()-1, 100)
	if _, err := b.MarshalToSizedBufferVT(buf); err == nil {
		t.Fatal("marshalled into a buffer one byte short")
	}
}

func FuzzRecordBatch(f *testing.F) {
	f.Add("orders", "1", int32(-1), uint64(7), int64(3), true, []byte("k"), []byte("value"), "h", []byte("hv"), "tags", int64(1_700_000_000_000), uint64(9), int64(1000))
	f.Add("", "", int32(0), uint64(0), int64(0), false, []byte(nil), []byte(nil), "", []byte(nil), "", int64(0), uint64(0), int64(0))
	f.Fuzz(func(t *testing.T, topic, qid string, partition int32, hash uint64, offset int64, hasKey bool, key, value []byte,
		hkey string, hvalue []byte, tags string, ms int64, id uint64, timeoutMs int64) {
		r := Record{Topic: topic, Qid: qid, Partition: partition, Hash: hash, Offset: offset, Value: value, Tags: tags}
		if hasKey {
			r.Key = append([]byte{}, key...)
		}
		if hkey != "" || len(hvalue) > 0 {
			r.Headers = []Header{{Key: hkey, Value: hvalue}, {}}
		}
		if ms != 0 {
			r.Timestamp = time.UnixMilli(ms)
		}
		records := []Record{r, {Topic: topic}, r}
		if got, want := marshalRecordBatch(t, id, records, timeoutMs), generatedBatch(t, id, records, timeoutMs); !bytes.Equal(got, want) {
			t.Fatalf("got %x\nwant %x", got, want)
		}
	})
}
