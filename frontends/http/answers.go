package httpapi

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
)

// Answers sent often (produce results, consumed messages) are appended
// into pooled buffers with the functions here instead of going through
// encoding/json: they write what encoding/json writes, without reflection.

// jsonContentType is the Content-Type of every JSON answer, as gin's
// PureJSON sets it.
const jsonContentType = "application/json; charset=utf-8"

// chunkingAnswerBytes is the largest answer to which net/http adds a
// Content-Length itself: it buffers that much of an answer before it
// starts sending it, in chunks unless the handler set the length.
const chunkingAnswerBytes = 2048

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
	sendAppendedAs(c, jsonContentType, appendBody)
}

// The header values of the answers' content types, made once. A header
// map shares them: net/http copies a map's values when it clones it, and
// Header.Add and Set make new ones.
var (
	jsonContentTypeValue     = []string{jsonContentType}
	protobufContentTypeValue = []string{protobufContentType}
)

func contentTypeValue(ctype string) []string {
	switch ctype {
	case jsonContentType:
		return jsonContentTypeValue
	case protobufContentType:
		return protobufContentTypeValue
	}
	return []string{ctype}
}

// sendAppendedAs is sendAppended with the Content-Type ctype.
func sendAppendedAs(c *gin.Context, ctype string, appendBody func(b []byte) []byte) {
	bp := answerBuffers.Get().(*[]byte)
	b := appendBody((*bp)[:0])
	// What gin's c.Data does, without making the header's value for each
	// answer.
	h := c.Writer.Header()
	if len(h["Content-Type"]) == 0 {
		h["Content-Type"] = contentTypeValue(ctype)
	}
	if len(b) > chunkingAnswerBytes {
		// Said, or net/http sends the answer in chunks, which every
		// client then reassembles into a buffer grown as it goes.
		h["Content-Length"] = []string{strconv.Itoa(len(b))}
	}
	c.Status(http.StatusOK)
	if _, err := c.Writer.Write(b); err != nil {
		_ = c.Error(err)
		c.Abort()
	}
	// b has been written to the connection's buffer; it is not kept.
	if cap(b) <= maxPooledAnswer {
		*bp = b[:0]
		answerBuffers.Put(bp)
	}
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
