package httpapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

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
// fields are errors, and a JSON null counts as an absent field. Every
// returned message has a non-nil Value (empty when the client sent ""); Key
// is nil only when the client sent no key; headers keep the order of the
// JSON object, repeats included.
func decodeMessages(body []byte) ([]produce.Message, error) {
	top, err := decodeTopObject(body)
	if err != nil {
		return nil, err
	}
	rawBatch, isBatch := top["messages"]
	if !isBatch {
		m, err := decodeMessage(top, "")
		if err != nil {
			return nil, err
		}
		return []produce.Message{m}, nil
	}
	for _, k := range sortedKeys(top) {
		switch {
		case k == "messages":
		case slices.Contains(messageFields, k):
			return nil, illegalf("%s: a message field cannot be combined with messages; send one message or {\"messages\": [...]}", k)
		default:
			return nil, illegalf("unknown field %q", k)
		}
	}
	if isNull(rawBatch) || rawBatch[0] != '[' {
		return nil, illegalf("messages: must be a non-empty array of message objects")
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(rawBatch, &raws); err != nil {
		// The body is valid JSON and this value an array: unreachable.
		return nil, sdk.Errorf(sdk.CodeInternal, "decoding messages: %v", err)
	}
	if len(raws) == 0 {
		return nil, illegalf("messages: must not be empty")
	}
	msgs := make([]produce.Message, len(raws))
	for i, raw := range raws {
		path := "messages[" + strconv.Itoa(i) + "]"
		fields, err := decodeObject(raw, path)
		if err != nil {
			return nil, err
		}
		if msgs[i], err = decodeMessage(fields, path); err != nil {
			return nil, err
		}
	}
	return msgs, nil
}

// decodeTopObject parses the request body as one JSON object, reporting
// syntax errors by line, column and byte offset.
func decodeTopObject(body []byte) (map[string]json.RawMessage, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, illegalf("request body is empty; want a message object or {\"messages\": [...]}")
	}
	var syntax *json.SyntaxError
	var top map[string]json.RawMessage
	err := json.Unmarshal(body, &top)
	switch {
	case errors.As(err, &syntax):
		at, line, col := position(body, syntax.Offset)
		return nil, illegalf("malformed JSON at line %d, column %d (byte offset %d): %s", line, col, at, syntax.Error())
	case err != nil || top == nil:
		return nil, illegalf("request body must be a JSON object: a message or {\"messages\": [...]}")
	}
	return top, nil
}

// decodeObject parses raw, one element of a valid JSON document, as an
// object.
func decodeObject(raw json.RawMessage, path string) (map[string]json.RawMessage, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return nil, illegalf("%s: must be a message object", path)
	}
	return fields, nil
}

// position locates a json.SyntaxError: its Offset counts the bytes read up
// to and including the offending one. position returns that byte's 0-based
// offset and its 1-based line and column.
func position(body []byte, offset int64) (at, line, col int) {
	at = int(min(max(offset-1, 0), int64(len(body))))
	before := body[:at]
	line = 1 + bytes.Count(before, []byte{'\n'})
	col = at - bytes.LastIndexByte(before, '\n')
	return at, line, col
}

// decodeMessage builds a message from the fields of one message object;
// path prefixes field names in errors ("" for a single message).
func decodeMessage(fields map[string]json.RawMessage, path string) (produce.Message, error) {
	name := func(field string) string {
		if path == "" {
			return field
		}
		return path + "." + field
	}
	for _, k := range sortedKeys(fields) {
		if !slices.Contains(messageFields, k) {
			if path == "" {
				return produce.Message{}, illegalf("unknown field %q", k)
			}
			return produce.Message{}, illegalf("%s: unknown field %q", path, k)
		}
	}
	present := func(field string) (json.RawMessage, bool) {
		raw, ok := fields[field]
		return raw, ok && !isNull(raw)
	}

	m := produce.Message{Partition: sdk.PartitionHash}
	if raw, ok := present("key"); ok {
		s, err := decodeString(raw, name("key"))
		if err != nil {
			return m, err
		}
		m.Key = nonNil([]byte(s))
	}

	rawValue, hasValue := present("value")
	rawB64, hasB64 := present("value_base64")
	switch {
	case hasValue && hasB64:
		return m, illegalf("%s: not allowed together with value; send exactly one of the two", name("value_base64"))
	case hasValue:
		s, err := decodeString(rawValue, name("value"))
		if err != nil {
			return m, err
		}
		m.Value = nonNil([]byte(s))
	case hasB64:
		s, err := decodeString(rawB64, name("value_base64"))
		if err != nil {
			return m, err
		}
		v, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return m, illegalf("%s: not standard padded base64: %v", name("value_base64"), err)
		}
		m.Value = nonNil(v)
	default:
		if path == "" {
			return m, illegalf("value or value_base64 is required")
		}
		return m, illegalf("%s: value or value_base64 is required", path)
	}

	if raw, ok := present("headers"); ok {
		h, err := decodeHeaders(raw, name("headers"))
		if err != nil {
			return m, err
		}
		m.Headers = h
	}
	if raw, ok := present("tags"); ok {
		s, err := decodeString(raw, name("tags"))
		if err != nil {
			return m, err
		}
		m.Tags = s
	}
	if raw, ok := present("partition"); ok {
		p, err := decodeInt(raw, 32, name("partition"))
		if err != nil {
			return m, err
		}
		if p < int64(sdk.PartitionRandom) {
			return m, illegalf("%s: must be -1 (by hash), -2 (random) or a partition >= 0; got %d", name("partition"), p)
		}
		m.Partition = int32(p)
	}
	if raw, ok := present("hash_id"); ok {
		h, err := decodeInt(raw, 64, name("hash_id"))
		if err != nil {
			return m, err
		}
		m.HashID = &h
	}
	return m, nil
}

// decodeHeaders decodes a JSON object of string values into headers in
// document order, keeping repeated names.
func decodeHeaders(raw json.RawMessage, name string) ([]sdk.Header, error) {
	if raw[0] != '{' {
		return nil, illegalf("%s: must be an object of string values", name)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil { // the opening '{'
		return nil, illegalf("%s: %v", name, err)
	}
	var headers []sdk.Header
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, illegalf("%s: %v", name, err)
		}
		key, _ := tok.(string) // object keys are always strings
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, illegalf("%s: %v", name, err)
		}
		s, err := decodeString(v, fmt.Sprintf("%s[%q]", name, key))
		if err != nil {
			return nil, err
		}
		headers = append(headers, sdk.Header{Key: key, Value: nonNil([]byte(s))})
	}
	return headers, nil
}

// decodeString decodes raw as a JSON string.
func decodeString(raw json.RawMessage, name string) (string, error) {
	var s string
	if raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", illegalf("%s: must be a string", name)
	}
	return s, nil
}

// decodeInt decodes raw as a JSON integer that fits in bits bits.
func decodeInt(raw json.RawMessage, bits int, name string) (int64, error) {
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
func short(raw json.RawMessage) string {
	const limit = 40
	if len(raw) > limit {
		return string(raw[:limit]) + "..."
	}
	return string(raw)
}

func isNull(raw json.RawMessage) bool { return string(raw) == "null" }

// nonNil returns b, or an empty non-nil slice for an empty b, so that an
// empty value or key stays distinguishable from an absent one.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func sortedKeys(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func illegalf(format string, args ...any) *sdk.Error {
	return sdk.Errorf(sdk.CodeIllegal, format, args...)
}
