package httpapi

import (
	"strconv"

	"github.com/mqgate/mqgate/core/consume"
)

// messageSchema is the Avro schema of the records the batch-id routes
// answer with format=avro, served at GET /v1/schemas/message.avsc.
// appendMessageAvro writes its fields in this order.
const messageSchema = `{
  "type": "record",
  "name": "Message",
  "namespace": "mqgate",
  "fields": [
    {"name": "topic", "type": "string"},
    {"name": "qid", "type": "string"},
    {"name": "offset", "type": "long"},
    {"name": "key", "type": ["null", "bytes"]},
    {"name": "value", "type": "bytes"},
    {"name": "tags", "type": "string"},
    {"name": "timestamp_ms", "type": "long"},
    {"name": "headers", "type": {"type": "map", "values": "bytes"}}
  ]
}
`

// appendMessageAvro appends m as one Avro binary record of messageSchema:
// topic (m.Topic, or topic when m has none), qid, offset, key (null when
// m has none), value, tags, timestamp_ms (0 for none) and headers (in
// record order; a repeated name is written twice, and Avro readers keep
// the last).
func appendMessageAvro(b []byte, topic string, m *consume.Message) []byte {
	if m.Topic != "" {
		topic = m.Topic
	}
	b = appendAvroString(b, topic)
	b = appendAvroString(b, m.Qid)
	b = appendAvroLong(b, m.Offset)
	if m.Key == nil {
		b = appendAvroLong(b, 0) // union branch 0: null
	} else {
		b = appendAvroLong(b, 1) // union branch 1: bytes
		b = appendAvroBytes(b, m.Key)
	}
	b = appendAvroBytes(b, m.Value)
	b = appendAvroString(b, m.Tags)
	b = appendAvroLong(b, unixMs(m.Timestamp))
	if n := len(m.Headers); n > 0 {
		// One block of n entries, then the empty block that ends a map.
		b = appendAvroLong(b, int64(n))
		for _, h := range m.Headers {
			b = appendAvroString(b, h.Key)
			b = appendAvroBytes(b, h.Value)
		}
	}
	return appendAvroLong(b, 0)
}

// appendAvroLong appends v as Avro's long (and int): zig-zag, then a
// little-endian base-128 varint.
func appendAvroLong(b []byte, v int64) []byte {
	u := uint64(v<<1) ^ uint64(v>>63)
	for u >= 0x80 {
		b = append(b, byte(u)|0x80)
		u >>= 7
	}
	return append(b, byte(u))
}

// appendAvroBytes appends p as Avro's bytes: its length as a long, then
// the bytes.
func appendAvroBytes(b, p []byte) []byte {
	return append(appendAvroLong(b, int64(len(p))), p...)
}

// appendAvroString appends s as Avro's string, which is encoded as bytes.
func appendAvroString(b []byte, s string) []byte {
	return append(appendAvroLong(b, int64(len(s))), s...)
}

// avroRecords marshals to JSON as an array of byte arrays, each an array
// of numbers 0-255, as seed 004's "data" is (encoding/json would write
// base64 strings).
type avroRecords [][]byte

func (r avroRecords) MarshalJSON() ([]byte, error) {
	n := 2
	for _, rec := range r {
		n += 2 + 4*len(rec)
	}
	b := make([]byte, 0, n)
	b = append(b, '[')
	for i, rec := range r {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		for j, c := range rec {
			if j > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendUint(b, uint64(c), 10)
		}
		b = append(b, ']')
	}
	return append(b, ']'), nil
}
