package config

import (
	"maps"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/mqgate/mqgate/core/topicname"
)

// validate checks what the schema cannot: values that depend on each other
// and references between sections. It also fills in what is derived: names,
// plugin kinds, the default cluster and each topic's cluster. Entries whose
// shape was already wrong are skipped, so one mistake gives one error.
func (d *decoder) validate(c *Config) {
	if line, ok := d.lines["version"]; ok && !d.broken["version"] && c.Version != 1 {
		d.errorf(line, "version", "unsupported version %d; want 1", c.Version)
	}
	d.validatePlugins(c)
	d.validateClusters(c)
	d.validateTopics(c)
	d.validateDelay(c)
	d.validateGroups(c)
	d.validateListeners(c)
}

func (d *decoder) validateGroups(c *Config) {
	for _, name := range slices.Sorted(maps.Keys(c.Groups)) {
		c.Groups[name].Name = name
		path := keyPath("groups", name)
		if msg := topicname.GroupProblem(name); msg != "" {
			d.errorf(d.lines[path], path, "invalid group name: %s", msg)
		}
	}
	if bd := c.HTTP.BatchDefault; bd != nil && bd.Group != "" && bd.Topic != "" {
		for key, v := range map[string]string{"http.batch_default.group": bd.Group, "http.batch_default.topic": bd.Topic} {
			if msg := topicname.Problem(v); msg != "" && !d.broken[key] {
				d.errorf(d.lines[key], key, "%s", msg)
			}
		}
	}
}

func (d *decoder) validateDelay(c *Config) {
	dl := &c.Delay
	if dl.Cluster == "" {
		dl.Cluster = c.DefaultCluster
	} else if _, ok := c.Clusters[dl.Cluster]; !ok && !d.broken["clusters"] {
		d.errorf(d.lines["delay.cluster"], "delay.cluster", "no cluster %q under clusters", dl.Cluster)
	}
	if dl.Base == 1 && !d.broken["delay.base"] {
		d.errorf(d.lines["delay.base"], "delay.base", "must be at least 2")
	}
	if msg := topicname.Problem(dl.TopicPrefix + "cancel"); msg != "" && !d.broken["delay.topic_prefix"] {
		d.errorf(d.lines["delay.topic_prefix"], "delay.topic_prefix", "makes invalid topic names: %s", msg)
	}
}

var sha256Hex = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)

func (d *decoder) validatePlugins(c *Config) {
	for _, name := range slices.Sorted(maps.Keys(c.Plugins)) {
		p := c.Plugins[name]
		p.Name = name
		path := keyPath("plugins", name)
		if d.broken[path] || d.broken[keyPath(path, "builtin")] || d.broken[keyPath(path, "path")] {
			continue
		}
		line := d.lines[path]
		switch {
		case p.Builtin != "" && p.Path != "":
			d.errorf(line, path, "set one of builtin or path, not both")
		case p.Builtin == "" && p.Path == "":
			d.errorf(line, path, "set builtin (a plugin bundled with mqgate) or path (an executable)")
		case p.Builtin != "":
			for _, k := range []string{"kind", "sha256"} {
				if l, ok := d.lines[keyPath(path, k)]; ok && !d.broken[keyPath(path, k)] {
					d.errorf(l, keyPath(path, k), "only for path plugins; a builtin plugin's %s is known", k)
				}
			}
			kind, ok := Builtins[p.Builtin]
			if !ok {
				d.errorf(d.lines[keyPath(path, "builtin")], keyPath(path, "builtin"),
					"unknown builtin plugin %q; bundled: %s", p.Builtin, strings.Join(slices.Sorted(maps.Keys(Builtins)), ", "))
			}
			p.Kind = kind
		default:
			if p.Kind == "" {
				p.Kind = KindBackend
			}
			if p.SHA256 != "" {
				if !sha256Hex.MatchString(p.SHA256) {
					d.errorf(d.lines[keyPath(path, "sha256")], keyPath(path, "sha256"),
						"want 64 hex digits, got %d characters", len(p.SHA256))
				}
				p.SHA256 = strings.ToLower(p.SHA256)
			}
		}
	}
}

