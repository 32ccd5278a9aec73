package config

import (
	"gopkg.in/yaml.v3"
)

// autoCreateKey is the one key under topics: that names a setting rather
// than a topic. A topic of that name cannot have an entry.
const autoCreateKey = "auto_create"

// takeAutoCreate reads topics.auto_create into c.AutoCreateTopics (true
// when absent or null) and takes it out of the topics: mapping of root, so
// that the rest of that mapping decodes as topic entries. The mapping
// itself is left as it is: root's topics: gets a copy without the key, and
// an alias elsewhere to the same mapping keeps it whole.
func (d *decoder) takeAutoCreate(root *yaml.Node, c *Config) {
	c.AutoCreateTopics = true
	var topics *yaml.Node
	at := -1 // the index of topics:'s value in root.Content
	for i := 0; i+1 < len(root.Content); i += 2 {
		if k := resolve(root.Content[i]); k.Kind == yaml.ScalarNode && k.Value == "topics" {
			topics, at = resolve(root.Content[i+1]), i+1
			break // a second topics: key is the decoder's to report
		}
	}
	if topics == nil || topics.Kind != yaml.MappingNode {
		return
	}
	path := keyPath("topics", autoCreateKey)
	rest := *topics
	rest.Content = nil
	first := 0
	for i := 0; i+1 < len(topics.Content); i += 2 {
		k, v := resolve(topics.Content[i]), resolve(topics.Content[i+1])
		if k.Kind != yaml.ScalarNode || k.Value != autoCreateKey {
			rest.Content = append(rest.Content, topics.Content[i], topics.Content[i+1])
			continue
		}
		line := topics.Content[i].Line
		if first != 0 {
			d.errorf(line, path, "duplicate key; first set on line %d", first)
			continue
		}
		first = line
		d.lines[path] = line
		d.values[path] = v
		var b bool
		switch {
		case isNull(v):
		case v.ShortTag() == "!!bool" && v.Decode(&b) == nil:
			c.AutoCreateTopics = b
		default:
			d.errorf(line, path, "want true or false (may clients produce to topics without an entry under topics:), got %s; "+
				"a topic named %s cannot have an entry", describe(v), autoCreateKey)
			d.broken[path] = true
		}
	}
	if first != 0 {
		root.Content[at] = &rest
	}
}

// validateAutoCreate refuses topics.auto_create: false without a topic
// entry: clients could produce to no topic at all, which ACLs say more
// plainly when it is meant.
func (d *decoder) validateAutoCreate(c *Config) {
	path := keyPath("topics", autoCreateKey)
	if c.AutoCreateTopics || d.broken[path] || d.broken["topics"] || len(c.Topics) > 0 {
		return
	}
	d.errorf(d.lines[path], path, "false, and no topic has an entry under topics:, so clients may produce to no topic; "+
		"list the topics they may produce to (an entry may be {}), or deny produce with acl:")
}
