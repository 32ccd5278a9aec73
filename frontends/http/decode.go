package httpapi

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/sdk"
)

// messageFields are the fields a message object may carry, in the order
// decodeMessage checks them.
var messageFields = []string{"key", "value", "value_base64", "headers", "tags", "partition", "hash_id"}

// decodeMessages decodes a produce request body: one message object, or
// {"messages": [...]} holding at least one. Every error is an *sdk.Error;
// one the client caused has CodeIllegal and a message naming the offending
// field (with its index in a batch) or the position of a JSON syntax error.
//
// Decoding is strict: field names match exactly (no case folding), unknown
// or repeated fields are errors, strings must be valid UTF-8 (nothing is
// silently replaced), and a JSON null counts as an absent field. Every
// returned message has a non-nil Value (empty when the client sent ""); Key
// is nil only when the client sent no key; headers keep the order of the
// JSON object, repeats included.
//
// It reads the body once, token by token: the bulk of a request is message
// values, and each is validated and unquoted in a single pass.
func decodeMessages(body []byte) ([]produce.Message, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, illegalf("request body is empty; want a message object or {\"messages\": [...]}")
	}
	// Over a *bytes.Buffer the tokenizer reads body in place, so the values
	// it returns alias body rather than an internal buffer.
	d := &bodyDecoder{body: body, dec: jsontext.NewDecoder(bytes.NewBuffer(body), jsontext.AllowDuplicateNames(true))}
	msgs, err := d.top()
	if err != nil {
		return nil, d.explain(err)
	}
	return msgs, nil
}

// bodyDecoder walks one request body.
type bodyDecoder struct {
	body []byte
	dec  *jsontext.Decoder
}

// explain turns a syntax error from the tokenizer into code 11 with its
// line and column; errors that are already *sdk.Error pass through.
func (d *bodyDecoder) explain(err error) error {
	var e *sdk.Error
	if errors.As(err, &e) {
		return e
	}
	at := int64(len(d.body))
	var syn *jsontext.SyntacticError
	if errors.As(err, &syn) {
		at = syn.ByteOffset
		if syn.Err != nil {
			err = syn.Err // the position is ours to say
		}
	}
	return d.malformed(at, err)
}

func (d *bodyDecoder) malformed(at int64, err error) error {
	at = min(max(at, 0), int64(len(d.body)))
	before := d.body[:at]
	line := 1 + bytes.Count(before, []byte{'\n'})
	col := int(at) - bytes.LastIndexByte(before, '\n')
	msg := strings.TrimPrefix(err.Error(), "jsontext: ")
	return illegalf("malformed JSON at line %d, column %d (byte offset %d): %s", line, col, at, msg)
}

// peek returns the kind of the next value, or the syntax error that stops
// the tokenizer there.
func (d *bodyDecoder) peek() (jsontext.Kind, error) {
	if k := d.dec.PeekKind(); k != 0 {
		return k, nil
	}
	if _, err := d.dec.ReadToken(); err != nil {
		return 0, err
	}
	return 0, io.ErrUnexpectedEOF
}

// wrongType reports a value of the wrong type, once the value has been read
// in full: a value that is not even valid JSON is a syntax error first.
func (d *bodyDecoder) wrongType(format string, args ...any) error {
	if _, err := d.dec.ReadValue(); err != nil {
		return err
	}
	return illegalf(format, args...)
}

// name reads an object member's name, or reports the end of the object.
func (d *bodyDecoder) name() (string, bool, error) {
	k, err := d.peek()
	if err != nil {
		return "", false, err
	}
	tok, err := d.dec.ReadToken()
	if err != nil {
		return "", false, err
	}
	if k == '}' {
		return "", false, nil
	}
	return tok.String(), true, nil
}

