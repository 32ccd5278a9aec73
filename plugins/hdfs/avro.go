package hdfs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/hamba/avro/v2"
	"github.com/hamba/avro/v2/ocf"

	"github.com/mqgate/mqgate/sdk"
)

// AvroSchema is the schema of the records of format avro files: one
// record per message, with its topic, queue, offset, key, value, time and
// headers. Hive (AvroSerDe) and Spark (spark-avro) read it as is; the
// timestamp is a timestamp-millis, a nullable key is a union with null.
const AvroSchema = `{
  "type": "record",
  "name": "Record",
  "namespace": "mqgate",
  "doc": "A message the mqgate HDFS sink consumed.",
  "fields": [
    {"name": "topic", "type": "string"},
    {"name": "qid", "type": "string", "doc": "The queue: a Kafka partition or a RocketMQ message queue."},
    {"name": "offset", "type": "long"},
    {"name": "key", "type": ["null", "bytes"], "default": null},
    {"name": "value", "type": "bytes"},
    {"name": "timestamp_ms", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "headers", "type": {"type": "map", "values": "bytes"}, "doc": "A header repeated in the message keeps its last value."}
  ]
}`

// avroSchema is AvroSchema parsed.
var avroSchema = avro.MustParse(AvroSchema)

// avroRecord is AvroSchema's record in Go.
type avroRecord struct {
	Topic       string            `avro:"topic"`
	Qid         string            `avro:"qid"`
	Offset      int64             `avro:"offset"`
	Key         *[]byte           `avro:"key"`
	Value       []byte            `avro:"value"`
	TimestampMs int64             `avro:"timestamp_ms"`
	Headers     map[string][]byte `avro:"headers"`
}

// avroRecordOf converts a consumed record.
func avroRecordOf(r *sdk.Record) avroRecord {
	a := avroRecord{Topic: r.Topic, Qid: r.Qid, Offset: r.Offset, Value: r.Value, Headers: map[string][]byte{}}
	if a.Value == nil {
		a.Value = []byte{}
	}
	if r.Key != nil {
		k := r.Key
		a.Key = &k
	}
	if !r.Timestamp.IsZero() {
		a.TimestampMs = r.Timestamp.UnixMilli()
	}
	for _, h := range r.Headers {
		a.Headers[h.Key] = h.Value
	}
	return a
}

// avroFormat writes Avro object container files with codec. Every take
// ends with whole data blocks, so a file is a valid container after each
// append.
type avroFormat struct{ codec ocf.CodecName }

func (avroFormat) ext() string { return "avro" }

func (avroFormat) check(*sdk.Record) error { return nil } // the schema holds any record

func (avroFormat) estimate(r *sdk.Record) int64 {
	n := len(r.Topic) + len(r.Qid) + len(r.Key) + len(r.Value) + 24
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value) + 4
	}
	return int64(n)
}

func (f avroFormat) newEncoder() (fileEncoder, error) {
	e := &avroEncoder{}
	enc, err := ocf.NewEncoderWithSchema(avroSchema, &e.buf, ocf.WithCodec(f.codec),
		// Blocks end at a take, or at 1 MiB of encoded records before it.
		ocf.WithBlockLength(1<<30), ocf.WithBlockSize(1<<20))
	if err != nil {
		return nil, fmt.Errorf("starting an Avro container: %w", err)
	}
	e.enc = enc
	return e, nil
}

// avroEncoder is an avroFormat file's encoder.
type avroEncoder struct {
	buf bytes.Buffer
	enc *ocf.Encoder
}

func (e *avroEncoder) add(r *sdk.Record) error {
	return e.enc.Encode(avroRecordOf(r))
}

func (e *avroEncoder) take() ([]byte, error) {
	if err := e.enc.Flush(); err != nil {
		return nil, fmt.Errorf("ending an Avro block: %w", err)
	}
	b := e.buf.Bytes()
	e.buf.Reset() // keeps the memory for the next block, as take's contract allows
	return b, nil
}

// Bounds of what validPrefix accepts in a container's header, against a
// file that is not one.
const (
	maxMetaEntries = 1 << 10
	maxMetaBytes   = 1 << 20
)

// avroMagic starts every Avro object container file.
var avroMagic = []byte{'O', 'b', 'j', 1}

// validPrefix walks the container: the header, then data blocks of a
// record count, a byte length, the bytes and the header's sync marker. A
// block is whole when its sync marker follows its bytes; the prefix ends
// after the last whole block. A file whose header is incomplete has no
// valid prefix.
func (avroFormat) validPrefix(r io.Reader) (int64, int64, error) {
	c := &countingReader{r: bufio.NewReaderSize(r, 64<<10)}
	sync, err := readAvroHeader(c)
	if err != nil {
		return 0, 0, c.err // not a container, or a short one: nothing in it is valid
	}
	valid, records := c.n, int64(0)
	var marker [16]byte
	for {
		count, err := c.varint()
		if err != nil {
			return valid, records, c.err
		}
		size, err := c.varint()
		if err != nil || count < 0 || size < 0 {
			return valid, records, c.err
		}
		if c.skip(size) != nil || c.full(marker[:]) != nil || marker != sync {
			return valid, records, c.err
		}
		valid, records = c.n, records+count
	}
}

// errNotAvro marks a file that does not start like a container.
var errNotAvro = errors.New("not an Avro object container")

// readAvroHeader reads a container's header and returns its sync marker.
func readAvroHeader(c *countingReader) ([16]byte, error) {
	var sync [16]byte
	magic := make([]byte, len(avroMagic))
	if err := c.full(magic); err != nil {
		return sync, err
	}
	if !bytes.Equal(magic, avroMagic) {
		return sync, errNotAvro
	}
	entries := int64(0)
	for {
		n, err := c.varint()
		if err != nil {
			return sync, err
		}
		if n == 0 {
			break
		}
		if n < 0 { // a negative count is followed by the block's byte size
			n = -n
			if _, err := c.varint(); err != nil {
				return sync, err
			}
		}
		if entries += n; entries > maxMetaEntries {
			return sync, fmt.Errorf("%w: over %d metadata entries", errNotAvro, maxMetaEntries)
		}
		for range 2 * n { // a key and a value
			size, err := c.varint()
			if err != nil {
				return sync, err
			}
			if size < 0 || size > maxMetaBytes {
				return sync, fmt.Errorf("%w: a metadata entry of %d bytes", errNotAvro, size)
			}
			if err := c.skip(size); err != nil {
				return sync, err
			}
		}
	}
	return sync, c.full(sync[:])
}
