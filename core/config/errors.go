package config

import (
	"sort"
	"strconv"
	"strings"
)

// Error is one problem in a config file, located by file, line and key.
type Error struct {
	File string // the path given to Load or Parse
	Line int    // 1-based; Load and Parse always set it, PluginError leaves 0 for an unknown cluster
	Key  string // dotted path of the offending key, like clusters.local.plugin; empty for whole-file problems
	Msg  string
}

// String formats e as `FILE:LINE: key: problem`, the form `mqgate check`
// prints. The line is left out when it is 0 and the key when it is empty.
func (e *Error) String() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Error returns e.String(), so one *Error can be returned as an error.
func (e *Error) Error() string { return e.String() }

// Errors is every problem found in one config file, sorted by line. Load and
// Parse return it as their error when a file is invalid; find it with
// errors.As.
type Errors []*Error

// Error joins the errors' String forms, one per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.String()
	}
	return strings.Join(lines, "\n")
}

// SortByLine orders es by line, keeping the order found within a line, as
// Load and Parse return them; for merging in problems found elsewhere.
func (es Errors) SortByLine() {
	sort.SliceStable(es, func(i, j int) bool { return es[i].Line < es[j].Line })
}

// keyPath joins a dotted key path. A segment that is empty or holds a dot,
// a quote, a space or an unprintable rune is quoted, so a path is always one
// unambiguous line: topics."orders.v1".cluster.
func keyPath(parent, seg string) string {
	if needsQuote(seg) {
		seg = strconv.Quote(seg)
	}
	if parent == "" {
		return seg
	}
	return parent + "." + seg
}

func needsQuote(s string) bool {
	if s == "" {
		return true
	}
	for _, r := range s {
		if r == '.' || r == '"' || r == ' ' || !strconv.IsPrint(r) {
			return true
		}
	}
	return false
}