func (d *bodyDecoder) top() ([]produce.Message, error) {
	k, err := d.peek()
	if err != nil {
		return nil, err
	}
	if k != '{' {
		return nil, d.wrongType("request body must be a JSON object: a message or {\"messages\": [...]}")
	}
	if _, err := d.dec.ReadToken(); err != nil {
		return nil, err
	}
	single := messageBuilder{d: d}
	var batch []produce.Message
	sawMessages := false
	firstField := "" // the first message field at the top level
	for {
		name, ok, err := d.name()
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		switch {
		case name == "messages":
			if sawMessages {
				return nil, illegalf("messages: given twice")
			}
			if firstField != "" {
				return nil, combinedWithMessages(firstField)
			}
			sawMessages = true
			if batch, err = d.batch(); err != nil {
				return nil, err
			}
		case slices.Contains(messageFields, name):
			if sawMessages {
				return nil, combinedWithMessages(name)
			}
			if firstField == "" {
				firstField = name
			}
			if err := single.field(name); err != nil {
				return nil, err
			}
		default:
			return nil, illegalf("unknown field %q", name)
		}
	}
	if rest := bytes.TrimLeft(d.body[d.dec.InputOffset():], " \t\r\n"); len(rest) > 0 {
		return nil, d.malformed(int64(len(d.body)-len(rest)), errors.New("unexpected data after the top-level object"))
	}
	if sawMessages {
		return batch, nil
	}
	m, err := single.finish()
	if err != nil {
		return nil, err
	}
	return []produce.Message{m}, nil
}

func combinedWithMessages(field string) error {
	return illegalf("%s: a message field cannot be combined with messages; send one message or {\"messages\": [...]}", field)
}

func (d *bodyDecoder) batch() ([]produce.Message, error) {
	k, err := d.peek()
	if err != nil {
		return nil, err
	}
	if k != '[' {
		return nil, d.wrongType("messages: must be a non-empty array of message objects")
	}
	if _, err := d.dec.ReadToken(); err != nil {
		return nil, err
	}
	var msgs []produce.Message
	for i := 0; ; i++ {
		k, err := d.peek()
		if err != nil {
			return nil, err
		}
		if k == ']' {
			if _, err := d.dec.ReadToken(); err != nil {
				return nil, err
			}
			break
		}
		path := "messages[" + strconv.Itoa(i) + "]"
		if k != '{' {
			return nil, d.wrongType("%s: must be a message object", path)
		}
		m, err := d.object(path)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, m)
	}
	if len(msgs) == 0 {
		return nil, illegalf("messages: must not be empty")
	}
	return msgs, nil
}

// object decodes one message object of a batch.
func (d *bodyDecoder) object(path string) (produce.Message, error) {
	if _, err := d.dec.ReadToken(); err != nil { // the '{' peeked by the caller
		return produce.Message{}, err
	}
	b := messageBuilder{d: d, path: path}
	for {
		name, ok, err := d.name()
		if err != nil {
			return produce.Message{}, err
		}
		if !ok {
			return b.finish()
		}
		if !slices.Contains(messageFields, name) {
			return produce.Message{}, illegalf("%s: unknown field %q", path, name)
		}
		if err := b.field(name); err != nil {
			return produce.Message{}, err
		}
	}
}

// messageBuilder collects the fields of one message object.
type messageBuilder struct {
	d      *bodyDecoder
	path   string // "" for a single message
	m      produce.Message
	seen   []string
	value  bool // value or value_base64 was given
	inited bool
}

func (b *messageBuilder) name(field string) string {
	if b.path == "" {
		return field
	}
	return b.path + "." + field
}

// field decodes the value of field, the next value in the body.
func (b *messageBuilder) field(field string) error {
	if !b.inited {
		b.m.Partition, b.inited = sdk.PartitionHash, true
	}
	if slices.Contains(b.seen, field) {
		return illegalf("%s: given twice", b.name(field))
	}
	b.seen = append(b.seen, field)
	k, err := b.d.peek()
	if err != nil {
		return err
	}
	if k == 'n' { // null: as if absent
		_, err := b.d.dec.ReadToken()
		return err
	}
	switch field {
	case "key":
		s, err := b.str(k, field)
		if err != nil {
			return err
		}
		b.m.Key = s
	case "value", "value_base64":
		if b.value {
			return illegalf("%s: not allowed together with %s; send exactly one of the two", b.name(field), otherValue(field))
		}
		s, err := b.str(k, field)
		if err != nil {
			return err
		}
		if field == "value_base64" {
			v := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
			n, err := base64.StdEncoding.Decode(v, s)
			if err != nil {
				return illegalf("%s: not standard padded base64: %v", b.name(field), err)
			}
			s = v[:n]
		}
		b.m.Value, b.value = s, true
	case "headers":
		h, err := b.headers(k)
		if err != nil {
			return err
		}
		b.m.Headers = h
	case "tags":
		s, err := b.str(k, field)
		if err != nil {
			return err
		}
		b.m.Tags = string(s)
	case "partition":
		raw, err := b.d.dec.ReadValue()
		if err != nil {
			return err
		}
		p, err := decodeInt(raw, 32, b.name(field))
		if err != nil {
			return err
		}
		if p < int64(sdk.PartitionRandom) {
			return illegalf("%s: must be -1 (by hash), -2 (random) or a partition >= 0; got %d", b.name(field), p)
		}
		b.m.Partition = int32(p)
	case "hash_id":
		raw, err := b.d.dec.ReadValue()
		if err != nil {
			return err
		}
		h, err := decodeInt(raw, 64, b.name(field))
		if err != nil {
			return err
		}
		b.m.HashID = &h
	}
	return nil
}

