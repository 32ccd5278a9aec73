package transform

import (
	"errors"
	"fmt"
	"maps"
	"slices"
)

// transit is DDMQ's Transit action, reimplemented from carrera-consumer's
// cproxy/actions/TransitAction.java: it builds a new JSON object from the
// message's JSON value. The target "$", when given, names the object of
// the value that is the start (a copy of it); without it the start is {}.
// Every other entry copies what its source path finds, when it finds
// something other than null, to its target path, creating the objects on
// the way.
type transit struct {
	root *Path // the source of "$"; nil when not given
	sets []transitSet
}

type transitSet struct{ to, from *Path }

// MaxTransitEntries bounds a transit's entries: each is walked for every
// message.
const MaxTransitEntries = 64

// compileTransit compiles a target -> source mapping. Entries are applied
// in the order of their targets, so that "$.a" is set before "$.a.b".
func compileTransit(m map[string]string) (*transit, error) {
	if len(m) > MaxTransitEntries {
		return nil, &CompileError{"transit", fmt.Errorf("%d entries; at most %d", len(m), MaxTransitEntries)}
	}
	t := &transit{}
	for _, to := range slices.Sorted(maps.Keys(m)) {
		field := "transit." + to
		from, err := CompilePath(m[to])
		if err != nil {
			return nil, &CompileError{field, err}
		}
		if to == "$" {
			t.root = from
			continue
		}
		target, err := CompilePath(to)
		if err != nil {
			return nil, &CompileError{field, fmt.Errorf("target: %w", err)}
		}
		if !target.MembersOnly() {
			return nil, &CompileError{field, errors.New("a target may only name object members ($.a.b or $['a']), not array elements")}
		}
		t.sets = append(t.sets, transitSet{to: target, from: from})
	}
	return t, nil
}

// apply builds the transit's object from value and returns it as JSON.
// A value that is not a JSON object, or a "$" source that is not an
// object, is an error: CProxy fails such a message.
func (t *transit) apply(value []byte) ([]byte, error) {
	doc, err := DecodeJSON(value)
	if err != nil {
		return nil, fmt.Errorf("transit: the value is not JSON: %w", err)
	}
	if _, ok := doc.(map[string]any); !ok {
		return nil, errors.New("transit: the value is not a JSON object")
	}
	out := map[string]any{}
	if t.root != nil {
		v, _ := t.root.Get(doc)
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("transit: %s does not name an object in the value", t.root)
		}
		out = deepCopy(m).(map[string]any)
	}
	for _, s := range t.sets {
		if v, ok := s.from.Get(doc); ok && v != nil {
			s.to.Set(out, v)
		}
	}
	return EncodeJSON(out)
}
