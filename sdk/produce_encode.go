package sdk

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// recordBatch is a ProduceBatch of plugin.proto marshalled straight from
// the gateway's records, the bytes vtprotobuf writes for the same batch
// converted (recordsToPB): a batch of 100 went through a hundred protocol
// records made, cleared and collected for the one marshalling, and each
// record's size was worked out three times. TestRecordBatchAsGenerated
// and FuzzRecordBatch hold it to the generated code.
type recordBatch struct {
	id        uint64
	records   []Record
	timeoutMs int64
	// sizes holds each record's encoded size once SizeVT has run: the
	// records must not change after.
	sizes []int
}

// Field numbers of plugin.proto's ProduceBatch, Record and Header, as
// recordBatch writes them (fieldProduceBatch* in produce_decode.go,
// fieldRecord* and fieldHeader* in consume_decode.go).

func (b *recordBatch) SizeVT() int {
	if len(b.sizes) != len(b.records) {
		b.sizes = make([]int, len(b.records))
		for i := range b.records {
			b.sizes[i] = recordSize(&b.records[i])
		}
	}
	n := 0
	if b.id != 0 {
		n += 1 + protowire.SizeVarint(b.id)
	}
	for _, s := range b.sizes {
		n += 1 + protowire.SizeBytes(s)
	}
	if b.timeoutMs != 0 {
		n += 1 + protowire.SizeVarint(uint64(b.timeoutMs))
	}
	return n
}

// MarshalToSizedBufferVT writes the batch to buf, which must be of
// SizeVT's length exactly, as vtprotobuf's MarshalToSizedBufferVT does
// (that one writes from the end of a longer buffer too; marshalFrame, the
// one caller, gives the exact length).
func (b *recordBatch) MarshalToSizedBufferVT(buf []byte) (int, error) {
	size := b.SizeVT()
	if len(buf) != size {
		return 0, fmt.Errorf("proto: buffer of %d bytes for a message of %d", len(buf), size)
	}
	out := buf[:0:size] // a longer message than sized grows a copy
	if b.id != 0 {
		out = protowire.AppendTag(out, fieldProduceBatchID, protowire.VarintType)
		out = protowire.AppendVarint(out, b.id)
	}
	for i := range b.records {
		out = protowire.AppendTag(out, fieldProduceBatchRecords, protowire.BytesType)
		out = protowire.AppendVarint(out, uint64(b.sizes[i]))
		out = appendRecord(out, &b.records[i])
	}
	if b.timeoutMs != 0 {
		out = protowire.AppendTag(out, fieldProduceBatchTimeoutMs, protowire.VarintType)
		out = protowire.AppendVarint(out, uint64(b.timeoutMs))
	}
	if len(out) != size {
		return 0, fmt.Errorf("proto: message of %d bytes marshalled to %d (changed concurrently?)", size, len(out))
	}
	return size, nil
}

// timestampMs is r's timestamp as fillPB carries it: 0 for none.
func timestampMs(r *Record) int64 {
	if r.Timestamp.IsZero() {
		return 0
	}
	return r.Timestamp.UnixMilli()
}

// recordSize is the encoded size of r as a Record of plugin.proto.
func recordSize(r *Record) int {
	n := 0
	str := func(l int) {
		if l > 0 {
			n += 1 + protowire.SizeBytes(l)
		}
	}
	varint := func(v uint64) {
		if v != 0 {
			n += 1 + protowire.SizeVarint(v)
		}
	}
	str(len(r.Topic))
	str(len(r.Qid))
	varint(uint64(r.Partition))
	varint(r.Hash)
	varint(uint64(r.Offset))
	if r.Key != nil {
		n += 2 // has_key
	}
	str(len(r.Key))
	str(len(r.Value))
	for _, h := range r.Headers {
		n += 1 + protowire.SizeBytes(headerSize(h))
	}
	str(len(r.Tags))
	if ms := timestampMs(r); ms != 0 {
		n += 1 + protowire.SizeVarint(uint64(ms))
	}
	return n
}

func headerSize(h Header) int {
	n := 0
	if len(h.Key) > 0 {
		n += 1 + protowire.SizeBytes(len(h.Key))
	}
	if len(h.Value) > 0 {
		n += 1 + protowire.SizeBytes(len(h.Value))
	}
	return n
}

// appendRecord appends r as a Record of plugin.proto, its fields in
// number order, those of zero value left out, as proto3 and vtprotobuf
// write them.
func appendRecord(b []byte, r *Record) []byte {
	b = appendString(b, fieldRecordTopic, r.Topic)
	b = appendString(b, fieldRecordQid, r.Qid)
	b = appendVarint(b, fieldRecordPartition, uint64(r.Partition))
	b = appendVarint(b, fieldRecordHash, r.Hash)
	b = appendVarint(b, fieldRecordOffset, uint64(r.Offset))
	if r.Key != nil {
		b = appendVarint(b, fieldRecordHasKey, 1)
	}
	b = appendBytes(b, fieldRecordKey, r.Key)
	b = appendBytes(b, fieldRecordValue, r.Value)
	for _, h := range r.Headers {
		b = protowire.AppendTag(b, fieldRecordHeaders, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(headerSize(h)))
		b = appendString(b, fieldHeaderKey, h.Key)
		b = appendBytes(b, fieldHeaderValue, h.Value)
	}
	b = appendString(b, fieldRecordTags, r.Tags)
	return appendVarint(b, fieldRecordTimestampMs, uint64(timestampMs(r)))
}

func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendBytes(b []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}
