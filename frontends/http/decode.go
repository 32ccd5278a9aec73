package httpapi

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/mqgate/mqgate/core/delay"
	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/sdk"
)

// messageFields are the fields a message object may carry, in the order
// decodeMessage checks them.
var messageFields = []string{"key", "value", "value_base64", "headers", "tags", "partition", "hash_id"}

// delayFields are the fields a delayed message object carries besides
// messageFields (decodeDelayed).
var delayFields = []string{"delay_ms", "deliver_at_ms", "id", "loop"}

// knownNames are the member names fieldName returns without allocating:
// messageFields, then delayFields, then the batch's "messages". A field's
// index here is its bit in messageBuilder.seen.
var knownNames = slices.Concat(messageFields, delayFields, []string{"messages"})

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
	return decodeMessagesWithin(body, bodyLimits{})
}

// decodeMessagesWithin is decodeMessages within lim: past
// lim.maxMessages messages it keeps reading, to check the rest and count
// them, without keeping them, and answers code 16 with the count; headers
// whose decoded form would take more than lim.maxDecoded end it with code
// 16 at once; what the headers take is charged through lim.reserve.
func decodeMessagesWithin(body []byte, lim bodyLimits) ([]produce.Message, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, illegalf("request body is empty; want a message object or {\"messages\": [...]}")
	}
	d := borrowBodyDecoder(body)
	defer d.giveBack()
	d.lim = lim
	msgs, err := d.top()
	if err != nil {
		return nil, d.explain(err)
	}
	return msgs, d.withinLimits()
}

// add appends m, message index of a batch, to msgs, unless the batch holds
// more than lim.maxMessages: then it is only counted.
func (d *bodyDecoder) add(msgs []produce.Message, m produce.Message) []produce.Message {
	d.messages++
	if d.lim.maxMessages > 0 && d.messages > d.lim.maxMessages {
		return msgs
	}
	return append(msgs, m)
}

// withinLimits is the error for a batch of more messages than allowed, and
// charges what the decoded headers take.
func (d *bodyDecoder) withinLimits() error {
	if d.lim.maxMessages > 0 && d.messages > d.lim.maxMessages {
		return sdk.Errorf(sdk.CodeTooLarge, "%d messages exceed http.max_batch_messages (%d)", d.messages, d.lim.maxMessages)
	}
	if d.lim.reserve != nil && d.headers > 0 {
		return d.lim.reserve(int64(d.headers) * headerBytes)
	}
	return nil
}

// addHeader counts a decoded header, and refuses it when the headers
// decoded so far take more than lim.maxDecoded.
func (d *bodyDecoder) addHeader() error {
	d.headers++
	if size := int64(d.headers) * headerBytes; d.lim.maxDecoded > 0 && size > d.lim.maxDecoded {
		return sdk.Errorf(sdk.CodeTooLarge, "the messages hold more than %d headers in all: %d bytes once decoded, over http.max_body_bytes (%d)",
			d.headers-1, size, d.lim.maxDecoded)
	}
	return nil
}

// bodyLimits bound what a produce body may decode into, whatever its
// format.
type bodyLimits struct {
	// maxMessages is http.max_batch_messages.
	maxMessages int
	// maxDecoded is http.max_body_bytes: the most the decoded headers may
	// take, beyond the body they alias.
	maxDecoded int64
	// reserve, when set, charges what the decoded headers take to the
	// bodies' budget (a protobuf body before they are allocated, a JSON
	// one, which is read once, after).
	reserve func(n int64) error
}

// headerBytes is what one decoded header takes besides its bytes.
const headerBytes = int64(unsafe.Sizeof(sdk.Header{}))

// bodyDecoder walks one request body.
type bodyDecoder struct {
	body []byte
	dec  *jsontext.Decoder
	// isBatch is set once the body turned out to be {"messages": [...]}.
	isBatch bool
	// delay, when not nil, makes the decoder accept delayFields and collect
	// what they say (decodeDelayed).
	delay *delayDecoding
	// lines is set for an NDJSON body, whose message objects are named by
	// line ("line 3: key") rather than by index ("messages[2].key").
	lines bool
	// lim bounds what the body decodes into; messages and headers count
	// what was decoded against it.
	lim      bodyLimits
	messages int
	headers  int
}

