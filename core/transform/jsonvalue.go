package transform

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"slices"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// maxJSONDepth bounds the nesting of objects and arrays in a value
// parsed for json, as encoding/json bounds it.
const maxJSONDepth = 10000

// parseJSON returns v parsed as one JSON value, or nil when it is not:
// objects as map[string]any (a repeated name keeps its last value),
// arrays as []any, numbers as int when they are integers that fit and as
// float64 otherwise (json.Number, as written, beyond float64's range),
// strings with invalid UTF-8 replaced by U+FFFD. It gives what
// encoding/json with UseNumber and then numbers would, in one pass and
// several times faster; FuzzParseJSON holds the two to that.
func parseJSON(v []byte) any {
	p := jsonParser{b: v}
	p.space()
	out, ok := p.value(0)
	if !ok {
		return nil
	}
	p.space()
	if p.i != len(p.b) {
		return nil // trailing data: not one JSON value
	}
	return out
}

// parseJSONMembers is parseJSON for expressions that read only the
// members names of an object: when v is an object, its map holds only
// those of them it has, and the other members are checked but not built.
// Any other v is parsed whole. Either way it is nil when parseJSON is.
func parseJSONMembers(v []byte, names []string) any {
	p := jsonParser{b: v, pick: names}
	p.space()
	if p.i >= len(p.b) || p.b[p.i] != '{' {
		return parseJSON(v)
	}
	out, ok := p.object(0)
	if !ok {
		return nil
	}
	p.space()
	if p.i != len(p.b) {
		return nil
	}
	return out
}

// jsonParser reads one JSON value from b, from i on.
type jsonParser struct {
	b []byte
	i int
	// pick, when not nil, names the members of the top-level object to
	// build; the others are only checked.
	pick []string
}

// space skips JSON whitespace.
func (p *jsonParser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// value reads the value at i; ok is false when it is not JSON.
func (p *jsonParser) value(depth int) (v any, ok bool) {
	if p.i >= len(p.b) {
		return nil, false
	}
	switch c := p.b[p.i]; {
	case (c == '{' || c == '[') && depth >= maxJSONDepth:
		return nil, false
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.array(depth)
	case c == '"':
		s, ok := p.str()
		return s, ok
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	}
	return nil, false
}

// literal reads the word w.
func (p *jsonParser) literal(w string) bool {
	if len(p.b)-p.i < len(w) || string(p.b[p.i:p.i+len(w)]) != w {
		return false
	}
	p.i += len(w)
	return true
}

func (p *jsonParser) object(depth int) (any, bool) {
	p.i++ // {
	m := make(map[string]any, len(p.pick))
	p.space()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return m, true
	}
	pick := p.pick
	p.pick = nil // only the top-level object's members are picked
	for {
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			return nil, false
		}
		var name string
		var ok, build bool
		if pick == nil {
			name, ok = p.str()
			build = true
		} else {
			name, build, ok = p.pickedName(pick)
		}
		if !ok {
			return nil, false
		}
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return nil, false
		}
		p.i++
		p.space()
		if build {
			v, ok := p.value(depth + 1)
			if !ok {
				return nil, false
			}
			m[name] = v
		} else if !p.skip(depth + 1) {
			return nil, false
		}
		if end, ok := p.after('}'); !ok || end {
			return m, ok
		}
	}
}

func (p *jsonParser) array(depth int) (any, bool) {
	p.i++ // [
	a := []any{}
	p.space()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return a, true
	}
	for {
		v, ok := p.value(depth + 1)
		if !ok {
			return nil, false
		}
		a = append(a, v)
		if end, ok := p.after(']'); !ok || end {
			return a, ok
		}
	}
}

// after reads what follows an element of an object or an array: a comma
// and the space after it, or closer, which ends it (end).
func (p *jsonParser) after(closer byte) (end, ok bool) {
	p.space()
	if p.i >= len(p.b) {
		return false, false
	}
	switch p.b[p.i] {
	case ',':
		p.i++
		p.space()
		return false, true
	case closer:
		p.i++
		return true, true
	}
	return false, false
}

// number reads a number as JSON's grammar has it.
func (p *jsonParser) number() (any, bool) {
	start := p.i
	isInt, ok := p.scanNumber()
	if !ok {
		return nil, false
	}
	s := string(p.b[start:p.i])
	if isInt {
		if n, err := strconv.ParseInt(s, 10, 0); err == nil {
			return int(n), true
		}
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return f, true
	}
	return json.Number(s), true // out of float64's range: kept as written
}

// scanNumber moves past a number and reports whether it has neither a
// fraction nor an exponent.
func (p *jsonParser) scanNumber() (isInt, ok bool) {
	if p.b[p.i] == '-' {
		p.i++
	}
	switch {
	case p.i < len(p.b) && p.b[p.i] == '0':
		p.i++
	case p.digits() == 0:
		return false, false
	}
	isInt = true
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if p.digits() == 0 {
			return false, false
		}
		isInt = false
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if p.digits() == 0 {
			return false, false
		}
		isInt = false
	}
	return isInt, true
}

// digits skips decimal digits and returns how many.
func (p *jsonParser) digits() int {
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	return p.i - start
}

// str reads a string at i, which is '"'.
func (p *jsonParser) str() (string, bool) {
	b, start := p.b, p.i+1
	if q := bytes.IndexByte(b[start:], '"'); q >= 0 {
		seg := b[start : start+q]
		if plain(seg) && bytes.IndexByte(seg, '\\') < 0 {
			p.i = start + q + 1
			return string(seg), true
		}
	}
	p.i = start
	return p.slowStr(start) // an escape, a byte beyond ASCII, or no end
}

