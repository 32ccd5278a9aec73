package httpapi

import (
	"mime"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/mqgate/mqgate/core/consume"
	"github.com/mqgate/mqgate/internal/pbwire"
)

// A pull answers a PullResponse of httppb/mqgate_http.proto instead of
// JSON when the request's Accept names application/x-protobuf: keys,
// values and header values go as they are, where JSON escapes them or, when
// they are not UTF-8, base64s them. It is written straight into the
// answer's buffer, as the JSON is, with protowire: each message's size is
// counted first, for its length prefix.

// Field numbers of mqgate_http.proto's answers.
const (
	pbPullContext  = 1 // PullResponse.context
	pbPullMessages = 2 // PullResponse.messages

	pbContextGroup = 1 // PullContext.group
	pbContextTopic = 2
	pbContextQid   = 3

	pbConsumedKey       = 1 // ConsumedMessage.key
	pbConsumedValue     = 2
	pbConsumedHeaders   = 3
	pbConsumedTags      = 4
	pbConsumedOffset    = 5
	pbConsumedQid       = 6
	pbConsumedTimestamp = 7
	pbConsumedAttempt   = 8
)

// wantsProtobuf reports whether an Accept header names
// application/x-protobuf among its media ranges, with a weight above 0
// (q=0 says "not acceptable").
func wantsProtobuf(accept string) bool {
	for accept != "" {
		var r string
		r, accept, _ = strings.Cut(accept, ",")
		t, params, err := mime.ParseMediaType(r)
		if err != nil || t != protobufContentType {
			continue
		}
		q, err := strconv.ParseFloat(params["q"], 64)
		return params["q"] == "" || err != nil || q > 0
	}
	return false
}

// appendPullProtobuf appends the 200 body of a pull as a PullResponse.
func appendPullProtobuf(b []byte, group, topic string, batch *consume.Batch) []byte {
	group, topic, qid := validString(group), validString(topic), validString(batch.Qid)
	size := pbwire.BytesSize(len(group)) + pbwire.BytesSize(len(topic)) + pbwire.BytesSize(len(qid))
	b = protowire.AppendTag(b, pbPullContext, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(size))
	b = pbwire.AppendString(b, pbContextGroup, group)
	b = pbwire.AppendString(b, pbContextTopic, topic)
	b = pbwire.AppendString(b, pbContextQid, qid)
	for i := range batch.Messages {
		m := &batch.Messages[i]
		tags, qid := validString(m.Tags), validString(m.Qid)
		b = protowire.AppendTag(b, pbPullMessages, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(consumedSize(m, tags, qid)))
		b = appendConsumedProtobuf(b, m, tags, qid)
	}
	return b
}

// consumedSize is the encoded size of m as a ConsumedMessage, with tags
// and qid as they will be written.
func consumedSize(m *consume.Message, tags, qid string) int {
	n := 0
	if m.Key != nil {
		n += 1 + protowire.SizeBytes(len(m.Key))
	}
	n += pbwire.BytesSize(len(m.Value))
	for _, h := range m.Headers {
		n += 1 + protowire.SizeBytes(headerSize(h.Key, h.Value))
	}
	n += pbwire.BytesSize(len(tags)) + pbwire.VarintSize(uint64(m.Offset)) + pbwire.BytesSize(len(qid))
	n += pbwire.VarintSize(uint64(unixMs(m.Timestamp))) + pbwire.VarintSize(uint64(int64(m.Attempt)))
	return n
}

func appendConsumedProtobuf(b []byte, m *consume.Message, tags, qid string) []byte {
	if m.Key != nil { // present even when empty: an empty key is not no key
		b = protowire.AppendTag(b, pbConsumedKey, protowire.BytesType)
		b = protowire.AppendBytes(b, m.Key)
	}
	b = pbwire.AppendBytes(b, pbConsumedValue, m.Value)
	for _, h := range m.Headers {
		b = protowire.AppendTag(b, pbConsumedHeaders, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(headerSize(h.Key, h.Value)))
		b = pbwire.AppendString(b, pbHeaderKey, h.Key) // bytes on the wire: any name goes as it is
		b = pbwire.AppendBytes(b, pbHeaderValue, h.Value)
	}
	b = pbwire.AppendString(b, pbConsumedTags, tags)
	b = pbwire.AppendVarint(b, pbConsumedOffset, uint64(m.Offset))
	b = pbwire.AppendString(b, pbConsumedQid, qid)
	b = pbwire.AppendVarint(b, pbConsumedTimestamp, uint64(unixMs(m.Timestamp)))
	return pbwire.AppendVarint(b, pbConsumedAttempt, uint64(int64(m.Attempt)))
}

func headerSize(key string, value []byte) int {
	return pbwire.BytesSize(len(key)) + pbwire.BytesSize(len(value))
}

// validString is s, or s with each invalid UTF-8 sequence replaced by
// U+FFFD, as the JSON answer writes it: a protobuf string must be UTF-8.
func validString(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
