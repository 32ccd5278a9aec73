package transform

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Path is a JSON path in the subset that DDMQ's consumer proxy users
// write in a subscription's orderKey, queryParams and transit (CProxy
// compiles them with fastjson's JSONPath, in carrera-consumer's
// cproxy/utils/JsonUtils.java):
//
//	$            the whole document
//	$.name       a member of an object; $.a.b nests
//	$['name']    a member whose name is not a plain word ("" quotes too)
//	$[2]         an element of an array; $[-1] is the last
//	a.b          the same as $.a.b
//
// Wildcards, recursive descent (..), filters and slices are refused when
// the path is compiled. A Path is safe for concurrent use.
type Path struct {
	src  string
	segs []pathSegment
}

type pathSegment struct {
	name    string
	index   int
	isIndex bool
}

// Bounds of a path, checked when it is compiled: it comes from the
// config, but a long one would be walked for every message.
const (
	maxPathBytes    = 512
	maxPathSegments = 64
)

// CompilePath parses src. The error says what in src is wrong.
func CompilePath(src string) (*Path, error) {
	if src == "" {
		return nil, errors.New("empty JSON path; want $ or $.name")
	}
	if len(src) > maxPathBytes {
		return nil, fmt.Errorf("JSON path of %d bytes; at most %d", len(src), maxPathBytes)
	}
	p := &Path{src: src}
	rest := src
	if rest[0] == '$' {
		rest = rest[1:]
	} else {
		// A bare first name, as fastjson takes it: "a.b" is "$.a.b".
		rest = "." + rest
	}
	for rest != "" {
		if len(p.segs) == maxPathSegments {
			return nil, fmt.Errorf("JSON path %q has more than %d steps", src, maxPathSegments)
		}
		var seg pathSegment
		var err error
		switch rest[0] {
		case '.':
			seg, rest, err = memberSegment(rest[1:])
		case '[':
			seg, rest, err = bracketSegment(rest[1:])
		default:
			err = fmt.Errorf("unexpected %q; want .name or [...]", rest[0])
		}
		if err != nil {
			return nil, fmt.Errorf("JSON path %q: %w", src, err)
		}
		p.segs = append(p.segs, seg)
	}
	return p, nil
}

// memberSegment reads the name after a dot, up to the next '.' or '['.
func memberSegment(s string) (pathSegment, string, error) {
	end := strings.IndexAny(s, ".[")
	if end < 0 {
		end = len(s)
	}
	name := s[:end]
	switch {
	case name == "" && strings.HasPrefix(s, "."):
		return pathSegment{}, "", errors.New("recursive descent (..) is not supported")
	case name == "":
		return pathSegment{}, "", errors.New("a dot must be followed by a name")
	case strings.ContainsAny(name, "*?()@ ]'\""):
		return pathSegment{}, "", fmt.Errorf("name %q: wildcards, filters and quotes are not supported after a dot; write ['name'] for names with other characters", name)
	}
	return pathSegment{name: name}, s[end:], nil
}

// bracketSegment reads what follows '[': a quoted name or an index.
func bracketSegment(s string) (pathSegment, string, error) {
	if s != "" && (s[0] == '\'' || s[0] == '"') {
		q := s[0]
		end := strings.IndexByte(s[1:], q)
		if end < 0 || !strings.HasPrefix(s[1+end+1:], "]") {
			return pathSegment{}, "", fmt.Errorf("unterminated [%c...%c]", q, q)
		}
		return pathSegment{name: s[1 : 1+end]}, s[1+end+2:], nil
	}
	end := strings.IndexByte(s, ']')
	if end < 0 {
		return pathSegment{}, "", errors.New("unterminated [")
	}
	n, err := strconv.Atoi(s[:end])
	if err != nil || s[:end] == "" || s[0] == '+' {
		return pathSegment{}, "", fmt.Errorf("[%s]: want an array index like [0] or [-1], or a quoted name; wildcards, slices and filters are not supported", s[:end])
	}
	return pathSegment{index: n, isIndex: true}, s[end+1:], nil
}

// String returns the path as written.
func (p *Path) String() string { return p.src }

// IsRoot reports whether the path is $, the whole document.
func (p *Path) IsRoot() bool { return len(p.segs) == 0 }

// MembersOnly reports whether every step names an object member, so that
// Set can create what is missing on the way.
func (p *Path) MembersOnly() bool {
	for _, s := range p.segs {
		if s.isIndex {
			return false
		}
	}
	return true
}

// Get returns what the path names in doc, a document DecodeJSON returned;
// ok is false when it names nothing (a missing member, an index out of
// range, a step into a scalar). A JSON null is found, as nil.
func (p *Path) Get(doc any) (v any, ok bool) {
	v = doc
	for _, s := range p.segs {
		switch t := v.(type) {
		case map[string]any:
			if s.isIndex {
				return nil, false
			}
			if v, ok = t[s.name]; !ok {
				return nil, false
			}
		case []any:
			if !s.isIndex {
				return nil, false
			}
			i := s.index
			if i < 0 {
				i += len(t)
			}
			if i < 0 || i >= len(t) {
				return nil, false
			}
			v = t[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// Set puts a copy of v where the path names in doc, creating the objects
// missing on the way. It does nothing when a step meets something other
// than an object (fastjson's set fails there, and CProxy's Transit goes
// on). The path must be MembersOnly and not the root.
func (p *Path) Set(doc map[string]any, v any) {
	if p.IsRoot() || !p.MembersOnly() {
		return
	}
	at := doc
	for _, s := range p.segs[:len(p.segs)-1] {
		next, ok := at[s.name]
		if !ok || next == nil {
			m := map[string]any{}
			at[s.name] = m
			at = m
			continue
		}
		if at, ok = next.(map[string]any); !ok {
			return
		}
	}
	at[p.segs[len(p.segs)-1].name] = deepCopy(v)
}

// deepCopy copies the objects and arrays of a decoded document, so that
// one value set in two places is two values.
func deepCopy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		s := make([]any, len(t))
		for i, e := range t {
			s[i] = deepCopy(e)
		}
		return s
	}
	return v
}

// DecodeJSON parses b as one JSON value, numbers kept as written
// (json.Number), for Path. Trailing data after the value is an error.
func DecodeJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var out any
	if err := d.Decode(&out); err != nil {
		return nil, err
	}
	if len(bytes.TrimLeft(b[d.InputOffset():], " \t\r\n")) > 0 {
		return nil, errors.New("data after the JSON value")
	}
	return out, nil
}

// EncodeJSON writes a document of DecodeJSON's kinds compactly, with
// numbers as they were written and without escaping <, > and &.
func EncodeJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