func newBodyDecoder(body []byte) *bodyDecoder {
	// Over a *bytes.Buffer the tokenizer reads body in place, so the values
	// it returns alias body rather than an internal buffer.
	return &bodyDecoder{body: body, dec: jsontext.NewDecoder(bytes.NewBuffer(body), jsontext.AllowDuplicateNames(true))}
}

// bodyDecoders holds the decoders of produce bodies between requests: a
// tokenizer's state takes five allocations to make afresh.
var bodyDecoders = sync.Pool{New: func() any {
	return &bodyDecoder{dec: jsontext.NewDecoder(noBody, jsontext.AllowDuplicateNames(true))}
}}

// borrowBodyDecoder is newBodyDecoder from bodyDecoders; giveBack returns
// it. Nothing decoded refers to a decoder: values alias the body or are
// new memory, and names are strings of their own.
func borrowBodyDecoder(body []byte) *bodyDecoder {
	d := bodyDecoders.Get().(*bodyDecoder)
	d.dec.Reset(bytes.NewBuffer(body), jsontext.AllowDuplicateNames(true))
	*d = bodyDecoder{body: body, dec: d.dec}
	return d
}

// noBody is what a decoder in bodyDecoders reads: nothing, and no body.
var noBody = new(bytes.Buffer)

// giveBack returns a decoder to bodyDecoders, holding no body.
func (d *bodyDecoder) giveBack() {
	d.dec.Reset(noBody)
	*d = bodyDecoder{dec: d.dec}
	bodyDecoders.Put(d)
}

