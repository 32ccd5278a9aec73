package config

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// freeformBudget bounds how many nodes free-form maps may expand to, and
// freeformDepth how deep they may nest, so aliases can neither loop nor
// blow up.
const (
	freeformBudget = 100_000
	freeformDepth  = 64
)

// freeform converts a mapping, list or scalar into the plain Go values JSON
// encodes: map[string]any, []any, string, int, float64, bool and nil.
// inside holds the collections n is nested in, to catch aliases that loop.
func (d *decoder) freeform(n *yaml.Node, path string, inside []*yaml.Node) any {
	line := n.Line
	n = resolve(n)
	if slices.Contains(inside, n) {
		d.errorf(line, path, "alias refers to a value that contains it")
		return nil
	}
	if d.budget <= 0 || len(inside) > freeformDepth {
		if d.budget >= 0 { // say it once
			d.errorf(line, path, "nested too deeply or expands to too much (aliases?)")
			d.budget = -1
		}
		return nil
	}
	d.budget--
	switch n.Kind {
	case yaml.MappingNode:
		m := map[string]any{}
		for _, p := range d.pairs(n, path) {
			m[p.name] = d.freeform(p.raw, keyPath(path, p.name), append(inside, n))
		}
		return m
	case yaml.SequenceNode:
		l := make([]any, len(n.Content))
		for i, e := range n.Content {
			l[i] = d.freeform(e, fmt.Sprintf("%s[%d]", path, i), append(inside, n))
		}
		return l
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return nil
		case "!!bool", "!!int", "!!float":
			var v any
			if err := n.Decode(&v); err != nil {
				d.errorf(n.Line, path, "invalid %s %q", strings.TrimPrefix(n.ShortTag(), "!!"), n.Value)
				return nil
			}
			if f, ok := v.(float64); ok && (math.IsInf(f, 0) || math.IsNaN(f)) {
				d.errorf(n.Line, path, "%q cannot be passed to a plugin; want a finite number", n.Value)
				return nil
			}
			return v
		}
		if d.unread[n] {
			return nil // already reported by expandReferences
		}
		return n.Value // strings, timestamps and other tags, as written
	}
	d.errorf(n.Line, path, "want a value, got %s", describe(n))
	return nil
}
