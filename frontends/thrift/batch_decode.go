package thriftapi

import (
	"encoding/binary"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/mqgate/mqgate/frontends/thrift/gen-go/producer"
)

// decodeBatchArgs decodes the arguments of a sendBatchSync call, the rest
// of its frame, as the generated ProducerServiceSendBatchSyncArgs.Read
// does through a guardedProtocol, in far fewer steps: the generated code
// reads every varint and field header a byte at a time through three
// interfaces, and copies every body into an allocation of its own, a
// fifth of the gateway's CPU in batches of 1 KiB messages.
//
// A message's body is a slice of b (its capacity clipped to its length),
// so b must be a buffer of this call alone, kept until nothing holds the
// messages. Strings are copies, as the generated code makes them: a
// topic name outlives the call (in metrics, in a map); a topic or tags
// equal to the message before's share its string.
//
// It handles what clients send: the fields of the IDL, each of its type.
// Anything else (an unknown field, a field of another type, a malformed
// or oversized length) it does not decode, and says so (ok false): the
// caller then has the generated code read b, which skips what it skips
// and refuses what it refuses, with its errors. So for any b that it
// decodes, the generated code gives the same messages
// (FuzzDecodeBatchArgs); trailing bytes after the arguments' end are the
// only difference, ignored here as the frame ends.
func decodeBatchArgs(b []byte, compact bool, maxElems, maxBytes int) (msgs []*producer.Message, ok bool) {
	r := wireReader{b: b, compact: compact, maxElems: maxElems, maxBytes: maxBytes}
	var last int16
	for {
		typ, id, ok := r.fieldBegin(&last)
		switch {
		case !ok:
			return nil, false
		case typ == thrift.STOP:
			return msgs, true
		case id != 1 || typ != thrift.LIST:
			return nil, false
		}
		if msgs, ok = r.messages(); !ok {
			return nil, false
		}
	}
}

// wireReader reads the compact or binary protocol from a buffer, under a
// guardedProtocol's limits. Each read reports ok false for anything the
// fast path leaves to the generated code.
type wireReader struct {
	b        []byte
	off      int
	compact  bool
	maxElems int
	maxBytes int
}

// compactTypes maps the compact protocol's types of the fields
// decodeBatchArgs reads to thrift's; the rest, 0 (STOP, taken apart), are
// left to the generated code.
var compactTypes = [16]thrift.TType{
	5:  thrift.I32,
	6:  thrift.I64,
	8:  thrift.STRING,
	9:  thrift.LIST,
	11: thrift.MAP,
	12: thrift.STRUCT,
}

func (r *wireReader) byte() (byte, bool) {
	if r.off >= len(r.b) {
		return 0, false
	}
	c := r.b[r.off]
	r.off++
	return c, true
}

// varint reads an unsigned varint of at most maxLen bytes: longer ones,
// which the library reads its own way, are left to it.
func (r *wireReader) varint(maxLen int) (uint64, bool) {
	var x uint64
	for i := 0; i < maxLen; i++ {
		c, ok := r.byte()
		if !ok {
			return 0, false
		}
		x |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			return x, true
		}
	}
	return 0, false
}

func (r *wireReader) fixed(n int) ([]byte, bool) {
	if len(r.b)-r.off < n {
		return nil, false
	}
	v := r.b[r.off : r.off+n]
	r.off += n
	return v, true
}

// fieldBegin reads a field's header: its type, thrift.STOP at a struct's
// end, and id. last is the id of the struct's field before, from which
// the compact protocol counts.
func (r *wireReader) fieldBegin(last *int16) (thrift.TType, int16, bool) {
	c, ok := r.byte()
	if !ok {
		return 0, 0, false
	}
	if !r.compact {
		if thrift.TType(c) == thrift.STOP {
			return thrift.STOP, 0, true
		}
		v, ok := r.fixed(2)
		if !ok {
			return 0, 0, false
		}
		return thrift.TType(c), int16(binary.BigEndian.Uint16(v)), true
	}
	if c&0x0f == 0 {
		return thrift.STOP, 0, true
	}
	typ := compactTypes[c&0x0f]
	if typ == 0 {
		return 0, 0, false
	}
	delta := int16(c >> 4)
	if delta == 0 {
		// A long form id, zigzag: left to the generated code, as no
		// client of ours writes one for fields this small.
		return 0, 0, false
	}
	*last += delta
	return typ, *last, true
}

func (r *wireReader) i32() (int32, bool) {
	if !r.compact {
		v, ok := r.fixed(4)
		if !ok {
			return 0, false
		}
		return int32(binary.BigEndian.Uint32(v)), true
	}
	x, ok := r.varint(5)
	u := uint32(x)
	return int32(u>>1) ^ -int32(u&1), ok
}

func (r *wireReader) i64() (int64, bool) {
	if !r.compact {
		v, ok := r.fixed(8)
		if !ok {
			return 0, false
		}
		return int64(binary.BigEndian.Uint64(v)), true
	}
	x, ok := r.varint(10)
	return int64(x>>1) ^ -int64(x&1), ok
}

