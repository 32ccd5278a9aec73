package config

// The schema of plugins.yaml is the Config struct itself. decodeStruct walks
// a yaml.Node tree against it and records every problem with its line and
// key instead of stopping at the first. A field's tags say all there is:
//
//	yaml:"name"        the key; "-" for fields not read from the file
//	default:"text"     YAML text used when the key is absent or null, such
//	                   as 10s or, for a list, [1s, 5s]
//	check:"a,b"        any of:
//	    required       the key must be present and not null, a map or a
//	                   list not empty ("must have at least one entry")
//	    positive       a number or duration must be > 0 (else >= 0)
//	    size           an integer that also accepts sizes like 512KiB, 1MiB
//	    hostport       a listen address, host:port with a numeric port
//	    oneof=x|y      the value must be one of those listed; a number
//	                   written unquoted counts as its text, so that
//	                   oneof=1.2|1.3 takes min_version: 1.2
//
// Field types:
//
//   - string, int, int64, bool, time.Duration;
//   - a nested struct (a mapping);
//   - a pointer to any of these (nil when the key is absent, for settings
//     that inherit or are optional as a whole);
//   - []T with T any of these, pointers to structs included (a YAML list;
//     the field's checks other than required apply to each element, whose
//     key is parent[i], like push[0].targets[1]); nil when absent without
//     a default;
//   - map[string]*T with T a struct (a mapping of named entries);
//   - map[string]string (a mapping of names to strings);
//   - map[string]any (a free-form mapping, passed on as written).
//
// A string, when given, must not be empty, and numbers and durations must
// not be negative. List elements and map entries count against the same
// budget as free-form maps, so aliases cannot make a small file expand to
// a huge one.

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mqgate/mqgate/sdk"
)

type decoder struct {
	file   string
	errs   Errors
	lines  map[string]int        // key path -> line of the key
	values map[string]*yaml.Node // key path -> its value node, aliases resolved
	broken map[string]bool       // key paths whose value had the wrong shape
	budget int                   // nodes free-form maps may still expand to
	// secrets are the values read through ${env:...} and ${file:...}
	// references; unread holds the references that could not be read,
	// which are reported once and otherwise left alone.
	secrets []secret
	unread  map[*yaml.Node]bool
	// consumerNames and consumerSessions are what checkConsumer has seen
	// of the push and sinks entries: kind NUL name -> line, and each group
	// session -> the entry that consumes it.
	consumerNames    map[string]int
	consumerSessions map[consumerSession]string
}

func newDecoder(file string) *decoder {
	return &decoder{
		file:   file,
		lines:  map[string]int{},
		values: map[string]*yaml.Node{},
		broken: map[string]bool{},
		budget: freeformBudget,
		unread: map[*yaml.Node]bool{},
	}
}

func (d *decoder) errorf(line int, key, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// describe names the YAML type of n for "want X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		v := n.Value
		if r := []rune(v); len(r) > 40 {
			v = string(r[:37]) + "..."
		}
		if n.ShortTag() == "!!str" || strings.ContainsFunc(v, func(r rune) bool { return !strconv.IsPrint(r) }) {
			v = strconv.Quote(v)
		}
		switch n.ShortTag() {
		case "!!str":
			return "the string " + v
		case "!!int":
			return "the integer " + v
		case "!!float":
			return "the number " + v
		case "!!bool":
			return "the boolean " + v
		case "!!null":
			return "null"
		case "!!timestamp":
			return "the timestamp " + v
		}
		return "a value tagged " + strconv.Quote(n.ShortTag())
	}
	return "an empty value"
}

// pair is one key and its value in a mapping.
type pair struct {
	name  string
	key   *yaml.Node
	raw   *yaml.Node // the value as written, perhaps an alias
	value *yaml.Node // the value, aliases resolved
}

// pairs returns the entries of mapping n, recording duplicate keys,
// non-string keys and merge keys (which are not supported) and leaving them
// out.
func (d *decoder) pairs(n *yaml.Node, path string) []pair {
	var ps []pair
	first := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		line := n.Content[i].Line
		if k.Kind != yaml.ScalarNode {
			d.errorf(line, path, "a key must be a string, got %s", describe(k))
			continue
		}
		p := keyPath(path, k.Value)
		if k.ShortTag() == "!!merge" {
			d.errorf(line, path, "merge keys (<<) are not supported; write the keys out or alias the whole value")
			continue
		}
		if l, dup := first[k.Value]; dup {
			d.errorf(line, p, "duplicate key; first set on line %d", l)
			continue
		}
		first[k.Value] = line
		ps = append(ps, pair{name: k.Value, key: n.Content[i], raw: n.Content[i+1], value: v})
	}
	return ps
}

// field is a struct field and what its tags say.
type field struct {
	index    int
	name     string
	def      string
	hasDef   bool
	required bool
	positive bool
	size     bool
	hostport bool
	oneof    []string
}

