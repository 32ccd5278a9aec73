package hdfs

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"
)

// variables are the names a path may use as ${name}, with the layout of
// the time ones.
var variables = []struct{ name, layout string }{
	{"group", ""}, {"topic", ""},
	{"yyyy", "2006"}, {"MM", "01"}, {"dd", "02"}, {"HH", "15"}, {"mm", "04"},
}

// pathTemplate is the path key: an absolute HDFS directory whose ${...}
// variables are filled from the sink's group, a record's topic, and a time.
type pathTemplate struct {
	src string
	// pieces alternate between literal text (name empty) and variables.
	pieces    []piece
	usesTopic bool
	usesGroup bool
}

// piece is literal text, or the variable name with its time layout.
type piece struct {
	lit, name, layout string
}

// parseTemplate checks and splits a path template.
func parseTemplate(s string) (*pathTemplate, error) {
	if !strings.HasPrefix(s, "/") {
		return nil, fmt.Errorf("want an absolute HDFS directory starting with /, got %q", s)
	}
	t := &pathTemplate{src: s}
	rest := s
	for rest != "" {
		i := strings.Index(rest, "${")
		if i < 0 {
			t.pieces = append(t.pieces, piece{lit: rest})
			break
		}
		if i > 0 {
			t.pieces = append(t.pieces, piece{lit: rest[:i]})
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return nil, fmt.Errorf("unclosed ${ at byte %d of %q", len(s)-len(rest)+i, s)
		}
		name := rest[i+2 : i+j]
		k := slices.IndexFunc(variables, func(v struct{ name, layout string }) bool { return v.name == name })
		if k < 0 {
			return nil, fmt.Errorf("unknown variable ${%s}; known are ${group}, ${topic}, ${yyyy}, ${MM}, ${dd}, ${HH} and ${mm}", name)
		}
		t.pieces = append(t.pieces, piece{name: name, layout: variables[k].layout})
		t.usesTopic = t.usesTopic || name == "topic"
		t.usesGroup = t.usesGroup || name == "group"
		rest = rest[i+j+1:]
	}
	// Checked with sample values: a variable never adds a component of
	// its own, so a bad component is in the literal text.
	for _, c := range strings.Split(t.fill("g", "t", time.Unix(0, 0)), "/") {
		if err := checkName(c); err != nil && c != "" {
			return nil, fmt.Errorf("a directory in %q: %w", s, err)
		}
	}
	return t, nil
}

// expand is the directory for group, topic and t (already in the
// configured zone), cleaned.
func (t *pathTemplate) expand(group, topic string, tm time.Time) string {
	return path.Clean(t.fill(group, topic, tm))
}

// fill replaces the variables.
func (t *pathTemplate) fill(group, topic string, tm time.Time) string {
	var b strings.Builder
	for _, p := range t.pieces {
		switch {
		case p.name == "":
			b.WriteString(p.lit)
		case p.name == "group":
			b.WriteString(group)
		case p.name == "topic":
			b.WriteString(topic)
		default:
			b.WriteString(tm.Format(p.layout))
		}
	}
	return b.String()
}

// fixedPrefix is the longest directory at the start of the template that
// no variable changes: "/data" of "/data/${topic}/x".
func (t *pathTemplate) fixedPrefix() string {
	pre := t.src
	if i := strings.Index(pre, "${"); i >= 0 {
		pre = pre[:strings.LastIndexByte(pre[:i], '/')+1]
	}
	return path.Clean(pre)
}

// checkName refuses what cannot be a component of an HDFS path: an empty
// name, "." and "..", and names holding "/" or ":" (HDFS refuses a colon
// in a name).
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("empty name")
	case name == "." || name == "..":
		return fmt.Errorf("%q is not a name", name)
	case strings.ContainsAny(name, "/:"):
		return fmt.Errorf("%q holds a / or :", name)
	}
	return nil
}
