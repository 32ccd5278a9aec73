package sdk

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/mqgate/mqgate/internal/pbwire"
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
	n := pbwire.BytesSize(len(r.Topic)) + pbwire.BytesSize(len(r.Qid)) +
		pbwire.VarintSize(uint64(r.Partition)) + pbwire.VarintSize(r.Hash) + pbwire.VarintSize(uint64(r.Offset))
	if r.Key != nil {
		n += 2 // has_key
	}
	n += pbwire.BytesSize(len(r.Key)) + pbwire.BytesSize(len(r.Value))
	for _, h := range r.Headers {
		n += 1 + protowire.SizeBytes(headerSize(h))
	}
	return n + pbwire.BytesSize(len(r.Tags)) + pbwire.VarintSize(uint64(timestampMs(r)))
}

func headerSize(h Header) int {
	return pbwire.BytesSize(len(h.Key)) + pbwire.BytesSize(len(h.Value))
}

// appendRecord appends r as a Record of plugin.proto, its fields in
// number order, those of zero value left out, as proto3 and vtprotobuf
// write them.
func appendRecord(b []byte, r *Record) []byte {
	b = pbwire.AppendString(b, fieldRecordTopic, r.Topic)
	b = pbwire.AppendString(b, fieldRecordQid, r.Qid)
	b = pbwire.AppendVarint(b, fieldRecordPartition, uint64(r.Partition))
	b = pbwire.AppendVarint(b, fieldRecordHash, r.Hash)
	b = pbwire.AppendVarint(b, fieldRecordOffset, uint64(r.Offset))
	if r.Key != nil {
		b = pbwire.AppendVarint(b, fieldRecordHasKey, 1)
	}
	b = pbwire.AppendBytes(b, fieldRecordKey, r.Key)
	b = pbwire.AppendBytes(b, fieldRecordValue, r.Value)
	for _, h := range r.Headers {
		b = protowire.AppendTag(b, fieldRecordHeaders, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(headerSize(h)))
		b = pbwire.AppendString(b, fieldHeaderKey, h.Key)
		b = pbwire.AppendBytes(b, fieldHeaderValue, h.Value)
	}
	b = pbwire.AppendString(b, fieldRecordTags, r.Tags)
	return pbwire.AppendVarint(b, fieldRecordTimestampMs, uint64(timestampMs(r)))
}