func fieldsOf(t reflect.Type) []field {
	var fs []field
	for i := range t.NumField() {
		sf := t.Field(i)
		name := sf.Tag.Get("yaml")
		if !sf.IsExported() || name == "" || name == "-" {
			continue
		}
		f := field{index: i, name: name}
		f.def, f.hasDef = sf.Tag.Lookup("default")
		for c := range strings.SplitSeq(sf.Tag.Get("check"), ",") {
			switch {
			case c == "":
			case c == "required":
				f.required = true
			case c == "positive":
				f.positive = true
			case c == "size":
				f.size = true
			case c == "hostport":
				f.hostport = true
			case strings.HasPrefix(c, "oneof="):
				f.oneof = strings.Split(strings.TrimPrefix(c, "oneof="), "|")
			default:
				panic(fmt.Sprintf("config: field %s.%s: unknown check %q", t.Name(), sf.Name, c))
			}
		}
		fs = append(fs, f)
	}
	return fs
}

// decodeStruct fills struct v from mapping n, found at path on line at. A
// nil n means the mapping is absent: every field takes its default.
func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string, at int) {
	fields := fieldsOf(v.Type())
	given := map[string]pair{}
	if n != nil {
		for _, p := range d.pairs(n, path) {
			i := slices.IndexFunc(fields, func(f field) bool { return f.name == p.name })
			if i < 0 {
				d.errorf(p.key.Line, keyPath(path, p.name), "unknown key; %s", suggest(p.name, fields))
				continue
			}
			given[p.name] = p
		}
	}
	for _, f := range fields {
		fv := v.Field(f.index)
		fp := keyPath(path, f.name)
		p, ok := given[f.name]
		if ok && !isNull(p.value) {
			d.lines[fp] = p.key.Line
			d.values[fp] = p.value
			d.decodeValue(p.value, fv, f, fp, p.key.Line)
			continue
		}
		line := at
		if ok {
			line = p.key.Line
			d.lines[fp] = line
		}
		if f.required && !d.broken[path] {
			d.errorf(line, fp, "required key is missing")
			d.broken[fp] = true
		}
		d.applyDefault(fv, f, fp)
	}
}

// suggest names the key the user probably meant, or lists the known keys.
func suggest(name string, fields []field) string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.name
	}
	return sdk.SuggestKey(name, names)
}

// applyDefault sets fv to its default, or for structs and maps to their
// empty form with defaults inside. Slices without a default stay nil.
func (d *decoder) applyDefault(fv reflect.Value, f field, path string) {
	switch {
	case f.hasDef:
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(f.def), &doc); err != nil || len(doc.Content) != 1 {
			panic(fmt.Sprintf("config: bad default for %s: %q", path, f.def))
		}
		// A decoder of its own, so that the default's lines (of the tag's
		// text) and values are not taken for keys written in the file.
		dd := newDecoder(d.file)
		dd.decodeValue(doc.Content[0], fv, f, path, 0)
		if len(dd.errs) > 0 {
			panic(fmt.Sprintf("config: bad default for %s: %s", path, dd.errs[0].Msg))
		}
	case fv.Kind() == reflect.Struct:
		d.decodeStruct(nil, fv, path, 0)
	case fv.Kind() == reflect.Map:
		fv.Set(reflect.MakeMap(fv.Type()))
	}
}

var durationType = reflect.TypeFor[time.Duration]()

