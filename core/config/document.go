package config

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// document parses data into its root node: a mapping, or nil after
// recording why there is none.
func (d *decoder) document(data []byte) *yaml.Node {
	if line, msg := checkChars(data); msg != "" {
		d.errorf(line, "", "%s", msg)
		return nil
	}
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		d.yamlError(data, err)
		return nil
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		d.errorf(extra.Line, "", "a second YAML document (---); want one")
		return nil
	case !errors.Is(err, io.EOF):
		d.yamlError(data, err)
		return nil
	}
	var root *yaml.Node
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		root = resolve(doc.Content[0])
	}
	if root == nil || isNull(root) {
		d.errorf(1, "", "empty config; want at least version, plugins and clusters")
		return nil
	}
	if root.Kind != yaml.MappingNode {
		d.errorf(root.Line, "", "want a mapping of keys at the top level, got %s", describe(root))
		return nil
	}
	return root
}

var (
	yamlLine      = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
	unknownAnchor = regexp.MustCompile(`^yaml: unknown anchor '(.*)' referenced$`)
)

// parserProblems are the errors of yaml.v3's parser (as opposed to its
// scanner). It reports them with the 0-based line of the construct being
// parsed, where scanner errors get a 1-based line.
var parserProblems = map[string]bool{
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"did not find expected '-' indicator":    true,
	"did not find expected <document start>": true,
	"did not find expected <stream-start>":   true,
	"did not find expected key":              true,
	"did not find expected node content":     true,
	"found duplicate %TAG directive":         true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found undefined tag handle":             true,
}

// yamlError records a syntax error from yaml.v3 at the 1-based line its
// marks point at. Its errors without a line are on the first line, except
// unknown anchors, which are looked up in data.
func (d *decoder) yamlError(data []byte, err error) {
	msg := err.Error()
	line := 1
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1]) // the regexp matched digits; a number too large for int leaves 0
		msg = m[2]
		if parserProblems[msg] {
			line++
		}
		// At the end of a file without a final newline, yaml.v3 counts one
		// line more than there is.
		line = min(line, lineAt(data, len(data)))
	} else if m := unknownAnchor.FindStringSubmatch(msg); m != nil {
		if i := strings.Index(string(data), "*"+m[1]); i >= 0 {
			line = lineAt(data, i)
		}
		msg = strings.TrimPrefix(msg, "yaml: ")
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	d.errorf(line, "", "invalid YAML: %s", strings.NewReplacer("\n", `\n`, "\r", `\r`).Replace(msg))
}

// checkChars finds the first byte YAML does not allow: invalid UTF-8 or a
// control character. yaml.v3 reports these without a line.
func checkChars(data []byte) (line int, msg string) {
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			return lineAt(data, i), "invalid YAML: not valid UTF-8"
		case r == '\t', r == '\n', r == '\r', r >= 0x20 && r <= 0x7e, r == 0x85,
			r >= 0xa0 && r <= 0xd7ff, r >= 0xe000 && r <= 0xfffd, r >= 0x10000:
		default:
			return lineAt(data, i), fmt.Sprintf("invalid YAML: control character %U is not allowed", r)
		}
		i += size
	}
	return 0, ""
}

// lineAt returns the 1-based line of byte offset i, counting line breaks
// as yaml.v3 does: \n, \r\n, \r, NEL, LS and PS.
func lineAt(data []byte, i int) int {
	line := 1
	for j := 0; j < i; {
		r, size := utf8.DecodeRune(data[j:])
		switch r {
		case '\n', 0x85, 0x2028, 0x2029:
			line++
		case '\r':
			if j+1 >= len(data) || data[j+1] != '\n' {
				line++
			}
		}
		j += size
	}
	return line
}

// resolve follows aliases to the node they name. yaml.v3 never makes an
// alias of an alias; the bound only keeps a hand-made tree from looping.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; i < 8 && n != nil && n.Kind == yaml.AliasNode && n.Alias != nil; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}
