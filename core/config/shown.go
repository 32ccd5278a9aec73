package config

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// Redacted is what a secret's value is shown as.
const Redacted = "<redacted>"

// secretKey reports a key whose value is a secret: a password, a token, a
// key's hash, a private key, or a header that carries credentials (a push
// subscription's Authorization, Cookie or API key header).
func secretKey(key string) bool {
	k := strings.ToLower(key)
	for _, s := range []string{"password", "passwd", "secret", "token", "sha256", "credential", "private",
		"authorization", "cookie", "apikey", "api_key", "api-key"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

// Shown is the config file the gateway runs, as the admin API shows it:
// its YAML as JSON values (aliases resolved, ${env:...} and
// ${file:...} references as written, since they name a secret rather than
// hold it), with the value of every key that holds a secret (a password,
// token, secret, key hash or private key, at any depth, in plugin configs
// too) replaced by Redacted. redacted lists those keys' paths.
func (c *Config) Shown() (shown any, redacted []string, err error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(c.raw, &doc); err != nil {
		return nil, nil, fmt.Errorf("reading %s again: %w", c.File, err)
	}
	if len(doc.Content) == 0 {
		return map[string]any{}, []string{}, nil
	}
	redacted = []string{}
	shown = showNode(doc.Content[0], "", &redacted, 0)
	return shown, redacted, nil
}

// showNode converts n, at path, redacting secrets.
func showNode(n *yaml.Node, path string, redacted *[]string, depth int) any {
	if depth > 64 {
		return "<too deep>"
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return showNode(n.Alias, path, redacted, depth+1)
	}
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i].Value, n.Content[i+1]
			p := k
			if path != "" {
				p = path + "." + k
			}
			for i := 0; v.Kind == yaml.AliasNode && v.Alias != nil && i < 64; i++ {
				v = v.Alias // a secret given by an alias is as secret
			}
			if secretKey(k) && v.Kind == yaml.ScalarNode && v.Value != "" && !strings.HasPrefix(v.Value, "${") {
				m[k] = Redacted
				*redacted = append(*redacted, p)
				continue
			}
			m[k] = showNode(v, p, redacted, depth+1)
		}
		return m
	case yaml.SequenceNode:
		s := make([]any, len(n.Content))
		for i, e := range n.Content {
			s[i] = showNode(e, fmt.Sprintf("%s[%d]", path, i), redacted, depth+1)
		}
		return s
	case yaml.ScalarNode:
		var v any
		if err := n.Decode(&v); err != nil {
			return n.Value
		}
		switch v.(type) {
		case bool, int, int64, uint64, float64, nil:
			return v
		}
		return n.Value
	}
	return nil
}