// isField reports whether name is a field of a message object in this body.
func (d *bodyDecoder) isField(name string) bool {
	return slices.Contains(messageFields, name) || d.delay != nil && slices.Contains(delayFields, name)
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

// fieldName reads a message object's member name as name does, returning
// a member of knownNames rather than a new string when it is one: most of
// a body's names are.
func (d *bodyDecoder) fieldName() (string, bool, error) {
	k, err := d.peek()
	if err != nil {
		return "", false, err
	}
	if k == '}' {
		_, err := d.dec.ReadToken()
		return "", false, err
	}
	raw, err := d.dec.ReadValue()
	if err != nil {
		return "", false, err
	}
	name := raw[1 : len(raw)-1]
	if bytes.IndexByte(raw, '\\') >= 0 {
		if name, err = jsontext.AppendUnquote(nil, raw); err != nil {
			return "", false, err
		}
	}
	for _, known := range knownNames {
		if string(name) == known {
			return known, true, nil
		}
	}
	return string(name), true, nil
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
	single := messageBuilder{d: d, index: -1}
	var batch []produce.Message
	sawMessages := false
	firstField := "" // the first message field at the top level
	for {
		name, ok, err := d.fieldName()
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
			sawMessages, d.isBatch = true, true
			if batch, err = d.batch(); err != nil {
				return nil, err
			}
		case d.isField(name):
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
		if k != '{' {
			return nil, d.wrongType("messages[%d]: must be a message object", i)
		}
		m, err := d.object(i)
		if err != nil {
			return nil, err
		}
		msgs = d.add(msgs, m)
	}
	if len(msgs) == 0 {
		return nil, illegalf("messages: must not be empty")
	}
	return msgs, nil
}

// object decodes message object index of a batch (its line in NDJSON).
func (d *bodyDecoder) object(index int) (produce.Message, error) {
	if _, err := d.dec.ReadToken(); err != nil { // the '{' peeked by the caller
		return produce.Message{}, err
	}
	b := messageBuilder{d: d, index: index}
	for {
		name, ok, err := d.fieldName()
		if err != nil {
			return produce.Message{}, err
		}
		if !ok {
			return b.finish()
		}
		if !d.isField(name) {
			return produce.Message{}, illegalf("%s: unknown field %q", b.path(), name)
		}
		if err := b.field(name); err != nil {
			return produce.Message{}, err
		}
	}
}

// messageBuilder collects the fields of one message object.
type messageBuilder struct {
	d *bodyDecoder
	// index is the message's in a batch, its line in NDJSON, -1 for a
	// single message.
	index int
	m     produce.Message
	// seen has bit i set once knownNames[i] was given.
	seen   uint16
	value  bool // value or value_base64 was given
	inited bool
	// due is the delay field given (delay_ms or deliver_at_ms), "" for
	// none; dueMs its value.
	due   string
	dueMs int64
	id    string
	loop  *loopFields
}

// path names the message in errors: "messages[2]", "line 3", or "" for a
// single message.
func (b *messageBuilder) path() string {
	switch {
	case b.index < 0:
		return ""
	case b.d.lines:
		return "line " + strconv.Itoa(b.index)
	}
	return "messages[" + strconv.Itoa(b.index) + "]"
}

// name names field of the message in errors.
func (b *messageBuilder) name(field string) string {
	switch {
	case b.index < 0:
		return field
	case b.d.lines:
		return b.path() + ": " + field
	}
	return b.path() + "." + field
}

// field decodes the value of field, the next value in the body.
func (b *messageBuilder) field(field string) error {
	if !b.inited {
		b.m.Partition, b.inited = sdk.PartitionHash, true
	}
	bit := uint16(1) << slices.Index(knownNames, field)
	if b.seen&bit != 0 {
		return illegalf("%s: given twice", b.name(field))
	}
	b.seen |= bit
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
		p, err := b.int(raw, 32, field)
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
		h, err := b.int(raw, 64, field)
		if err != nil {
			return err
		}
		b.m.HashID = &h
	case "delay_ms", "deliver_at_ms":
		if b.due != "" {
			return illegalf("%s: not allowed together with %s; send exactly one of the two", b.name(field), b.due)
		}
		raw, err := b.d.dec.ReadValue()
		if err != nil {
			return err
		}
		ms, err := b.int(raw, 64, field)
		if err != nil {
			return err
		}
		if ms < 0 {
			if field == "delay_ms" {
				return illegalf("%s: must be >= 0; got %d", b.name(field), ms)
			}
			return illegalf("%s: must be >= 0 (milliseconds since the epoch); got %d", b.name(field), ms)
		}
		b.due, b.dueMs = field, ms
	case "id":
		s, err := b.str(k, field)
		if err != nil {
			return err
		}
		if len(s) == 0 {
			return illegalf("%s: must not be empty; leave it out to have one generated", b.name(field))
		}
		b.id = string(s)
	case "loop":
		l, err := b.loopObject(k)
		if err != nil {
			return err
		}
		b.loop = l
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
// returned in place, aliasing the request body, clipped so that an
// append copies it (the body's buffer is reused once the produce has let
// go of its messages: recycleBody); others are unquoted into new memory.
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
		if err := b.d.addHeader(); err != nil {
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
		return b.m, b.required("value or value_base64 is required")
	}
	if b.d.delay != nil {
		if err := b.finishDelay(); err != nil {
			return b.m, err
		}
	}
	return b.m, nil
}

// required reports a missing field of the message: msg, after the
// message's path in a batch.
func (b *messageBuilder) required(msg string) error {
	if b.index < 0 {
		return illegalf("%s", msg)
	}
	return illegalf("%s: %s", b.path(), msg)
}

// int decodes raw, the value of field, as decodeInt does, naming the
// field only when it fails.
func (b *messageBuilder) int(raw []byte, bits int, field string) (int64, error) {
	if n, err := strconv.ParseInt(string(raw), 10, bits); err == nil {
		return n, nil
	}
	return decodeInt(raw, bits, b.name(field))
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

// maxDurationMs is the largest count of milliseconds a time.Duration holds.
const maxDurationMs = int64(math.MaxInt64 / time.Millisecond)

// delayDecoding is what decodeDelayed collects besides the messages.
type delayDecoding struct {
	now time.Time     // delay_ms counts from it
	max time.Duration // the longest delay accepted
	// msgs holds one delayed message per message object, in body order.
	msgs []delay.Message
}

// decodeDelayed decodes a POST /v1/topics/:topic/delayed body: one
// delayed message object, or {"messages": [...]} holding at least one. A
// delayed message object is a message object (decodeMessages's rules)
// plus exactly one of "delay_ms" (>= 0, counted from now) and
// "deliver_at_ms" (milliseconds since the epoch), an optional "id" and an
// optional "loop": {"interval_ms": I, "times": N, "expire_at_ms": E}.
//
// batch reports whether the body was {"messages": [...]}. The messages
// have no Topic. Every error is an *sdk.Error with CodeIllegal naming the
// field; a due time more than max after now is one. The loop's own rules
// are left to (*delay.Message).Validate.
func decodeDelayed(body []byte, now time.Time, max time.Duration) (msgs []delay.Message, batch bool, err error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, false, illegalf("request body is empty; want a delayed message object or {\"messages\": [...]}")
	}
	d := newBodyDecoder(body)
	d.delay = &delayDecoding{now: now, max: max}
	if _, err := d.top(); err != nil {
		return nil, false, d.explain(err)
	}
	return d.delay.msgs, d.isBatch, nil
}

// loopFields are the fields of a delayed message's "loop" object.
type loopFields struct {
	interval   time.Duration
	times      int64
	expireAtMs int64
	expireSet  bool
}

// loopFieldNames are the fields a loop object may carry.
var loopFieldNames = []string{"interval_ms", "times", "expire_at_ms"}

// loopObject decodes the value of "loop", an object of integers. Absent
// or null members stay zero, for Validate to refuse by name.
func (b *messageBuilder) loopObject(k jsontext.Kind) (*loopFields, error) {
	name := b.name("loop")
	if k != '{' {
		return nil, b.d.wrongType(`%s: must be an object: {"interval_ms": I, "times": N, "expire_at_ms": E}`, name)
	}
	if _, err := b.d.dec.ReadToken(); err != nil {
		return nil, err
	}
	l := &loopFields{}
	var seen []string
	for {
		key, ok, err := b.d.name()
		if err != nil {
			return nil, err
		}
		if !ok {
			return l, nil
		}
		field := name + "." + key
		if !slices.Contains(loopFieldNames, key) {
			return nil, illegalf("%s: unknown field %q", name, key)
		}
		if slices.Contains(seen, key) {
			return nil, illegalf("%s: given twice", field)
		}
		seen = append(seen, key)
		k, err := b.d.peek()
		if err != nil {
			return nil, err
		}
		if k == 'n' { // null: as if absent
			if _, err := b.d.dec.ReadToken(); err != nil {
				return nil, err
			}
			continue
		}
		raw, err := b.d.dec.ReadValue()
		if err != nil {
			return nil, err
		}
		n, err := decodeInt(raw, 64, field)
		if err != nil {
			return nil, err
		}
		switch key {
		case "interval_ms":
			if n > maxDurationMs {
				return nil, illegalf("%s: %d is out of range; at most %d", field, n, maxDurationMs)
			}
			l.interval = time.Duration(n) * time.Millisecond
		case "times":
			l.times = n
		case "expire_at_ms":
			l.expireAtMs, l.expireSet = n, true
		}
	}
}

// finishDelay resolves the delay fields of a finished message object into
// a delay.Message.
func (b *messageBuilder) finishDelay() error {
	dd := b.d.delay
	var due time.Time
	switch b.due {
	case "":
		return b.required("delay_ms or deliver_at_ms is required")
	case "delay_ms":
		wait := time.Duration(math.MaxInt64) // beyond any max
		if b.dueMs <= maxDurationMs {
			wait = time.Duration(b.dueMs) * time.Millisecond
		}
		if wait > dd.max {
			return illegalf("%s: %d is beyond delay.max (%s)", b.name(b.due), b.dueMs, dd.max)
		}
		due = dd.now.Add(wait)
	case "deliver_at_ms":
		due = time.UnixMilli(b.dueMs)
		if ahead := due.Sub(dd.now); ahead > dd.max {
			return illegalf("%s: %d is %s from now, beyond delay.max (%s)", b.name(b.due), b.dueMs, ahead.Round(time.Second), dd.max)
		}
	}
	m := delay.Message{ID: b.id, Msg: b.m, DueAt: due}
	if l := b.loop; l != nil {
		m.Loop = &delay.Loop{Interval: l.interval, Times: l.times}
		if l.expireSet {
			m.Loop.Expire = time.UnixMilli(l.expireAtMs)
		}
	}
	dd.msgs = append(dd.msgs, m)
	return nil
}