// plain reports whether seg is printable ASCII.
func plain(seg []byte) bool {
	for _, c := range seg {
		if c < ' ' || c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// slowStr reads the rest of a string that has escapes or bytes beyond
// ASCII, from start, its first byte after the quote.
func (p *jsonParser) slowStr(start int) (string, bool) {
	out := make([]byte, 0, p.i-start+16)
	out = append(out, p.b[start:p.i]...)
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return string(out), true
		case c < ' ':
			return "", false
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(p.b[p.i:])
			out = utf8.AppendRune(out, r) // an invalid byte becomes U+FFFD
			p.i += size
		case c != '\\':
			out = append(out, c)
			p.i++
		default:
			r, ok := p.escape()
			if !ok {
				return "", false
			}
			out = utf8.AppendRune(out, r)
		}
	}
	return "", false
}

// escape reads the escape at i, a backslash, into the rune it stands for.
func (p *jsonParser) escape() (rune, bool) {
	if p.i+1 >= len(p.b) {
		return 0, false
	}
	c := p.b[p.i+1]
	p.i += 2
	switch c {
	case '"', '\\', '/':
		return rune(c), true
	case 'b':
		return '\b', true
	case 'f':
		return '\f', true
	case 'n':
		return '\n', true
	case 'r':
		return '\r', true
	case 't':
		return '\t', true
	case 'u':
		r, ok := p.hex4()
		if !ok {
			return 0, false
		}
		if !utf16.IsSurrogate(r) {
			return r, true
		}
		// A surrogate makes a rune with the \u escape right after it, if
		// that is its other half; otherwise it is U+FFFD on its own.
		if p.i+1 < len(p.b) && p.b[p.i] == '\\' && p.b[p.i+1] == 'u' {
			save := p.i
			p.i += 2
			r2, ok := p.hex4()
			if !ok {
				return 0, false
			}
			if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
				return dec, true
			}
			p.i = save
		}
		return utf8.RuneError, true
	}
	return 0, false
}

// hex4 reads four hex digits.
func (p *jsonParser) hex4() (rune, bool) {
	if len(p.b)-p.i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range p.b[p.i : p.i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r*16 + rune(c)
	}
	p.i += 4
	return r, true
}

// pickedName reads a member's name at i and reports whether pick holds
// it, building a string only for a name it holds.
func (p *jsonParser) pickedName(pick []string) (name string, picked, ok bool) {
	start := p.i + 1
	end := start
	for end < len(p.b) && p.b[end] != '"' && p.b[end] != '\\' && p.b[end] >= ' ' && p.b[end] < utf8.RuneSelf {
		end++
	}
	if end < len(p.b) && p.b[end] == '"' { // plain ASCII: compared in place
		p.i = end + 1
		for _, n := range pick {
			if string(p.b[start:end]) == n {
				return n, true, true
			}
		}
		return "", false, true
	}
	name, ok = p.str()
	return name, ok && slices.Contains(pick, name), ok
}

// skip moves past the value at i, checking it as value would, without
// building it.
func (p *jsonParser) skip(depth int) bool {
	if p.i >= len(p.b) {
		return false
	}
	switch c := p.b[p.i]; {
	case (c == '{' || c == '[') && depth >= maxJSONDepth:
		return false
	case c == '{' || c == '[':
		return p.skipContainer(depth)
	case c == '"':
		return p.skipStr()
	case c == '-' || c >= '0' && c <= '9':
		_, ok := p.scanNumber()
		return ok
	case c == 't':
		return p.literal("true")
	case c == 'f':
		return p.literal("false")
	case c == 'n':
		return p.literal("null")
	}
	return false
}

// skipContainer moves past the object or array at i.
func (p *jsonParser) skipContainer(depth int) bool {
	isObject := p.b[p.i] == '{'
	closer := byte(']')
	if isObject {
		closer = '}'
	}
	p.i++
	p.space()
	if p.i < len(p.b) && p.b[p.i] == closer {
		p.i++
		return true
	}
	for {
		if isObject {
			if p.i >= len(p.b) || p.b[p.i] != '"' || !p.skipStr() {
				return false
			}
			p.space()
			if p.i >= len(p.b) || p.b[p.i] != ':' {
				return false
			}
			p.i++
			p.space()
		}
		if !p.skip(depth + 1) {
			return false
		}
		if end, ok := p.after(closer); !ok || end {
			return ok
		}
	}
}

// skipStr moves past the string at i, checking its escapes.
func (p *jsonParser) skipStr() bool {
	b, i := p.b, p.i+1
	for {
		q := bytes.IndexByte(b[i:], '"')
		if q < 0 {
			return false
		}
		seg := b[i : i+q]
		bs := bytes.IndexByte(seg, '\\')
		if bs < 0 {
			p.i = i + q + 1
			return noControl(seg)
		}
		if !noControl(seg[:bs]) || i+bs+1 >= len(b) {
			return false
		}
		i += bs // at the backslash; the quote found may be escaped
		switch b[i+1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			i += 2
		case 'u':
			p.i = i + 2
			if _, ok := p.hex4(); !ok {
				return false
			}
			i = p.i
		default:
			return false
		}
	}
}

// noControl reports whether seg has no control character, which a JSON
// string may hold only escaped. It looks at eight bytes at a time.
func noControl(seg []byte) bool {
	const highs, space = 0x8080808080808080, 0x2020202020202020
	for len(seg) >= 8 {
		x := binary.LittleEndian.Uint64(seg)
		if (x-space)&^x&highs != 0 { // some byte is below ' '
			return false
		}
		seg = seg[8:]
	}
	for _, c := range seg {
		if c < ' ' {
			return false
		}
	}
	return true
}
