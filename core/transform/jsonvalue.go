package transform

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"sync"
	"unicode/utf8"

	gojson "github.com/goccy/go-json"
	"github.com/valyala/fastjson"
)

// jsonBuilder builds the Go value of a JSON value fastjson parsed. Each
// is reused for message after message, from builders.
type jsonBuilder struct {
	p fastjson.Parser
	// num holds the text of the number being built.
	num []byte
}

var builders = sync.Pool{New: func() any { return new(jsonBuilder) }}

// parseJSON returns v parsed as one JSON value, or nil when it is not:
// objects as map[string]any (a repeated name keeps its last value),
// arrays as []any, numbers as int when they are integers that fit and as
// float64 otherwise (json.Number, as written, beyond float64's range),
// strings with invalid UTF-8 replaced by U+FFFD. It gives what
// encoding/json with UseNumber and then numbers would; FuzzParseJSON
// holds the two to that.
//
// goccy/go-json checks v by encoding/json's grammar, and fastjson builds
// it, several times faster than encoding/json, when fastjson reads it as
// encoding/json does: valid UTF-8 without escaped UTF-16 surrogates,
// nested at most fastjson.MaxDepth (300) deep. encoding/json reads the
// others, which fastjson would read differently (it keeps invalid UTF-8
// and unpaired surrogates as they are) or refuse (encoding/json allows
// nesting 10000 deep). fastjson's own check is not used: it misses
// control characters before an escape in a string.
func parseJSON(v []byte) any {
	return parseJSONMembers(v, nil)
}

// parseJSONMembers is parseJSON for expressions that read only the
// members names of an object: when v is an object, its map holds only
// those of them it has, and the other members are checked but not built.
// Any other v, and any v when names is nil, is parsed whole. Either way it
// is nil when parseJSON is.
func parseJSONMembers(v []byte, names []string) any {
	if !gojson.Valid(v) {
		return nil
	}
	if out, ok := buildJSON(v, names); ok {
		return out
	}
	return decodeJSON(v, names)
}

// buildJSON is parseJSONMembers by fastjson for a valid v; ok is false
// when fastjson would not read v as encoding/json does.
func buildJSON(v []byte, names []string) (out any, ok bool) {
	if !utf8.Valid(v) || surrogateEscape(v) {
		return nil, false
	}
	b := builders.Get().(*jsonBuilder)
	defer builders.Put(b)
	root, err := b.p.ParseBytes(v)
	if err != nil {
		return nil, false // nested deeper than fastjson parses
	}
	if names != nil && root.Type() == fastjson.TypeObject {
		return b.members(root, names), true
	}
	return b.value(root), true
}

// surrogateEscape reports whether v may hold a \u escape of a UTF-16
// surrogate (\uD800 to \uDFFF). A backslash escaped before such text
// counts too: a false alarm costs only the slower reading.
func surrogateEscape(v []byte) bool {
	for {
		i := bytes.Index(v, []byte(`\u`))
		if i < 0 || i+3 >= len(v) {
			return false
		}
		if v[i+2]|0x20 == 'd' && bytes.IndexByte([]byte("89abcdefABCDEF"), v[i+3]) >= 0 {
			return true
		}
		v = v[i+2:]
	}
}

// members returns the members of obj that names holds, as value would.
func (b *jsonBuilder) members(obj *fastjson.Value, names []string) map[string]any {
	o, _ := obj.Object() // obj is an object: no error
	m := make(map[string]any, len(names))
	o.Visit(func(k []byte, e *fastjson.Value) {
		for _, n := range names {
			if string(k) == n {
				m[n] = b.value(e) // a repeated name keeps its last value
				return
			}
		}
	})
	return m
}

// value returns v as parseJSON does, copied out of the parser's memory.
func (b *jsonBuilder) value(v *fastjson.Value) any {
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		m := make(map[string]any, o.Len())
		o.Visit(func(k []byte, e *fastjson.Value) {
			m[string(k)] = b.value(e) // a repeated name keeps its last value
		})
		return m
	case fastjson.TypeArray:
		es, _ := v.Array()
		a := make([]any, len(es))
		for i, e := range es {
			a[i] = b.value(e)
		}
		return a
	case fastjson.TypeString:
		s, _ := v.StringBytes()
		return string(s)
	case fastjson.TypeNumber:
		b.num = v.MarshalTo(b.num[:0]) // a number marshals as written
		return number(b.num)
	case fastjson.TypeTrue:
		return true
	case fastjson.TypeFalse:
		return false
	}
	return nil
}

// decodeJSON is parseJSONMembers by encoding/json, for the valid values
// fastjson does not read as encoding/json does.
func decodeJSON(v []byte, names []string) any {
	out, err := DecodeJSON(v)
	if err != nil {
		return nil
	}
	out = numbers(out)
	if m, ok := out.(map[string]any); ok && names != nil {
		maps.DeleteFunc(m, func(k string, _ any) bool { return !slices.Contains(names, k) })
	}
	return out
}

// numbers turns the json.Number values of v into what number makes of
// them.
func numbers(v any) any {
	switch t := v.(type) {
	case json.Number:
		return number([]byte(t))
	case map[string]any:
		for k, e := range t {
			t[k] = numbers(e)
		}
	case []any:
		for i, e := range t {
			t[i] = numbers(e)
		}
	}
	return v
}

// number is the JSON number written as s: an int when it is an integer
// that fits, so that expressions compare json.n == 3 as users expect; a
// float64 otherwise; json.Number, as written, beyond float64's range.
func number(s []byte) any {
	if n, err := strconv.ParseInt(string(s), 10, 0); err == nil {
		return int(n)
	}
	if f, err := strconv.ParseFloat(string(s), 64); err == nil {
		return f
	}
	return json.Number(s)
}