// decodeValue decodes the non-null node n, the value of the key on line,
// into fv, which field f describes, and checks it. A scalar that fails its
// checks marks path broken and leaves fv unset.
func (d *decoder) decodeValue(n *yaml.Node, fv reflect.Value, f field, path string, line int) {
	bad := func(format string, args ...any) {
		d.errorf(line, path, format, args...)
		d.broken[path] = true
	}
	wrong := func(want string) { bad("want %s, got %s", want, describe(n)) }
	if d.unread[n] {
		return // already reported by expandReferences
	}
	switch {
	case fv.Kind() == reflect.Pointer:
		nv := reflect.New(fv.Type().Elem())
		d.decodeValue(n, nv.Elem(), f, path, line)
		if !d.broken[path] {
			fv.Set(nv)
		}

	case fv.Type() == durationType:
		if n.ShortTag() != "!!str" {
			wrong("a duration like 10s or 1m30s")
			return
		}
		dur, err := time.ParseDuration(n.Value)
		if err != nil {
			bad("invalid duration %q; want a number with a unit, like 500ms, 10s or 1m30s", n.Value)
			return
		}
		if msg := checkSign(dur < 0, dur == 0, f); msg != "" {
			bad("%s", msg)
			return
		}
		fv.SetInt(int64(dur))

	case fv.Kind() == reflect.String:
		numeric := n.ShortTag() == "!!int" || n.ShortTag() == "!!float"
		switch {
		case n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!str" && !(f.oneof != nil && numeric)):
			wrong("a string")
		case n.Value == "":
			bad("must not be empty")
		case f.hostport && checkHostPort(n.Value) != nil:
			bad("invalid address %q: %v", n.Value, checkHostPort(n.Value))
		case f.oneof != nil && !slices.Contains(f.oneof, n.Value):
			bad("invalid value %q; want %s", n.Value, orList(f.oneof))
		default:
			fv.SetString(n.Value)
		}

	case fv.Kind() == reflect.Bool:
		var b bool
		if n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
			wrong("true or false")
			return
		}
		fv.SetBool(b)

	case fv.Kind() == reflect.Int || fv.Kind() == reflect.Int64:
		var i int64
		switch {
		case n.ShortTag() == "!!int":
			if err := n.Decode(&i); err != nil {
				bad("invalid integer %q", n.Value)
				return
			}
		case f.size && n.ShortTag() == "!!str":
			var err error
			if i, err = parseSize(n.Value); err != nil {
				bad("invalid size %q: %v", n.Value, err)
				return
			}
		case f.size:
			wrong("a number of bytes or a size like 512KiB")
			return
		default:
			wrong("an integer")
			return
		}
		if fv.OverflowInt(i) {
			bad("%d is too large", i)
			return
		}
		if msg := checkSign(i < 0, i == 0, f); msg != "" {
			bad("%s", msg)
			return
		}
		fv.SetInt(i)

	case fv.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			wrong("a mapping")
			d.decodeStruct(nil, fv, path, line)
			return
		}
		d.decodeStruct(n, fv, path, line)

	case fv.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			wrong("a list")
			return
		}
		if f.required && len(n.Content) == 0 {
			bad("must have at least one entry")
			return
		}
		ef := f
		ef.required = false // the list's; each element is checked by the rest
		s := reflect.MakeSlice(fv.Type(), 0, len(n.Content))
		for i, raw := range n.Content {
			ep := fmt.Sprintf("%s[%d]", path, i)
			if !d.spend(raw.Line, ep) {
				break
			}
			e := resolve(raw)
			d.lines[ep] = raw.Line
			d.values[ep] = e
			ev := reflect.New(fv.Type().Elem()).Elem()
			d.decodeValue(e, ev, ef, ep, raw.Line)
			s = reflect.Append(s, ev) // zero when broken, so indexes match the file
		}
		fv.Set(s)

	case fv.Kind() == reflect.Map && fv.Type().Elem().Kind() == reflect.String:
		fv.Set(reflect.MakeMap(fv.Type()))
		if n.Kind != yaml.MappingNode {
			wrong("a mapping of names to strings")
			return
		}
		ps := d.pairs(n, path)
		if f.required && len(ps) == 0 {
			bad("must have at least one entry")
			return
		}
		for _, p := range ps {
			ep := keyPath(path, p.name)
			if !d.spend(p.key.Line, ep) {
				break
			}
			d.lines[ep] = p.key.Line
			d.values[ep] = p.value
			ev := reflect.New(fv.Type().Elem()).Elem()
			d.decodeValue(p.value, ev, field{}, ep, p.key.Line)
			if !d.broken[ep] {
				fv.SetMapIndex(reflect.ValueOf(p.name), ev)
			}
		}

	case fv.Kind() == reflect.Map && fv.Type().Elem().Kind() == reflect.Interface:
		if n.Kind != yaml.MappingNode {
			wrong("a mapping")
			fv.Set(reflect.MakeMap(fv.Type()))
			return
		}
		fv.Set(reflect.ValueOf(d.freeform(n, path, nil)))

	case fv.Kind() == reflect.Map:
		fv.Set(reflect.MakeMap(fv.Type()))
		if n.Kind != yaml.MappingNode {
			wrong("a mapping of names to entries")
			return
		}
		ps := d.pairs(n, path)
		if f.required && len(ps) == 0 {
			d.errorf(line, path, "must have at least one entry")
			d.broken[path] = true
		}
		elem := fv.Type().Elem().Elem()
		for _, p := range ps {
			ep := keyPath(path, p.name)
			d.lines[ep] = p.key.Line
			e := reflect.New(elem)
			if isNull(p.value) {
				d.decodeStruct(nil, e.Elem(), ep, p.key.Line)
			} else {
				d.values[ep] = p.value
				d.decodeValue(p.value, e.Elem(), field{}, ep, p.key.Line)
			}
			fv.SetMapIndex(reflect.ValueOf(p.name), e)
		}

	default:
		panic(fmt.Sprintf("config: %s: unsupported field type %s", path, fv.Type()))
	}
}

// spend takes one node from the budget shared with free-form maps, and
// says once when it is spent.
func (d *decoder) spend(line int, path string) bool {
	if d.budget <= 0 {
		if d.budget == 0 { // say it once
			d.errorf(line, path, "nested too deeply or expands to too much (aliases?)")
			d.budget = -1
		}
		return false
	}
	d.budget--
	return true
}

// checkSign rejects negative numbers, and zero for positive fields.
func checkSign(negative, zero bool, f field) string {
	switch {
	case negative:
		return "must not be negative"
	case zero && f.positive:
		return "must be greater than zero"
	}
	return ""
}

func orList(xs []string) string {
	if len(xs) == 1 {
		return xs[0]
	}
	return strings.Join(xs[:len(xs)-1], ", ") + " or " + xs[len(xs)-1]
}
