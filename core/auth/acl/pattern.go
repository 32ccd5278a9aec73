package acl

import (
	"fmt"
	"strings"
)

// maxPatternBytes bounds a pattern: names are at most a few hundred bytes.
const maxPatternBytes = 1024

// Pattern matches names: a literal ("orders"), a prefix ("orders.*"), or a
// glob where "*" stands for any run of characters and "?" for one
// ("*-audit", "team-?-orders"). "*" alone matches every name.
type Pattern struct {
	text  string
	parts []string // text split at "*"; nil for a literal
	glob  bool     // holds "*" or "?"
}

// ParsePattern compiles s.
func ParsePattern(s string) (Pattern, error) {
	switch {
	case s == "":
		return Pattern{}, fmt.Errorf("empty pattern; use \"*\" for any name")
	case len(s) > maxPatternBytes:
		return Pattern{}, fmt.Errorf("pattern of %d bytes is over the limit of %d", len(s), maxPatternBytes)
	case strings.ContainsAny(s, " \t\r\n"):
		return Pattern{}, fmt.Errorf("pattern %q holds white space, which no name does", s)
	}
	p := Pattern{text: s, glob: strings.ContainsAny(s, "*?")}
	if p.glob {
		p.parts = strings.Split(s, "*")
	}
	return p, nil
}

// MustPattern is ParsePattern for patterns known to be valid.
func MustPattern(s string) Pattern {
	p, err := ParsePattern(s)
	if err != nil {
		panic(err)
	}
	return p
}

func (p Pattern) String() string { return p.text }

// Match reports whether name matches p. It runs in time linear in the
// lengths of the name and the pattern times the number of stars at worst,
// without backtracking over earlier stars.
func (p Pattern) Match(name string) bool {
	if !p.glob {
		return p.text != "" && name == p.text
	}
	parts := p.parts
	// The first part anchors at the start, the last at the end; the ones
	// between match leftmost, which is enough with "*" between them.
	first, last := parts[0], parts[len(parts)-1]
	if len(parts) == 1 {
		return len(name) == len(first) && matchHere(first, name)
	}
	if len(name) < len(first) || !matchHere(first, name[:len(first)]) {
		return false
	}
	rest := name[len(first):]
	for _, mid := range parts[1 : len(parts)-1] {
		i := index(rest, mid)
		if i < 0 {
			return false
		}
		rest = rest[i+len(mid):]
	}
	return len(rest) >= len(last) && matchHere(last, rest[len(rest)-len(last):])
}

// matchHere reports whether s matches part, of the same length, where "?"
// in part matches any one byte.
func matchHere(part, s string) bool {
	if len(part) != len(s) {
		return false
	}
	for i := 0; i < len(part); i++ {
		if part[i] != '?' && part[i] != s[i] {
			return false
		}
	}
	return true
}

// index is the first position where part matches in s, or -1.
func index(s, part string) int {
	for i := 0; i+len(part) <= len(s); i++ {
		if matchHere(part, s[i:i+len(part)]) {
			return i
		}
	}
	return -1
}