func (d *decoder) validateClusters(c *Config) {
	for _, name := range slices.Sorted(maps.Keys(c.Clusters)) {
		cl := c.Clusters[name]
		cl.Name = name
		path := keyPath("clusters", name)
		cl.configLine = d.lines[path]
		if l, ok := d.lines[keyPath(path, "config")]; ok {
			cl.configLine = l
			cl.config = d.values[keyPath(path, "config")]
		}
		pp := keyPath(path, "plugin")
		if cl.Plugin == "" || d.broken[pp] || d.broken["plugins"] {
			continue
		}
		switch p, ok := c.Plugins[cl.Plugin]; {
		case !ok:
			d.errorf(d.lines[pp], pp, "no plugin %q under plugins", cl.Plugin)
		case p.Kind == KindSink:
			d.errorf(d.lines[pp], pp, "plugin %q is a sink; a cluster needs a backend", cl.Plugin)
		}
	}

	switch {
	case d.broken["clusters"] || d.broken["default_cluster"]:
	case c.DefaultCluster != "":
		if _, ok := c.Clusters[c.DefaultCluster]; !ok {
			d.errorf(d.lines["default_cluster"], "default_cluster", "no cluster %q under clusters", c.DefaultCluster)
		}
	case len(c.Clusters) == 1:
		for name := range c.Clusters {
			c.DefaultCluster = name
		}
	case len(c.Clusters) > 1:
		line, ok := d.lines["default_cluster"] // present but null or ""
		if !ok {
			line = d.lines["clusters"]
		}
		d.errorf(line, "default_cluster", "required when there is more than one cluster")
	}
}

func (d *decoder) validateTopics(c *Config) {
	for _, name := range slices.Sorted(maps.Keys(c.Topics)) {
		t := c.Topics[name]
		t.Name = name
		path := keyPath("topics", name)
		if msg := topicname.Problem(name); msg != "" {
			d.errorf(d.lines[path], path, "invalid topic name: %s", msg)
		}
		if t.Burst > 0 && t.RateLimit == 0 {
			bp := keyPath(path, "burst")
			d.errorf(d.lines[bp], bp, "burst needs a rate_limit; without one the topic is not limited")
		}
		cp := keyPath(path, "cluster")
		if t.Cluster == "" {
			t.Cluster = c.DefaultCluster
			continue
		}
		if _, ok := c.Clusters[t.Cluster]; !ok && !d.broken["clusters"] {
			d.errorf(d.lines[cp], cp, "no cluster %q under clusters", t.Cluster)
		}
	}
}

// validateListeners rejects two listeners on the same port whose hosts
// overlap. The later one in the file is reported, naming the earlier.
func (d *decoder) validateListeners(c *Config) {
	type listener struct{ key, addr string }
	ls := []listener{
		{"http.listen", c.HTTP.Listen},
		{"thrift.producer_listen", c.Thrift.ProducerListen},
		{"thrift.consumer_listen", c.Thrift.ConsumerListen},
	}
	for i, b := range ls {
		for _, a := range ls[:i] {
			if d.broken[a.key] || d.broken[b.key] || !sameListener(a.addr, b.addr) {
				continue
			}
			d.broken[b.key] = true // one error per listener
			aLine, aSet := d.lines[a.key]
			bLine, bSet := d.lines[b.key]
			switch {
			case bSet && aSet && aLine > bLine:
				d.errorf(aLine, a.key, "%q is already used by %s (line %d)", a.addr, b.key, bLine)
			case bSet && aSet:
				d.errorf(bLine, b.key, "%q is already used by %s (line %d)", b.addr, a.key, aLine)
			case bSet:
				d.errorf(bLine, b.key, "%q is already used by %s (its default)", b.addr, a.key)
			case aSet:
				d.errorf(aLine, a.key, "%q is already used by %s (its default)", a.addr, b.key)
			}
			break
		}
	}
}

// sameListener reports whether listening on a and b would collide: the same
// non-zero port on the same host, or on any host when one is a wildcard.
func sameListener(a, b string) bool {
	ah, ap, err1 := net.SplitHostPort(a)
	bh, bp, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil {
		return false
	}
	an, _ := strconv.Atoi(ap) // checked by the schema
	bn, _ := strconv.Atoi(bp)
	if an != bn || an == 0 {
		return false
	}
	return ah == bh || wildcard(ah) || wildcard(bh)
}

func wildcard(host string) bool {
	return host == "" || host == "0.0.0.0" || host == "::"
}
