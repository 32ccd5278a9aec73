package sdk

import (
	"errors"
	"time"

	"github.com/planetscale/vtprotobuf/protohelpers"
	"google.golang.org/protobuf/encoding/protowire"

	pb "github.com/mqgate/mqgate/sdk/proto"
)

// consumeMsg is one message of a Consume stream as the gateway's end takes
// it (recvOf): a batch as its records, any other message as it came.
type consumeMsg struct {
	m       *pb.ConsumeResponse // when batch is false
	records []Record            // a batch's
	batch   bool
}

// Field numbers of plugin.proto's ConsumeResponse, Batch, Record and
// Header, as decodeBatch reads them.
const (
	fieldResponseBatch = 1

	fieldBatchRecords = 1

	fieldRecordTopic       = 1
	fieldRecordQid         = 2
	fieldRecordPartition   = 3
	fieldRecordHash        = 4
	fieldRecordOffset      = 5
	fieldRecordHasKey      = 6
	fieldRecordKey         = 7
	fieldRecordValue       = 8
	fieldRecordHeaders     = 9
	fieldRecordTags        = 10
	fieldRecordTimestampMs = 11

	fieldHeaderKey   = 1
	fieldHeaderValue = 2
)

var errMalformed = errors.New("malformed protobuf message")

// batchOf reports whether b, a ConsumeResponse, is a lone batch, and
// returns the batch's bytes. Anything else (another kind, a kind named
// twice, unknown fields) is left to the generated code.
func batchOf(b []byte) ([]byte, bool) {
	num, typ, n, err := readTag(b)
	if err != nil || num != fieldResponseBatch || typ != protowire.BytesType {
		return nil, false
	}
	v, m, err := readBytes(b[n:])
	if err != nil || n+m != len(b) {
		return nil, false
	}
	return v, true
}

// The readers below take the protobuf wire format exactly as the
// generated code (vtprotobuf's UnmarshalVT) does, laxities included, so
// that what one refuses the other refuses too.

// readVarint reads a varint of up to ten bytes; bits past 64 are dropped.
func readVarint(b []byte) (uint64, int, error) {
	var x uint64
	for i, shift := 0, uint(0); ; i, shift = i+1, shift+7 {
		if shift >= 64 || i >= len(b) {
			return 0, 0, errMalformed
		}
		x |= uint64(b[i]&0x7f) << shift
		if b[i] < 0x80 {
			return x, i + 1, nil
		}
	}
}

// readTag reads a field's tag.
func readTag(b []byte) (protowire.Number, protowire.Type, int, error) {
	x, n, err := readVarint(b)
	if err != nil {
		return 0, 0, 0, err
	}
	num, typ := int32(x>>3), protowire.Type(x&7)
	if typ == protowire.EndGroupType || num <= 0 {
		return 0, 0, 0, errMalformed
	}
	return protowire.Number(num), typ, n, nil
}

// readBytes reads a length-prefixed value.
func readBytes(b []byte) ([]byte, int, error) {
	x, n, err := readVarint(b)
	if err != nil {
		return nil, 0, err
	}
	l := int(x)
	if l < 0 || n+l < 0 || n+l > len(b) {
		return nil, 0, errMalformed
	}
	return b[n : n+l], n + l, nil
}

// fields calls each for every field of the message b: its number, wire
// type and, for a varint or a length-prefixed field, its value. An
// unknown field (each reports false) is skipped as the generated code
// skips it; a known one of another wire type is an error, as there.
func fields(b []byte, each func(num protowire.Number, typ protowire.Type, x uint64, v []byte) (known bool, err error)) error {
	for len(b) > 0 {
		num, typ, n, err := readTag(b)
		if err != nil {
			return err
		}
		var (
			x uint64
			v []byte
			m int
		)
		switch typ {
		case protowire.VarintType:
			x, m, err = readVarint(b[n:])
		case protowire.BytesType:
			v, m, err = readBytes(b[n:])
		}
		if err != nil {
			return err
		}
		known, err := each(num, typ, x, v)
		if err != nil {
			return err
		}
		if known {
			b = b[n+m:]
			continue
		}
		skip, err := protohelpers.Skip(b)
		if err != nil {
			return errMalformed
		}
		if skip > len(b) {
			return errMalformed
		}
		b = b[skip:]
	}
	return nil
}

// wantType is the check of a known field's wire type.
func wantType(typ, want protowire.Type) (bool, error) {
	if typ != want {
		return true, errMalformed
	}
	return true, nil
}

