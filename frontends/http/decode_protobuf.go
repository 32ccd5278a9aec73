package httpapi

import (
	"strconv"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/sdk"
)

// protobufContentType is the Content-Type of a produce body that is a
// ProduceRequest of httppb/mqgate_http.proto.
const protobufContentType = "application/x-protobuf"

// Field numbers of httppb/mqgate_http.proto.
const (
	pbMessages = 1 // ProduceRequest.messages

	pbKey       = 1 // Message.key
	pbValue     = 2 // Message.value
	pbHeaders   = 3 // Message.headers
	pbTags      = 4 // Message.tags
	pbPartition = 5 // Message.partition
	pbHashID    = 6 // Message.hash_id

	pbHeaderKey   = 1 // Header.key
	pbHeaderValue = 2 // Header.value
)

// decodeProtobuf decodes an application/x-protobuf produce body, a
// ProduceRequest (httppb/mqgate_http.proto), under the rules of the wire
// format: a field may come in any order, a scalar given twice keeps its
// last value, and an int32 is the low 32 bits of what was sent. Unlike most
// protobuf readers it refuses fields it does not know, as the JSON decoder
// does, so nothing a client meant is silently dropped. Keys and values
// alias body, as JSON strings without escapes do.
//
// What the body would decode into is counted before anything is
// allocated: more than lim.maxMessages messages are refused, and so are
// headers whose decoded form would take more than lim.maxDecoded (an empty
// header is 2 bytes on the wire and 40 in memory); what they take is
// charged through lim.reserve.
//
// Every error is an *sdk.Error naming the message and field:
// CodeIllegal for what is malformed, CodeTooLarge for a limit, or
// reserve's.
func decodeProtobuf(body []byte, lim bodyLimits) ([]produce.Message, error) {
	n, headers, err := countMessages(body)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, illegalf("request body holds no message; want a ProduceRequest with at least one of messages (%s)", protobufContentType)
	}
	if n > lim.maxMessages {
		return nil, sdk.Errorf(sdk.CodeTooLarge, "%d messages exceed http.max_batch_messages (%d)", n, lim.maxMessages)
	}
	if size := int64(headers) * headerBytes; size > lim.maxDecoded {
		return nil, sdk.Errorf(sdk.CodeTooLarge, "the messages hold %d headers in all, %d bytes once decoded, over http.max_body_bytes (%d)",
			headers, size, lim.maxDecoded)
	} else if lim.reserve != nil && size > 0 {
		if err := lim.reserve(size); err != nil {
			return nil, err
		}
	}
	msgs := make([]produce.Message, 0, n)
	all := make([]sdk.Header, 0, headers) // every message's headers, one allocation
	for b := body; len(b) > 0; {
		num, typ, tn := protowire.ConsumeTag(b)
		b = b[tn:] // countMessages has checked the tags and lengths
		v, vn := protowire.ConsumeBytes(b)
		b = b[vn:]
		if num != pbMessages || typ != protowire.BytesType {
			continue // unreachable: countMessages refused it
		}
		m, err := decodePBMessage(v, len(msgs), &all)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// countMessages checks the ProduceRequest's own fields and counts its
// messages and their headers. A message whose fields do not parse stops
// the count of headers there; decoding it says why.
func countMessages(body []byte) (messages, headers int, err error) {
	for at := 0; at < len(body); {
		num, typ, tn := protowire.ConsumeTag(body[at:])
		if tn < 0 {
			return 0, 0, pbMalformed("ProduceRequest", at, protowire.ParseError(tn))
		}
		if num != pbMessages {
			return 0, 0, illegalf("ProduceRequest: unknown field %d at byte %d; it has only messages (1), see mqgate_http.proto", num, at)
		}
		if typ != protowire.BytesType {
			return 0, 0, illegalf("ProduceRequest: messages (field 1) at byte %d has wire type %d; want 2 (length-delimited)", at, typ)
		}
		v, vn := protowire.ConsumeBytes(body[at+tn:])
		if vn < 0 {
			return 0, 0, pbMalformed("ProduceRequest: messages["+strconv.Itoa(messages)+"]", at, protowire.ParseError(vn))
		}
		at += tn + vn
		messages++
		for len(v) > 0 {
			fnum, ftyp, n := protowire.ConsumeTag(v)
			if n < 0 {
				break
			}
			m := protowire.ConsumeFieldValue(fnum, ftyp, v[n:])
			if m < 0 {
				break
			}
			if fnum == pbHeaders {
				headers++
			}
			v = v[n+m:]
		}
	}
	return messages, headers, nil
}

// decodePBMessage decodes message index of the batch.
// Its headers are appended to all, which has room for them.
func decodePBMessage(b []byte, index int, all *[]sdk.Header) (produce.Message, error) {
	path := func() string { return "messages[" + strconv.Itoa(index) + "]" } // for errors only
	m := produce.Message{Value: []byte{}, Partition: sdk.PartitionHash}
	for at := 0; at < len(b); {
		num, typ, tn := protowire.ConsumeTag(b[at:])
		if tn < 0 {
			return m, pbMalformed(path(), at, protowire.ParseError(tn))
		}
		name, want := pbMessageField(num)
		if name == "" {
			return m, illegalf("%s: unknown field %d; a Message has key (1), value (2), headers (3), tags (4), partition (5) and hash_id (6), see mqgate_http.proto", path(), num)
		}
		if typ != want {
			return m, illegalf("%s.%s: wire type %d; want %d", path(), name, typ, want)
		}
		at += tn
		if typ == protowire.VarintType {
			v, vn := protowire.ConsumeVarint(b[at:])
			if vn < 0 {
				return m, pbMalformed(path()+"."+name, at, protowire.ParseError(vn))
			}
			at += vn
			if num == pbHashID {
				h := int64(v)
				m.HashID = &h
				continue
			}
			// An int32 travels sign-extended to 64 bits; a reader keeps
			// the low 32 (as proto.Unmarshal does, so an encoder that
			// writes -1 in 5 bytes means -1).
			p := int64(int32(v))
			if p < int64(sdk.PartitionRandom) {
				return m, illegalf("%s.partition: must be -1 (by hash), -2 (random) or a partition >= 0; got %d", path(), p)
			}
			m.Partition = int32(p)
			continue
		}
		v, vn := protowire.ConsumeBytes(b[at:])
		if vn < 0 {
			return m, pbMalformed(path()+"."+name, at, protowire.ParseError(vn))
		}
		at += vn
		v = v[:len(v):len(v)] // an append to it must not write over the body
		switch num {
		case pbKey:
			m.Key = nonNil(v)
		case pbValue:
			m.Value = nonNil(v)
		case pbTags:
			if !utf8.Valid(v) {
				return m, illegalf("%s.tags: not valid UTF-8", path())
			}
			m.Tags = string(v)
		case pbHeaders:
			h, err := decodePBHeader(v, path, len(m.Headers))
			if err != nil {
				return m, err
			}
			start := len(*all) - len(m.Headers)
			*all = append(*all, h)
			m.Headers = (*all)[start:len(*all):len(*all)]
		}
	}
	return m, nil
}

// pbMessageField is the name and wire type of a Message's field num, or ""
// for a field it does not have.
func pbMessageField(num protowire.Number) (string, protowire.Type) {
	switch num {
	case pbKey:
		return "key", protowire.BytesType
	case pbValue:
		return "value", protowire.BytesType
	case pbHeaders:
		return "headers", protowire.BytesType
	case pbTags:
		return "tags", protowire.BytesType
	case pbPartition:
		return "partition", protowire.VarintType
	case pbHashID:
		return "hash_id", protowire.VarintType
	}
	return "", 0
}

// decodePBHeader decodes header index of the message message names in
// errors.
func decodePBHeader(b []byte, message func() string, index int) (sdk.Header, error) {
	h := sdk.Header{Value: []byte{}}
	path := func() string { return message() + ".headers[" + strconv.Itoa(index) + "]" }
	for at := 0; at < len(b); {
		num, typ, tn := protowire.ConsumeTag(b[at:])
		if tn < 0 {
			return h, pbMalformed(path(), at, protowire.ParseError(tn))
		}
		var name string
		switch num {
		case pbHeaderKey:
			name = "key"
		case pbHeaderValue:
			name = "value"
		default:
			return h, illegalf("%s: unknown field %d; a Header has key (1) and value (2), see mqgate_http.proto", path(), num)
		}
		if typ != protowire.BytesType {
			return h, illegalf("%s.%s: wire type %d; want 2 (length-delimited)", path(), name, typ)
		}
		at += tn
		v, vn := protowire.ConsumeBytes(b[at:])
		if vn < 0 {
			return h, pbMalformed(path()+"."+name, at, protowire.ParseError(vn))
		}
		at += vn
		if num == pbHeaderKey {
			h.Key = string(v)
			continue
		}
		h.Value = nonNil(v[:len(v):len(v)])
	}
	return h, nil
}

// pbMalformed is the error for bytes of the wire format that do not parse,
// at offset at of what path names.
func pbMalformed(path string, at int, err error) error {
	return illegalf("%s: malformed protobuf at byte %d: %v", path, at, err)
}