// size reads a length or an element count, the compact protocol's varint
// or the binary protocol's int32.
func (r *wireReader) size() (int, bool) {
	if !r.compact {
		v, ok := r.fixed(4)
		if !ok {
			return 0, false
		}
		return int(int32(binary.BigEndian.Uint32(v))), true
	}
	x, ok := r.varint(5)
	return int(int32(uint32(x))), ok
}

// bytes reads a string or binary field: a slice of the buffer, empty but
// not nil for a length of 0, as guardedProtocol.readBytes gives it.
func (r *wireReader) bytes() ([]byte, bool) {
	n, ok := r.size()
	if !ok || n < 0 || n > r.maxBytes || n > len(r.b)-r.off {
		return nil, false
	}
	v := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return v, true
}

// count checks a container's element count as guardedProtocol.checkSize
// does.
func (r *wireReader) count(n int) bool {
	return n >= 0 && n <= r.maxElems && n <= len(r.b)-r.off
}

// messages reads a list<Message>.
func (r *wireReader) messages() ([]*producer.Message, bool) {
	var (
		elem thrift.TType
		n    int
	)
	if r.compact {
		c, ok := r.byte()
		if !ok {
			return nil, false
		}
		elem, n = compactTypes[c&0x0f], int(c>>4)
		if n == 15 {
			if n, ok = r.size(); !ok {
				return nil, false
			}
		}
	} else {
		c, ok := r.byte()
		if !ok {
			return nil, false
		}
		elem = thrift.TType(c)
		if n, ok = r.size(); !ok {
			return nil, false
		}
	}
	if elem != thrift.STRUCT || !r.count(n) {
		return nil, false
	}
	msgs := make([]*producer.Message, n)
	var (
		prev  *producer.Message
		chunk []producer.Message
	)
	for i := range msgs {
		if len(chunk) == 0 {
			// Made a chunk at a time, so that a count a frame declares
			// but does not hold costs no more than the generated code's.
			chunk = make([]producer.Message, min(n-i, messagesPerChunk))
		}
		m := &chunk[0]
		chunk = chunk[1:]
		m.PartitionId = -1 // the IDL's default
		if !r.message(m, prev) {
			return nil, false
		}
		msgs[i], prev = m, m
	}
	return msgs, true
}

// messagesPerChunk is how many messages messages makes at once: a batch of
// up to this many in one allocation.
const messagesPerChunk = 256

// message reads a Message into m. A topic or tags equal to prev's share
// its string.
func (r *wireReader) message(m, prev *producer.Message) bool {
	var last int16
	for {
		typ, id, ok := r.fieldBegin(&last)
		if !ok {
			return false
		}
		if typ == thrift.STOP {
			return true
		}
		switch {
		case typ == thrift.STRING && id >= 1 && id <= 8 && id != 4 && id != 6:
			v, ok := r.bytes()
			if !ok {
				return false
			}
			switch id {
			case 1:
				m.Topic = sharedString(v, prev, func(p *producer.Message) string { return p.Topic })
			case 2:
				m.Key = string(v)
			case 3:
				m.Value = string(v)
			case 5:
				m.Tags = sharedString(v, prev, func(p *producer.Message) string { return p.Tags })
			case 7:
				m.Body = v
			case 8:
				s := string(v)
				m.Version = &s
			}
		case id == 4 && typ == thrift.I64:
			if m.HashId, ok = r.i64(); !ok {
				return false
			}
		case id == 6 && typ == thrift.I32:
			if m.PartitionId, ok = r.i32(); !ok {
				return false
			}
		case id == 9 && typ == thrift.MAP:
			if m.Properties, ok = r.properties(); !ok {
				return false
			}
		default:
			return false
		}
	}
}

// sharedString returns v as a string: prev's, when of prev is equal.
func sharedString(v []byte, prev *producer.Message, of func(*producer.Message) string) string {
	if prev != nil {
		if s := of(prev); s == string(v) { // compared without a copy
			return s
		}
	}
	return string(v)
}

// properties reads a map<string, string>.
func (r *wireReader) properties() (map[string]string, bool) {
	var (
		n          int
		key, value thrift.TType
		ok         bool
	)
	if r.compact {
		if n, ok = r.size(); !ok || n < 0 {
			return nil, false
		}
		if n > 0 {
			c, ok := r.byte()
			if !ok {
				return nil, false
			}
			key, value = compactTypes[c>>4], compactTypes[c&0x0f]
		}
	} else {
		kv, ok := r.fixed(2)
		if !ok {
			return nil, false
		}
		key, value = thrift.TType(kv[0]), thrift.TType(kv[1])
		if n, ok = r.size(); !ok {
			return nil, false
		}
	}
	if !r.count(n) || n > 0 && (key != thrift.STRING || value != thrift.STRING) {
		return nil, false
	}
	props := make(map[string]string, n)
	for range n {
		k, ok := r.bytes()
		if !ok {
			return nil, false
		}
		v, ok := r.bytes()
		if !ok {
			return nil, false
		}
		props[string(k)] = string(v)
	}
	return props, true
}
