package config

import (
	"fmt"
	"net/url"
	"strings"

	"gopkg.in/yaml.v3"
)

// Redacted is what a secret's value is shown as.
const Redacted = "<redacted>"

// secretKey reports a key whose value is a secret: a password or pass
// phrase, a token, a key's hash, a private or signing key, or a header that
// carries credentials (a push subscription's Authorization, Cookie or API
// key header).
func secretKey(key string) bool {
	k := strings.ToLower(key)
	if k == "api_keys" {
		return false // auth's list: its hashes are caught one by one, its principals shown
	}
	for _, s := range []string{"pass", "pwd", "secret", "token", "sha256", "credential", "private", "signature",
		"authorization", "cookie", "apikey", "api_key", "api-key"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	// signing_key, hmac_key, x-auth-key; not a Redis `key` template, a
	// push `order_key` or a TLS `key_file` path.
	return (strings.HasSuffix(k, "_key") || strings.HasSuffix(k, "-key")) && k != "order_key"
}

// redactURL hides the password and the query values of a URL-looking
// string (a JWKS URL with user:pass@, a push target with ?access_token=);
// ok is false when s is not such a URL.
func redactURL(s string) (string, bool) {
	if !strings.Contains(s, "://") {
		return s, false
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return s, false
	}
	changed := false
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), Redacted)
		changed = true
	}
	if q := u.Query(); len(q) > 0 {
		for k := range q {
			q[k] = []string{Redacted}
		}
		u.RawQuery = q.Encode()
		changed = true
	}
	return u.String(), changed
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
			if secretKey(k) {
				// Every string beneath a secret's key, a list or a
				// mapping of them too, but references.
				m[k] = redactAll(v, p, redacted, depth+1)
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
		if u, changed := redactURL(n.Value); changed {
			*redacted = append(*redacted, path)
			return u
		}
		return n.Value
	}
	return nil
}

// redactAll is n with every value replaced by Redacted, but references
// (${env:...}, ${file:...}) and empty values, which hold no secret.
func redactAll(n *yaml.Node, path string, redacted *[]string, depth int) any {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 64; i++ {
		n = n.Alias
	}
	switch {
	case depth > 64:
		return Redacted
	case n.Kind == yaml.ScalarNode && (n.Value == "" || reference.MatchString(n.Value)):
		return n.Value
	case n.Kind == yaml.SequenceNode:
		out := make([]any, len(n.Content))
		for i, e := range n.Content {
			out[i] = redactAll(e, fmt.Sprintf("%s[%d]", path, i), redacted, depth+1)
		}
		return out
	case n.Kind == yaml.MappingNode:
		out := map[string]any{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			out[n.Content[i].Value] = redactAll(n.Content[i+1], path+"."+n.Content[i].Value, redacted, depth+1)
		}
		return out
	}
	*redacted = append(*redacted, path)
	return Redacted
}
