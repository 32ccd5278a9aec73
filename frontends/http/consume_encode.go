package httpapi

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/mqgate/mqgate/core/consume"
)

// The consume routes' answers are appended straight into a pooled buffer
// rather than built as structs for encoding/json: at 100 messages of 1 KiB
// a pull, reflection and the escaping pass over every value were a quarter
// of the gateway's CPU. The bytes are those encoding/json wrote through
// gin's PureJSON before (consume_encode_test.go holds them equal): the same
// fields in the same order, the same escapes, and a final newline.
//
// A message object is
//
//	{"key" | "key_base64", "value" | "value_base64", "headers" | "headers_base64",
//	 "tags", "offset", "qid", "timestamp_ms", "attempt"}
//
// with key absent when the message has none, key_base64, value_base64 and
// headers_base64 (values in base64) used when the bytes are not valid
// UTF-8, headers absent when there are none and tags when it is empty.

// jsonContentType is the Content-Type of every JSON answer, as gin's
// PureJSON sets it.
const jsonContentType = "application/json; charset=utf-8"

// maxPooledAnswer is the largest buffer put back into answerBuffers: a rare
// huge answer is left to the collector rather than kept for every request.
const maxPooledAnswer = 4 << 20

// answerBuffers holds the buffers answers are encoded into.
var answerBuffers = sync.Pool{New: func() any {
	b := make([]byte, 0, 16<<10)
	return &b
}}

// sendAppended answers 200 with the JSON body that appendBody appends to
// the empty buffer it is given.
func sendAppended(c *gin.Context, appendBody func(b []byte) []byte) {
	bp := answerBuffers.Get().(*[]byte)
	b := appendBody((*bp)[:0])
	c.Data(http.StatusOK, jsonContentType, b)
	// c.Data has written b to the connection's buffer; it is not kept.
	if cap(b) <= maxPooledAnswer {
		*bp = b[:0]
		answerBuffers.Put(bp)
	}
}

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
	if len(m.Headers) > 0 {
		b = appendHeaders(b, m)
	}
	if m.Tags != "" {
		b = append(b, `,"tags":`...)
		b = appendJSONString(b, m.Tags, false)
	}
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, m.Offset, 10)
	b = append(b, `,"qid":`...)
	b = appendJSONString(b, m.Qid, false)
	b = append(b, `,"timestamp_ms":`...)
	b = strconv.AppendInt(b, unixMs(m.Timestamp), 10)
	b = append(b, `,"attempt":`...)
	b = strconv.AppendInt(b, int64(m.Attempt), 10)
	return append(b, '}')
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
func appendHeaders(b []byte, m *consume.Message) []byte {
	text := true
	for _, h := range m.Headers {
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
	for i, h := range m.Headers {
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

// appendBase64String appends v in standard base64 as a JSON string; its
// alphabet needs no escapes.
func appendBase64String(b []byte, v []byte) []byte {
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, v)
	return append(b, '"')
}

// jsonSafe marks the ASCII bytes a JSON string holds as they are: all but
// control characters, '"' and '\\'. jsonHTMLSafe also leaves out <, > and &.
var jsonSafe, jsonHTMLSafe = func() (safe, html [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		safe[c] = c != '"' && c != '\\'
		html[c] = safe[c] && c != '<' && c != '>' && c != '&'
	}
	return safe, html
}()

// appendJSONString appends s as a JSON string with encoding/json's escapes:
// \" \\ \b \f \n \r \t, other control characters as \u00XX, U+2028 and
// U+2029 as \u2028 and \u2029, each invalid UTF-8 byte as \ufffd, and with
// escapeHTML <, > and & as \u003c, \u003e and \u0026.
func appendJSONString[T string | []byte](b []byte, s T, escapeHTML bool) []byte {
	const hex = "0123456789abcdef"
	safe := &jsonSafe
	if escapeHTML {
		safe = &jsonHTMLSafe
	}
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if !escapeHTML {
			i = skipPlainWords(s, i)
			if i == len(s) {
				break
			}
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if safe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		// At most utf8.UTFMax bytes converted: a string that small stays
		// on the stack.
		r, size := utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))]))
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// skipPlainWords returns the index of the first 8-byte word of s from i on
// that holds a byte appendJSONString may not copy as it is (a control
// character, '"', '\\' or a byte of a multi-byte character), or of the
// last bytes, fewer than 8. Values are mostly plain text: testing a word at
// a time rather than a byte at a time is most of the encoder's speed.
func skipPlainWords[T string | []byte](s T, i int) int {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	for ; i+8 <= len(s); i += 8 {
		w := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		// (x - ones*n) &^ x & highs is not zero exactly when a byte of x
		// is below n (n <= 0x80); x is w, and w with '"' or '\\' turned
		// into zero bytes.
		quote, backslash := w^(ones*'"'), w^(ones*'\\')
		if (w-ones*0x20)&^w&highs|(quote-ones)&^quote&highs|(backslash-ones)&^backslash&highs|w&highs != 0 {
			return i
		}
	}
	return i
}