func otherValue(field string) string {
	if field == "value" {
		return "value_base64"
	}
	return "value"
}

// str reads a JSON string value (never nil). A string without escapes is
// returned in place, aliasing the request body, which is read once per
// request and never reused; others are unquoted into new memory.
func (b *messageBuilder) str(k jsontext.Kind, field string) ([]byte, error) {
	if k != '"' {
		return nil, b.d.wrongType("%s: must be a string", b.name(field))
	}
	raw, err := b.d.dec.ReadValue()
	if err != nil {
		return nil, err
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		// ReadValue has checked it is a valid string: quotes around UTF-8.
		n := len(raw) - 1
		return raw[1:n:n], nil
	}
	s, err := jsontext.AppendUnquote(make([]byte, 0, len(raw)), raw)
	if err != nil {
		return nil, illegalf("%s: %v", b.name(field), err)
	}
	return nonNil(s), nil
}

// headers decodes a JSON object of string values into headers in
// document order, keeping repeated names.
func (b *messageBuilder) headers(k jsontext.Kind) ([]sdk.Header, error) {
	name := b.name("headers")
	if k != '{' {
		return nil, b.d.wrongType("%s: must be an object of string values", name)
	}
	if _, err := b.d.dec.ReadToken(); err != nil {
		return nil, err
	}
	var headers []sdk.Header
	for {
		key, ok, err := b.d.name()
		if err != nil {
			return nil, err
		}
		if !ok {
			return headers, nil
		}
		k, err := b.d.peek()
		if err != nil {
			return nil, err
		}
		if k != '"' {
			return nil, b.d.wrongType("%s[%q]: must be a string", name, key)
		}
		v, err := b.str(k, "")
		if err != nil {
			return nil, err
		}
		headers = append(headers, sdk.Header{Key: key, Value: v})
	}
}

func (b *messageBuilder) finish() (produce.Message, error) {
	if !b.inited {
		b.m.Partition = sdk.PartitionHash
	}
	if !b.value {
		if b.path == "" {
			return b.m, illegalf("value or value_base64 is required")
		}
		return b.m, illegalf("%s: value or value_base64 is required", b.path)
	}
	return b.m, nil
}

// decodeInt decodes raw as a JSON integer that fits in bits bits.
func decodeInt(raw []byte, bits int, name string) (int64, error) {
	if raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
		return 0, illegalf("%s: must be an integer", name)
	}
	n, err := strconv.ParseInt(string(raw), 10, bits)
	if errors.Is(err, strconv.ErrRange) {
		return 0, illegalf("%s: %s is out of range for a %d-bit integer", name, short(raw), bits)
	}
	if err != nil {
		return 0, illegalf("%s: must be an integer; got %s", name, short(raw))
	}
	return n, nil
}

// short returns raw for an error message, cut to a readable length.
func short(raw []byte) string {
	const limit = 40
	if len(raw) > limit {
		return string(raw[:limit]) + "..."
	}
	return string(raw)
}

func illegalf(format string, args ...any) *sdk.Error {
	return sdk.Errorf(sdk.CodeIllegal, format, args...)
}

// nonNil returns b, or an empty non-nil slice for an empty b, so that an
// empty value or key stays distinguishable from an absent one.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