// decodeBatch decodes a ConsumeResponse.Batch into records, as
// UnmarshalVT and recordsFromPB would, in fewer allocations: the records
// in one, each key, value and header value in one of its own (they live as
// long as their message is unacked, so they must not share), and a topic
// or qid the record before had is not allocated again.
func decodeBatch(b []byte) ([]Record, error) {
	n := 0
	err := fields(b, func(num protowire.Number, typ protowire.Type, _ uint64, _ []byte) (bool, error) {
		if num != fieldBatchRecords {
			return false, nil
		}
		n++
		return wantType(typ, protowire.BytesType)
	})
	if err != nil {
		return nil, err
	}
	return decodeRecords(b, fieldBatchRecords, n, false)
}

// decodeRecords decodes the n Record messages of field in message b, its
// fields' wire types checked already, into one allocation (decodeRecord
// says what share does).
func decodeRecords(b []byte, field protowire.Number, n int, share bool) ([]Record, error) {
	recs := make([]Record, 0, n)
	var prev *Record
	err := fields(b, func(num protowire.Number, _ protowire.Type, _ uint64, v []byte) (bool, error) {
		if num != field {
			return false, nil
		}
		recs = append(recs, Record{})
		r := &recs[len(recs)-1]
		if err := decodeRecord(v, r, prev, share); err != nil {
			return true, err
		}
		prev = r
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return recs, nil
}

// decodeRecord decodes a Record message into r, reusing prev's topic and
// qid strings when they are the same. Its key, value and header values
// are copies, or with share slices of b with no room past their ends.
func decodeRecord(b []byte, r, prev *Record, share bool) error {
	var (
		hasKey, keySet, valueSet bool
		key, value               []byte
	)
	err := fields(b, func(num protowire.Number, typ protowire.Type, x uint64, v []byte) (bool, error) {
		switch num {
		case fieldRecordTopic:
			r.Topic = sameString(v, prev, func(p *Record) string { return p.Topic })
		case fieldRecordQid:
			r.Qid = sameString(v, prev, func(p *Record) string { return p.Qid })
		case fieldRecordTags:
			r.Tags = string(v)
		case fieldRecordKey:
			key, keySet = v, true
		case fieldRecordValue:
			value, valueSet = v, true
		case fieldRecordHeaders:
			if typ == protowire.BytesType {
				h, err := decodeHeader(v, share)
				if err != nil {
					return true, err
				}
				r.Headers = append(r.Headers, h)
			}
		case fieldRecordPartition:
			r.Partition = int32(x)
		case fieldRecordHash:
			r.Hash = x
		case fieldRecordOffset:
			r.Offset = int64(x)
		case fieldRecordHasKey:
			hasKey = int(x) != 0 // as the generated code, whose int may be 32 bits
		case fieldRecordTimestampMs:
			r.Timestamp = time.Time{}
			if x != 0 {
				r.Timestamp = time.UnixMilli(int64(x))
			}
		default:
			return false, nil
		}
		return wantType(typ, recordFieldType(num))
	})
	if err != nil {
		return err
	}
	// Bytes are taken once, at their last value (the last of a field
	// named twice wins, as in the generated code).
	if hasKey {
		r.Key = bytesOf(key, keySet, share)
	}
	r.Value = bytesOf(value, valueSet, share)
	return nil
}

// bytesOf is a field's bytes v, never nil: empty when not set, else a
// copy, or with share v itself without room past its end.
func bytesOf(v []byte, set, share bool) []byte {
	switch {
	case !set:
		return []byte{}
	case share:
		return v[:len(v):len(v)]
	}
	return append([]byte{}, v...)
}

// recordFieldType is the wire type of a field of Record.
func recordFieldType(num protowire.Number) protowire.Type {
	switch num {
	case fieldRecordPartition, fieldRecordHash, fieldRecordOffset, fieldRecordHasKey, fieldRecordTimestampMs:
		return protowire.VarintType
	}
	return protowire.BytesType
}

func decodeHeader(b []byte, share bool) (Header, error) {
	var h Header
	err := fields(b, func(num protowire.Number, typ protowire.Type, _ uint64, v []byte) (bool, error) {
		switch num {
		case fieldHeaderKey:
			h.Key = string(v)
		case fieldHeaderValue:
			h.Value = bytesOf(v, true, share)
		default:
			return false, nil
		}
		return wantType(typ, protowire.BytesType)
	})
	return h, err
}

// sameString is v as a string, prev's field (got by field) when it holds
// the same bytes: a batch is mostly of one topic and few qids.
func sameString(v []byte, prev *Record, field func(*Record) string) string {
	if prev != nil {
		if s := field(prev); s == string(v) {
			return s
		}
	}
	return string(v)
}
