package produce

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/mqgate/mqgate/sdk"
)

// A spool entry is one record as the spool stores it. The key orders
// entries by cluster, then by the spool-wide sequence number Append gave
// them:
//
//	'e' cluster 0x00 seq(8 bytes, big endian)
//
// Cluster names never contain 0x00 (Append refuses them), so 0x00 ends the
// cluster and one cluster's keys form one contiguous, seq-ordered range.
//
// The value is the record whole, in this binary layout (uvarint lengths,
// zigzag varints for signed numbers):
//
//	version (1 byte, 1)
//	appended   varint unix nanoseconds: when Append accepted it
//	topic      uvarint length, bytes
//	partition  varint
//	hash       uvarint
//	key        1 byte 0 (nil) or 1, then uvarint length, bytes
//	value      1 byte 0 (nil) or 1, then uvarint length, bytes
//	headers    uvarint count, then each: key (uvarint length, bytes),
//	           value (1 byte 0 (nil) or 1, uvarint length, bytes)
//	tags       uvarint length, bytes
//	qid        uvarint length, bytes
//	offset     varint
//	timestamp  1 byte 0 (zero time) or 1, then varint unix nanoseconds
const (
	spoolEntryPrefix  = 'e'
	spoolEntryVersion = 1
)

// errSpoolEntryCorrupt marks an entry value the decoder cannot read.
var errSpoolEntryCorrupt = errors.New("corrupt spool entry")

// spoolKey returns the key of cluster's entry seq.
func spoolKey(cluster string, seq uint64) []byte {
	k := make([]byte, 0, len(cluster)+10)
	k = append(k, spoolEntryPrefix)
	k = append(k, cluster...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, seq)
}

// spoolClusterBounds returns the key range [lower, upper) holding all of
// cluster's entries.
func spoolClusterBounds(cluster string) (lower, upper []byte) {
	lower = append(append([]byte{spoolEntryPrefix}, cluster...), 0)
	upper = append(append([]byte{spoolEntryPrefix}, cluster...), 1)
	return lower, upper
}

// parseSpoolKey splits an entry key into its cluster and seq.
func parseSpoolKey(k []byte) (cluster string, seq uint64, err error) {
	if len(k) < 10 || k[0] != spoolEntryPrefix || k[len(k)-9] != 0 {
		return "", 0, fmt.Errorf("%w: bad key %q", errSpoolEntryCorrupt, k)
	}
	return string(k[1 : len(k)-9]), binary.BigEndian.Uint64(k[len(k)-8:]), nil
}

// encodeSpoolEntry appends r, accepted at appended, to dst.
func encodeSpoolEntry(dst []byte, r *sdk.Record, appended time.Time) []byte {
	dst = append(dst, spoolEntryVersion)
	dst = binary.AppendVarint(dst, appended.UnixNano())
	dst = appendSpoolBytes(dst, []byte(r.Topic))
	dst = binary.AppendVarint(dst, int64(r.Partition))
	dst = binary.AppendUvarint(dst, r.Hash)
	dst = appendSpoolOptBytes(dst, r.Key)
	dst = appendSpoolOptBytes(dst, r.Value)
	dst = binary.AppendUvarint(dst, uint64(len(r.Headers)))
	for _, h := range r.Headers {
		dst = appendSpoolBytes(dst, []byte(h.Key))
		dst = appendSpoolOptBytes(dst, h.Value)
	}
	dst = appendSpoolBytes(dst, []byte(r.Tags))
	dst = appendSpoolBytes(dst, []byte(r.Qid))
	dst = binary.AppendVarint(dst, r.Offset)
	if r.Timestamp.IsZero() {
		return append(dst, 0)
	}
	dst = append(dst, 1)
	return binary.AppendVarint(dst, r.Timestamp.UnixNano())
}

// spoolEntrySize is an upper bound of the encoded size of r, used to size
// buffers.
func spoolEntrySize(r *sdk.Record) int {
	n := 1 + 3*binary.MaxVarintLen64 + len(r.Topic) + 2*binary.MaxVarintLen64 + 2*(1+binary.MaxVarintLen64) +
		len(r.Key) + len(r.Value) + binary.MaxVarintLen64 + 3*binary.MaxVarintLen64 + len(r.Tags) + len(r.Qid) + 1
	for _, h := range r.Headers {
		n += 2*binary.MaxVarintLen64 + 1 + len(h.Key) + len(h.Value)
	}
	return n
}

func appendSpoolBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

func appendSpoolOptBytes(dst, b []byte) []byte {
	if b == nil {
		return append(dst, 0)
	}
	return appendSpoolBytes(append(dst, 1), b)
}

// decodeSpoolEntry reads an entry value. The record's byte slices are
// copies: they do not alias v.
func decodeSpoolEntry(v []byte) (r sdk.Record, appended time.Time, err error) {
	d := spoolDecoder{b: v}
	if ver := d.byte(); d.err == nil && ver != spoolEntryVersion {
		return r, appended, fmt.Errorf("%w: version %d", errSpoolEntryCorrupt, ver)
	}
	appended = time.Unix(0, d.varint())
	r.Topic = string(d.bytes())
	r.Partition = int32(d.varint())
	r.Hash = d.uvarint()
	r.Key = d.optBytes()
	r.Value = d.optBytes()
	if n := d.uvarint(); n > 0 && d.err == nil {
		// Each header takes at least two bytes: bound the allocation
		// by what the value can hold.
		if n > uint64(len(d.b)) {
			d.fail()
		} else {
			r.Headers = make([]sdk.Header, 0, n)
			for range n {
				k := string(d.bytes())
				val := d.optBytes()
				if d.err != nil {
					break
				}
				r.Headers = append(r.Headers, sdk.Header{Key: k, Value: val})
			}
		}
	}
	r.Tags = string(d.bytes())
	r.Qid = string(d.bytes())
	r.Offset = d.varint()
	if d.byte() == 1 {
		r.Timestamp = time.Unix(0, d.varint())
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail()
	}
	if d.err != nil {
		return sdk.Record{}, time.Time{}, d.err
	}
	return r, appended, nil
}

// spoolEntryAppended reads only the time an entry was appended.
func spoolEntryAppended(v []byte) (time.Time, error) {
	d := spoolDecoder{b: v}
	if ver := d.byte(); d.err == nil && ver != spoolEntryVersion {
		return time.Time{}, fmt.Errorf("%w: version %d", errSpoolEntryCorrupt, ver)
	}
	t := d.varint()
	if d.err != nil {
		return time.Time{}, d.err
	}
	return time.Unix(0, t), nil
}

// spoolDecoder reads the entry layout; after the first error every read
// returns zero values and err keeps that error.
type spoolDecoder struct {
	b   []byte
	err error
}

func (d *spoolDecoder) fail() {
	if d.err == nil {
		d.err = errSpoolEntryCorrupt
	}
	d.b = nil
}

func (d *spoolDecoder) byte() byte {
	if d.err != nil || len(d.b) < 1 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *spoolDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *spoolDecoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes reads a length-prefixed byte string; never nil on success.
func (d *spoolDecoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	out := make([]byte, n)
	copy(out, d.b[:n])
	d.b = d.b[n:]
	return out
}

func (d *spoolDecoder) optBytes() []byte {
	switch d.byte() {
	case 0:
		return nil
	case 1:
		return d.bytes()
	default:
		d.fail()
		return nil
	}
}
