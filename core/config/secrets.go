package config

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// A string value that is all of `${env:NAME}` or `${file:PATH}` is replaced,
// before the file is decoded, by the environment variable's value or the
// file's content less one trailing newline. That keeps passwords and tokens
// out of plugins.yaml, for the gateway's own keys and plugin config maps
// alike. Every value so read counts as a secret: no error message repeats
// it (see redact).
var reference = regexp.MustCompile(`^\$\{(env|file):(.*)\}$`)

// envName is what a shell accepts as a variable name.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// secret is a value read through a reference, and the reference as written,
// which errors show in its place.
type secret struct {
	value, ref string
}

// expandReferences replaces the references in the string scalars under
// root, recording an error at the key path for each that cannot be read,
// and the secrets read in d.secrets. A relative file path is read as
// written, relative to the working directory, as every path in the config
// is. Each node is visited once, so a value an alias repeats is read once
// and aliases cannot make this loop.
func (d *decoder) expandReferences(root *yaml.Node) {
	seen := map[*yaml.Node]bool{}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		n = resolve(n)
		if n == nil || seen[n] {
			return
		}
		seen[n] = true
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				walk(n.Content[i+1], keyPath(path, resolve(n.Content[i]).Value))
			}
		case yaml.SequenceNode:
			for i, e := range n.Content {
				walk(e, fmt.Sprintf("%s[%d]", path, i))
			}
		case yaml.ScalarNode:
			if n.ShortTag() != "!!str" {
				return
			}
			m := reference.FindStringSubmatch(n.Value)
			if m == nil {
				return
			}
			value, err := readReference(m[1], m[2])
			if err != nil {
				d.errorf(n.Line, path, "%s: %v", n.Value, err)
				d.broken[path] = true
				d.unread[n] = true
				return
			}
			d.secrets = append(d.secrets, secret{value: value, ref: n.Value})
			n.Value = value
		}
	}
	walk(root, "")
}

// readReference reads what `${kind:arg}` refers to. Its errors name the
// variable or file, never a value.
func readReference(kind, arg string) (string, error) {
	switch kind {
	case "env":
		if !envName.MatchString(arg) {
			return "", fmt.Errorf("%q is not an environment variable name", arg)
		}
		v, ok := os.LookupEnv(arg)
		if !ok {
			return "", fmt.Errorf("environment variable %s is not set", arg)
		}
		return v, nil
	default: // file
		if arg == "" {
			return "", fmt.Errorf("want a file path after file:")
		}
		data, err := os.ReadFile(arg)
		if err != nil {
			// The os error names the path and why, not the content.
			return "", fmt.Errorf("reading the file: %v", err)
		}
		s := string(data)
		if t, ok := strings.CutSuffix(s, "\n"); ok {
			s = strings.TrimSuffix(t, "\r")
		}
		return s, nil
	}
}

// redact replaces, in a message about the config, each secret's value by
// the reference it was read through. A value is replaced where it is
// quoted, as messages quote values, and, when it is four bytes or longer,
// also where it stands bare or cut short as describe cuts long strings.
func redact(secrets []secret, msg string) string {
	for _, s := range secrets {
		if s.value == "" {
			continue
		}
		quoted := strconv.Quote(s.value)
		msg = strings.ReplaceAll(msg, quoted, strconv.Quote(s.ref))
		if len(s.value) < 4 {
			continue
		}
		msg = strings.ReplaceAll(msg, quoted[1:len(quoted)-1], s.ref)
		msg = strings.ReplaceAll(msg, s.value, s.ref)
		if r := []rune(s.value); len(r) > 40 {
			msg = strings.ReplaceAll(msg, strconv.Quote(string(r[:37])+"..."), strconv.Quote(s.ref))
		}
	}
	return msg
}
