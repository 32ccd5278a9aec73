package httpapi

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/mqgate/mqgate/core/consume"
	"github.com/mqgate/mqgate/sdk"
)

// The consume routes' answers are appended straight into a pooled buffer
// (sendAppended) rather than built as structs for encoding/json: at 100
// messages of 1 KiB a pull, reflection and the escaping pass over every
// value were a quarter of the gateway's CPU. The bytes are those
// encoding/json wrote through gin's PureJSON before
// (consume_encode_test.go holds them equal): the same fields in the same
// order, the same escapes, and a final newline.
//
// A message object is
//
//	{"key" | "key_base64", "value" | "value_base64", "headers" | "headers_base64",
//	 "tags", "offset", "qid", "timestamp_ms", "attempt"}
//
// with key absent when the message has none, key_base64, value_base64 and
// headers_base64 (values in base64) used when the bytes are not valid
// UTF-8, headers absent when there are none and tags when it is empty.

// appendPullAnswer appends the 200 body of POST .../pull.
func appendPullAnswer(b []byte, group, topic string, batch *consume.Batch) []byte {
	b = append(b, `{"context":{"group":`...)
	b = appendJSONString(b, group, false)
	b = append(b, `,"topic":`...)
	b = appendJSONString(b, topic, false)
	b = append(b, `,"qid":`...)
	b = appendJSONString(b, batch.Qid, false)
	b = append(b, `},"messages":`...)
	b = appendConsumed(b, batch.Messages)
	return append(b, "}\n"...)
}

// appendFetchAnswer appends the 200 body of POST /v1/fetch.
func appendFetchAnswer(b []byte, qms []consume.QidMessages) []byte {
	b = append(b, `{"results":[`...)
	for i := range qms {
		q := &qms[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"topic":`...)
		b = appendJSONString(b, q.Topic, false)
		b = append(b, `,"qid":`...)
		b = appendJSONString(b, q.Qid, false)
		b = append(b, `,"next_offset":`...)
		b = strconv.AppendInt(b, q.NextOffset, 10)
		b = append(b, `,"messages":`...)
		b = appendConsumed(b, q.Messages)
		b = append(b, '}')
	}
	return append(b, "]}\n"...)
}

// consumedList is messages as the consume routes answer them, for answers
// still built with encoding/json (the batch-id routes).
type consumedList []consume.Message

// MarshalJSON appends the list as appendConsumed does.
func (l consumedList) MarshalJSON() ([]byte, error) {
	return appendConsumed(nil, l), nil
}

// appendConsumed appends msgs as a JSON array of message objects.
func appendConsumed(b []byte, msgs []consume.Message) []byte {
	b = append(b, '[')
	for i := range msgs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendConsumedMessage(b, &msgs[i])
	}
	return append(b, ']')
}

// appendConsumedMessage appends one message object.
func appendConsumedMessage(b []byte, m *consume.Message) []byte {
	b = append(b, '{')
	if m.Key != nil {
		b = appendBytesField(b, `"key":`, `"key_base64":`, m.Key)
		b = append(b, ',')
	}
	b = appendBytesField(b, `"value":`, `"value_base64":`, m.Value)
	b = appendReadFrom(b, m.Headers, m.Tags, m.Offset, m.Qid, m.Timestamp)
	b = append(b, `,"attempt":`...)
	b = strconv.AppendInt(b, int64(m.Attempt), 10)
	return append(b, '}')
}

// appendReadFrom appends the members after a message's value: its
// headers and tags when it has them, and where it was read.
func appendReadFrom(b []byte, headers []sdk.Header, tags string, offset int64, qid string, ts time.Time) []byte {
	if len(headers) > 0 {
		b = appendHeaders(b, headers)
	}
	if tags != "" {
		b = append(b, `,"tags":`...)
		b = appendJSONString(b, tags, false)
	}
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, offset, 10)
	b = append(b, `,"qid":`...)
	b = appendJSONString(b, qid, false)
	b = append(b, `,"timestamp_ms":`...)
	return strconv.AppendInt(b, unixMs(ts), 10)
}

// appendBytesField appends v as the text member text when it is valid
// UTF-8, else as the member b64 holding its standard base64.
func appendBytesField(b []byte, text, b64 string, v []byte) []byte {
	if utf8.Valid(v) {
		b = append(b, text...)
		return appendJSONString(b, v, false)
	}
	b = append(b, b64...)
	return appendBase64String(b, v)
}

// appendHeaders appends the member headers, or headers_base64 when a value
// is not valid UTF-8: one object in the headers' order, a repeated name
// repeated. Names and text values escape <, > and & as \u003c, \u003e and
// \u0026, as the encoder before this one did.
func appendHeaders(b []byte, headers []sdk.Header) []byte {
	text := true
	for _, h := range headers {
		if !utf8.Valid(h.Value) {
			text = false
			break
		}
	}
	if text {
		b = append(b, `,"headers":{`...)
	} else {
		b = append(b, `,"headers_base64":{`...)
	}
	for i, h := range headers {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, h.Key, true)
		b = append(b, ':')
		if text {
			b = appendJSONString(b, h.Value, true)
		} else {
			b = appendBase64String(b, h.Value)
		}
	}
	return append(b, '}')
}
