package config

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/mqgate/mqgate/core/auth/acl"
	"github.com/mqgate/mqgate/core/topicname"
	"github.com/mqgate/mqgate/core/transform"
	"github.com/mqgate/mqgate/sdk"
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
	d.validateAutoCreate(c)
	d.validateDelay(c)
	d.validateGroups(c)
	d.validatePush(c)
	d.validateSinks(c)
	d.validateListeners(c)
	d.validateHTTP(c)
	d.validateAuth(c)
	d.validateACL(c)
	d.validateQuotas(c)
	d.validateTLS(c)
}

func (d *decoder) validateAuth(c *Config) {
	a := c.Auth
	if a == nil || d.broken["auth"] {
		return
	}
	keys := map[string]string{} // sha256 -> the entry that has it
	for i, k := range a.APIKeys {
		kp := fmt.Sprintf("auth.api_keys[%d]", i)
		if k == nil || d.broken[kp] {
			continue
		}
		if sp, line, ok := d.keyAt(kp, "sha256"); ok {
			switch first, dup := keys[k.SHA256]; {
			case !isSHA256Hex(k.SHA256):
				d.errorf(line, sp, "must be the 64 lower-case hex digits of the key's SHA-256 (printf %%s KEY | sha256sum), not the key")
			case dup:
				d.errorf(line, sp, "the same key as %s: a key must name one principal", first)
			default:
				keys[k.SHA256] = kp
			}
		}
	}
	if j := a.JWT; j != nil && !d.broken["auth.jwt"] {
		line := d.lines["auth.jwt"]
		switch {
		case (j.JWKSFile == "") == (j.JWKSURL == ""):
			d.errorf(line, "auth.jwt", "set one of jwks_file and jwks_url")
		case j.JWKSURL != "":
			if u, err := url.Parse(j.JWKSURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				d.errorf(d.lines["auth.jwt.jwks_url"], "auth.jwt.jwks_url", "%q is not an http(s) URL", j.JWKSURL)
			}
		}
	}
	if a.ThriftToken != nil && !d.broken["auth.thrift_token"] {
		d.validateThriftToken(a)
	}
	for i, n := range a.Networks {
		kp := fmt.Sprintf("auth.networks[%d]", i)
		if n == nil || d.broken[kp] {
			continue
		}
		for j, cidr := range n.CIDRs {
			if _, err := netip.ParsePrefix(cidr); err != nil {
				cp := fmt.Sprintf("%s.cidrs[%d]", kp, j)
				line := d.lines[cp]
				if line == 0 {
					line = d.lines[kp+".cidrs"]
				}
				d.errorf(line, cp, "%q is not a network such as 10.0.0.0/8 or 192.168.1.7/32", cidr)
			}
		}
	}
}

// validateThriftToken checks auth.thrift_token: a token is an API key or a
// JWT, so one of them must be configured; the property must not be one
// only the gateway writes; the separator must hold a character no group
// name may.
func (d *decoder) validateThriftToken(a *Auth) {
	const kp = "auth.thrift_token"
	tt := a.ThriftToken
	if len(a.APIKeys) == 0 && a.JWT == nil {
		d.errorf(d.lines[kp], kp, "a token is an API key or a JWT: set auth.api_keys or auth.jwt too")
	}
	if pp, line, ok := d.keyAt(kp, "property"); ok && tt.Property != "" {
		if p := topicname.HeaderProblem(tt.Property); p != "" {
			d.errorf(line, pp, "%s", p)
		}
	}
	if sp, line, ok := d.keyAt(kp, "group_separator"); ok && tt.GroupSeparator != "" {
		if !strings.ContainsFunc(tt.GroupSeparator, func(r rune) bool { return !topicname.NameChar(r) }) {
			d.errorf(line, sp, "%q could be part of a group name: it must hold a character outside [a-zA-Z0-9._-], such as \"@\"", tt.GroupSeparator)
		}
	}
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !('0' <= s[i] && s[i] <= '9' || 'a' <= s[i] && s[i] <= 'f') {
			return false
		}
	}
	return true
}

func (d *decoder) validateACL(c *Config) {
	for i, r := range c.ACL {
		kp := fmt.Sprintf("acl[%d]", i)
		if r == nil || d.broken[kp] {
			continue
		}
		if pp, line, ok := d.keyAt(kp, "principal"); ok {
			if _, err := acl.ParsePattern(r.Principal); err != nil {
				d.errorf(line, pp, "%v", err)
			}
		}
		if op, line, ok := d.keyAt(kp, "operations"); ok {
			for _, o := range r.Operations {
				if _, err := acl.ParseOp(o); err != nil {
					d.errorf(line, op, "%v", err)
				}
			}
		}
		for _, key := range []string{"topics", "groups"} {
			list := r.Topics
			if key == "groups" {
				list = r.Groups
			}
			if lp, line, ok := d.keyAt(kp, key); ok {
				if len(list) == 0 {
					d.errorf(line, lp, "empty: leave the key out for any name")
				}
				for _, s := range list {
					if _, err := acl.ParsePattern(s); err != nil {
						d.errorf(line, lp, "%v", err)
					}
				}
			}
		}
	}
}

// validateQuotas checks the quota rules and fills in their bursts. A rule
// that can never apply (its principal is an earlier rule's, or follows a
// rule for "*") is a mistake: the first matching rule is the one used.
func (d *decoder) validateQuotas(c *Config) {
	first := map[string]string{} // principal pattern -> the rule that has it
	everyone := ""               // the first rule for "*"
	for i, q := range c.Quotas {
		kp := fmt.Sprintf("quotas[%d]", i)
		if q == nil || d.broken[kp] {
			continue
		}
		if pp, line, ok := d.keyAt(kp, "principal"); ok {
			if _, err := acl.ParsePattern(q.Principal); err != nil {
				d.errorf(line, pp, "%v", err)
			} else if everyone != "" {
				d.errorf(line, pp, "never applies: %s matches every principal first", everyone)
			} else if earlier, dup := first[q.Principal]; dup {
				d.errorf(line, pp, "never applies: %s has the same principal and applies first", earlier)
			} else {
				first[q.Principal] = kp
				if q.Principal == "*" {
					everyone = kp
				}
			}
		}
		if bp, line, ok := d.keyAt(kp, "burst"); ok && q.MessagesPerSecond == 0 && !d.broken[keyPath(kp, "messages_per_second")] {
			d.errorf(line, bp, "burst needs a messages_per_second; without one the principal's messages are not limited")
		}
		if q.Burst == 0 {
			q.Burst = q.MessagesPerSecond
		}
		bp, line, given := d.keyAt(kp, "burst_bytes")
		switch {
		case !given:
			if q.BytesPerSecond > 0 {
				q.BurstBytes = max(q.BytesPerSecond, c.HTTP.MaxMessageBytes)
			}
		case q.BytesPerSecond == 0 && !d.broken[keyPath(kp, "bytes_per_second")]:
			d.errorf(line, bp, "burst_bytes needs a bytes_per_second; without one the principal's bytes are not limited")
		case q.BurstBytes < c.HTTP.MaxMessageBytes && !d.broken["http.max_message_bytes"]:
			d.errorf(line, bp, "%d bytes is below http.max_message_bytes (%d): a message of the largest size could never pass",
				q.BurstBytes, c.HTTP.MaxMessageBytes)
		}
	}
}

func (d *decoder) validateHTTP(c *Config) {
	h := &c.HTTP
	const key = "http.max_body_bytes_in_flight"
	switch {
	case h.MaxBodyBytesInFlight == 0:
		h.MaxBodyBytesInFlight = DefaultBodyBytesInFlightFactor * h.MaxBodyBytes
	case h.MaxBodyBytesInFlight < h.MaxBodyBytes && !d.broken[key] && !d.broken["http.max_body_bytes"]:
		d.errorf(d.lines[key], key, "%d bytes is below http.max_body_bytes (%d): a body of the largest size could never be read",
			h.MaxBodyBytesInFlight, h.MaxBodyBytes)
	}
	if c.Thrift.Limits.ReadTimeout == 0 {
		c.Thrift.Limits.ReadTimeout = h.RequestTimeout
	}
}

func (d *decoder) validateGroups(c *Config) {
	reserved := &topicname.Reserved{DelayPrefix: c.Delay.TopicPrefix}
	subscribed := 0
	for _, name := range slices.Sorted(maps.Keys(c.Groups)) {
		g := c.Groups[name]
		g.Name = name
		path := keyPath("groups", name)
		if msg := topicname.GroupProblem(name); msg != "" {
			d.errorf(d.lines[path], path, "invalid group name: %s", msg)
			continue
		}
		tp, line, ok := d.keyAt(path, "topics")
		if !ok || len(g.Topics) == 0 {
			continue
		}
		if err := reserved.Group(name); err != nil {
			d.errorf(line, tp, "%v", err)
			continue
		}
		subscribed++
		if max := c.Subscriptions.MaxTopicsPerGroup; len(g.Topics) > max && !d.broken["subscriptions.max_topics_per_group"] {
			d.errorf(line, tp, "%d topics, over subscriptions.max_topics_per_group (%d)", len(g.Topics), max)
		}
		dlq := c.Consume.DeadLetterTopic
		if g.DeadLetterTopic != nil {
			dlq = *g.DeadLetterTopic
		}
		dlq = strings.ReplaceAll(dlq, "{group}", name)
		d.checkTopics(tp, g.Topics, func(topic string) error { return reserved.Consume(name, topic, dlq) })
	}
	if max := c.Subscriptions.MaxGroups; subscribed > max && !d.broken["subscriptions.max_groups"] {
		d.errorf(d.lines["groups"], "groups", "%d groups have topics, over subscriptions.max_groups (%d)", subscribed, max)
	}
	if bd := c.HTTP.BatchDefault; bd != nil && bd.Group != "" && bd.Topic != "" {
		for key, v := range map[string]string{"http.batch_default.group": bd.Group, "http.batch_default.topic": bd.Topic} {
			if msg := topicname.Problem(v); msg != "" && !d.broken[key] {
				d.errorf(d.lines[key], key, "%s", msg)
			}
		}
	}
}

// checkTopics reports, at its own line, each element of the list of topics
// at path that is not a valid topic name, that check refuses, or that
// repeats an earlier one, and returns the indexes of the others.
func (d *decoder) checkTopics(path string, topics []string, check func(topic string) error) []int {
	var good []int
	first := map[string]int{}
	for j, topic := range topics {
		ep := fmt.Sprintf("%s[%d]", path, j)
		if d.broken[ep] {
			continue
		}
		line := d.lines[ep]
		if msg := topicname.Problem(topic); msg != "" {
			d.errorf(line, ep, "invalid topic name: %s", msg)
			continue
		}
		if err := check(topic); err != nil {
			d.errorf(line, ep, "%v", err)
			continue
		}
		if k, dup := first[topic]; dup {
			d.errorf(line, ep, "duplicate topic %q; first at topics[%d]", topic, k)
			continue
		}
		first[topic] = j
		good = append(good, j)
	}
	return good
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
		p.line = d.lines[path]
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
			if p.InProcess && ok && !InProcessBuiltins[p.Builtin] {
				d.errorf(d.lines[keyPath(path, "in_process")], keyPath(path, "in_process"),
					"plugin %q cannot run in the gateway's process; bundled plugins that can: %s", p.Builtin, inProcessList())
			}
		default:
			if p.InProcess {
				d.errorf(d.lines[keyPath(path, "in_process")], keyPath(path, "in_process"),
					"only for bundled plugins (builtin:); a plugin executable always runs as a process of its own")
			}
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

// inProcessList names the builtins that may run in the gateway's process.
func inProcessList() string {
	if len(InProcessBuiltins) == 0 {
		return "none in this build"
	}
	return strings.Join(slices.Sorted(maps.Keys(InProcessBuiltins)), ", ")
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

// maxPushNameLength is the longest push subscription or sink name accepted.
const maxPushNameLength = 100

// pushGroupPrefix starts the default consumer group of a push subscription.
const pushGroupPrefix = "mqgate-push-"

// validatePush checks the push subscriptions and sets each one's default
// group. An entry or key whose shape was already wrong is skipped.
func (d *decoder) validatePush(c *Config) {
	for i, p := range c.Push {
		pp := fmt.Sprintf("push[%d]", i)
		if p == nil || d.broken[pp] {
			continue
		}
		at := func(key string) (string, int, bool) { return d.keyAt(pp, key) }
		d.checkConsumer(c, pp, consumerEntry{kind: "push", name: p.Name, cluster: p.Cluster, group: &p.Group,
			groupPrefix: pushGroupPrefix, topics: p.Topics})

		seen := map[string]int{}
		for j, target := range p.Targets {
			tp := fmt.Sprintf("%s.targets[%d]", pp, j)
			if d.broken[tp] {
				continue
			}
			norm, msg := checkTarget(target)
			if msg != "" {
				d.errorf(d.lines[tp], tp, "%s", msg)
				continue
			}
			if k, dup := seen[norm]; dup {
				d.errorf(d.lines[tp], tp, "duplicate target %q; same as targets[%d]", target, k)
				continue
			}
			seen[norm] = j
		}

		d.checkHeaders(pp, "headers", p.Headers, true)

		if hp, line, ok := at("host_header"); ok {
			if msg := checkHostHeader(p.HostHeader); msg != "" {
				d.errorf(line, hp, "%s", msg)
			}
		}

		if bp, line, ok := d.keyAt(keyPath(pp, "retry"), "backoff"); ok && len(p.Retry.Backoff) == 0 {
			d.errorf(line, bp, "must have at least one entry; leave it out for the default [1s, 5s, 30s, 1m]")
		}

		if dp, line, ok := at("delivery"); ok && (p.Delivery < 1 || p.Delivery > 3) {
			d.errorf(line, dp, "invalid value %d; want 1, 2 or 3 (delivery guarantees: "+
				"1 periodic commits, 2 commit after success with a local record, 3 single-node, fsynced record)", p.Delivery)
		}

		if fp, line, ok := at("filter"); ok {
			if _, err := transform.CompileFilter(p.Filter); err != nil {
				d.errorf(line, fp, "does not compile: %s", oneLine(err))
			}
		}

		if tp, line, ok := at("transform"); ok && p.Transform != nil {
			d.validateTransform(p.Transform, tp, line)
		}

		d.validatePushDDMQ(p, pp)
	}
}

// consumerEntry is what push subscriptions and sinks have in common: a
// named consumer of topics, one group session per topic.
type consumerEntry struct {
	kind        string // "push" or "sink", for messages
	name        string
	cluster     string
	group       *string // set to groupPrefix+name when not given
	groupPrefix string
	topics      []string
}

// consumerSession is one (cluster, group, topic) group session.
type consumerSession struct{ cluster, group, topic string }

// checkConsumer checks the name, cluster, group and topics of the push or
// sinks entry at pp and sets its default group. Names are unique per kind;
// no two entries of either kind share a group session.
func (d *decoder) checkConsumer(c *Config, pp string, e consumerEntry) {
	if d.consumerNames == nil {
		d.consumerNames = map[string]int{}
		d.consumerSessions = map[consumerSession]string{}
	}
	at := func(key string) (string, int, bool) { return d.keyAt(pp, key) }
	// An entry is the gateway's own consumer, but it may not consume the
	// delay tiers or join their groups either.
	reserved := &topicname.Reserved{DelayPrefix: c.Delay.TopicPrefix}

	// A duplicate name is one problem; its groups and sessions would
	// collide too, which is not reported again.
	nameOK := false
	if np, line, ok := at("name"); ok {
		if msg := entryNameProblem(e.kind, e.name); msg != "" {
			d.errorf(line, np, "%s", msg)
		} else if first, dup := d.consumerNames[e.kind+"\x00"+e.name]; dup {
			d.errorf(line, np, "duplicate %s name %q; first on line %d", e.kind, e.name, first)
		} else {
			d.consumerNames[e.kind+"\x00"+e.name] = line
			nameOK = true
		}
	}

	clusterOK := true
	if cp, line, ok := at("cluster"); ok {
		if _, exists := c.Clusters[e.cluster]; !exists && !d.broken["clusters"] {
			d.errorf(line, cp, "no cluster %q under clusters", e.cluster)
			clusterOK = false
		}
	}

	groupOK := nameOK
	if gp, line, ok := at("group"); ok {
		groupOK = true
		if msg := topicname.GroupProblem(*e.group); msg != "" {
			d.errorf(line, gp, "invalid group name: %s", msg)
			groupOK = false
		} else if err := reserved.Group(*e.group); err != nil {
			d.errorf(line, gp, "%v", err)
			groupOK = false
		}
	} else if *e.group == "" && e.name != "" {
		*e.group = e.groupPrefix + e.name
	}

	for _, j := range d.checkTopics(pp+".topics", e.topics, reserved.Topic) {
		topic := e.topics[j]
		tp := fmt.Sprintf("%s.topics[%d]", pp, j)
		line := d.lines[tp]
		if !groupOK || !clusterOK {
			continue
		}
		s := consumerSession{e.cluster, *e.group, topic}
		if s.cluster == "" {
			s.cluster = c.ClusterFor(topic)
		}
		if other, taken := d.consumerSessions[s]; taken {
			d.errorf(line, tp, "%s already consumes topic %q from cluster %q as group %q; "+
				"the two would share one consumer-group session", other, topic, s.cluster, s.group)
			continue
		}
		d.consumerSessions[s] = fmt.Sprintf("%s (%q, line %d)", pp, e.name, d.lines[pp])
	}
}

// cproxyErrorBackoff is the wait of DDMQ's consumer proxy before retrying
// a request that failed (no reply, or a status other than 200): 1 s
// doubled per retry up to 128 s (carrera-consumer's
// cproxy/actions/http/CarreraAsyncRequest.java, DEFAULT_RETRY_DELAY <<
// min(n, MAX_RETRY_DELAY_FACTOR)). Envelope ddmq takes it as
// retry.backoff's default.
var cproxyErrorBackoff = []time.Duration{
	time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second,
	16 * time.Second, 32 * time.Second, 64 * time.Second, 128 * time.Second,
}

// Bounds of the ddmq: settings; each is paid for on every message.
const (
	maxDDMQQueryParams    = 32
	maxDDMQRetryIntervals = 64
)

// validatePushDDMQ checks what envelope ddmq adds to push entry p at pp:
// the ddmq: settings, method GET, and retry.backoff's default.
func (d *decoder) validatePushDDMQ(p *Push, pp string) {
	at := func(key string) (string, int, bool) { return d.keyAt(pp, key) }
	isDDMQ := p.Envelope == "ddmq"
	if mp, line, ok := at("method"); ok && p.Method == "GET" && !isDDMQ {
		d.errorf(line, mp, "GET is for envelope: ddmq only (DDMQ's consumer proxy sends its form in the body of a GET too); "+
			"other envelopes use POST, PUT or PATCH")
	}
	dp, line, given := at("ddmq")
	if !isDDMQ {
		if given {
			d.errorf(line, dp, "ddmq: applies to envelope: ddmq only; set envelope: ddmq or remove it")
		}
		return
	}
	if _, _, ok := d.keyAt(keyPath(pp, "retry"), "backoff"); !ok && !d.broken[keyPath(pp, "retry")] {
		p.Retry.Backoff = slices.Clone(cproxyErrorBackoff)
	}
	c := &p.DDMQ
	dat := func(key string) (string, int, bool) { return d.keyAt(dp, key) }

	if ap, _, ok := dat("append_context"); ok {
		first := map[string]int{}
		for i, name := range c.AppendContext {
			ep := fmt.Sprintf("%s[%d]", ap, i)
			if d.broken[ep] {
				continue
			}
			if j, dup := first[name]; dup {
				d.errorf(d.lines[ep], ep, "duplicate %s; first at append_context[%d]", name, j)
				continue
			}
			first[name] = i
		}
	}

	if qp, line, ok := dat("query_params"); ok {
		if len(c.QueryParams) > maxDDMQQueryParams {
			d.errorf(line, qp, "%d query parameters; at most %d", len(c.QueryParams), maxDDMQQueryParams)
		}
		for _, name := range d.sortedByLine(qp, c.QueryParams) {
			ep := keyPath(qp, name)
			if _, err := transform.CompilePath(c.QueryParams[name]); err != nil {
				d.errorf(d.lines[ep], ep, "%v", err)
			}
		}
	}

	if op, line, ok := dat("order_key"); ok {
		switch c.OrderKey {
		case "QID", "KEY":
		default:
			if _, err := transform.CompilePath(c.OrderKey); err != nil {
				d.errorf(line, op, "want QID, KEY or a JSON path like $.user.id: %v", err)
			}
		}
		if orp, oline, set := at("order"); set {
			d.errorf(oline, orp, "order and ddmq.order_key (line %d) both say how messages are ordered; set one", line)
		}
	}

	if rp, line, ok := dat("retry_intervals"); ok && len(c.RetryIntervals) > maxDDMQRetryIntervals {
		d.errorf(line, rp, "%d intervals; at most %d", len(c.RetryIntervals), maxDDMQRetryIntervals)
	}
}

// validateTransform checks the transform t of a push entry, written at
// path on line.
func (d *decoder) validateTransform(t *PushTransform, path string, line int) {
	if t.Body == "" && len(t.Headers) == 0 && len(t.Transit) == 0 {
		// Not when body, transit or a header was written but was wrong:
		// that is reported already.
		hs, ts := d.values[keyPath(path, "headers")], d.values[keyPath(path, "transit")]
		if !d.broken[keyPath(path, "body")] && !d.broken[keyPath(path, "headers")] && !d.broken[keyPath(path, "transit")] &&
			(hs == nil || len(hs.Content) == 0) && (ts == nil || len(ts.Content) == 0) {
			d.errorf(line, path, "set body, transit or headers")
		}
		return
	}
	if tp, tline, ok := d.keyAt(path, "transit"); ok {
		if t.Body != "" {
			d.errorf(tline, tp, "body (line %d) and transit both build the body; set one", d.lines[keyPath(path, "body")])
		}
		d.validateTransit(tp, tline, t.Transit)
	}
	// Each expression on its own, so that every one that does not compile
	// is reported, in the file's order.
	if bp, line, ok := d.keyAt(path, "body"); ok {
		d.compileTransform(bp, line, transform.Spec{Body: t.Body})
	}
	hp := keyPath(path, "headers")
	for _, name := range d.checkHeaders(path, "headers", t.Headers, false) {
		ep := keyPath(hp, name)
		d.compileTransform(ep, d.lines[ep], transform.Spec{Headers: map[string]string{name: t.Headers[name]}})
	}
}

// validateTransit checks a transform's transit mapping, written at path
// on line: each entry on its own line.
func (d *decoder) validateTransit(path string, line int, m map[string]string) {
	if len(m) > transform.MaxTransitEntries {
		d.errorf(line, path, "%d entries; at most %d", len(m), transform.MaxTransitEntries)
		return
	}
	for _, to := range d.sortedByLine(path, m) {
		ep := keyPath(path, to)
		d.compileTransform(ep, d.lines[ep], transform.Spec{Transit: map[string]string{to: m[to]}})
	}
}

// keyAt returns the path and line of key under parent and whether it was
// written in the file, not null, with a value of the right shape.
func (d *decoder) keyAt(parent, key string) (string, int, bool) {
	kp := keyPath(parent, key)
	_, given := d.values[kp]
	return kp, d.lines[kp], given && !d.broken[kp]
}

// compileTransform reports at path the expression of spec that does not
// compile.
func (d *decoder) compileTransform(path string, line int, spec transform.Spec) {
	_, err := transform.Compile(spec)
	var ce *transform.CompileError
	if errors.As(err, &ce) {
		err = ce.Err
	}
	if err != nil {
		d.errorf(line, path, "does not compile: %s", oneLine(err))
	}
}

// oneLine keeps an expression error to its first line: expr-lang follows
// it with the source and a caret, which say no more than the line:column
// the first line ends with.
func oneLine(err error) string {
	msg, _, _ := strings.Cut(strings.TrimSpace(err.Error()), "\n")
	return strings.NewReplacer("\r", `\r`, "\u0085", `\u0085`, "\u2028", `\u2028`, "\u2029", `\u2029`).Replace(strings.TrimSpace(msg))
}

// sortedByLine returns the keys of m, written under parent, in the order
// of their lines, then by name.
func (d *decoder) sortedByLine(parent string, m map[string]string) []string {
	names := slices.Sorted(maps.Keys(m))
	slices.SortStableFunc(names, func(a, b string) int {
		return d.lines[keyPath(parent, a)] - d.lines[keyPath(parent, b)]
	})
	return names
}

// reservedPrefix starts the headers mqgate sets on every push request.
const reservedPrefix = "x-mqgate-"

// clientHeaders are headers Go's HTTP client sets itself and drops from a
// request's header map.
var clientHeaders = map[string]string{
	"host":              "set it with host_header",
	"content-length":    "the length of the body is sent",
	"transfer-encoding": "the HTTP client chooses it",
	"trailer":           "push requests have no trailers",
}

// checkHeaders checks the header names (and, with values, the values) of
// the mapping key under parent, and returns the valid ones in the file's
// order.
func (d *decoder) checkHeaders(parent, key string, hs map[string]string, values bool) []string {
	hp, _, ok := d.keyAt(parent, key)
	if !ok {
		return nil
	}
	var valid []string
	first := map[string]string{} // lower-case name -> name as written
	for _, name := range d.sortedByLine(hp, hs) {
		ep := keyPath(hp, name)
		line := d.lines[ep]
		lower := strings.ToLower(name)
		msg := ""
		switch {
		case !httpguts.ValidHeaderFieldName(name):
			msg = fmt.Sprintf("%q is not a valid HTTP header name; want letters, digits and !#$%%&'*+-.^_`|~", name)
		case strings.HasPrefix(lower, reservedPrefix):
			msg = fmt.Sprintf("%q is reserved: mqgate sets the X-Mqgate-* headers itself", name)
		case clientHeaders[lower] != "":
			msg = fmt.Sprintf("%q cannot be set here: %s", name, clientHeaders[lower])
		case first[lower] != "":
			msg = fmt.Sprintf("duplicate header %q: header names ignore case, and %q is set on line %d",
				name, first[lower], d.lines[keyPath(hp, first[lower])])
		case values && !httpguts.ValidHeaderFieldValue(hs[name]):
			msg = "not a valid HTTP header value: " + ctlProblem(hs[name])
		}
		if first[lower] == "" {
			first[lower] = name
		}
		if msg != "" {
			d.errorf(line, ep, "%s", msg)
			continue
		}
		valid = append(valid, name)
	}
	return valid
}

// ctlProblem names the first control character of s, which is what
// httpguts.ValidHeaderFieldValue refuses.
func ctlProblem(s string) string {
	for i := 0; i < len(s); i++ {
		if b := s[i]; (b < 0x20 && b != '\t') || b == 0x7f {
			return fmt.Sprintf("control character %U at byte %d", rune(b), i)
		}
	}
	return "control characters are not allowed"
}

// entryNameProblem says what is wrong with the name of a push
// subscription or sink (kind), or returns "".
func entryNameProblem(kind, name string) string {
	if len(name) > maxPushNameLength {
		return fmt.Sprintf("must be at most %d characters; got %d", maxPushNameLength, len(name))
	}
	for i, r := range name {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Sprintf("character %q at byte %d is not allowed; a %s name is made of [a-zA-Z0-9._-]", r, i, kind)
		}
	}
	return ""
}

// checkTarget checks a push target URL. It returns the URL in a form where
// two spellings of one URL are equal, or what is wrong with it.
func checkTarget(target string) (norm, msg string) {
	u, err := url.Parse(target)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", fmt.Sprintf("%q is not a valid URL: %v", target, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Sprintf("%q is not an http(s) URL", target)
	case u.Host == "" || u.Hostname() == "":
		return "", fmt.Sprintf("%q has no host; want a URL like %s://host:port/path", target, u.Scheme)
	case u.User != nil:
		return "", fmt.Sprintf("%q has user info; put credentials in headers (Authorization)", target)
	case strings.Contains(target, "#"):
		return "", fmt.Sprintf("%q has a fragment (#...), which is never sent", target)
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return "", fmt.Sprintf("%q: port %s is not a number from 1 to 65535", target, port)
		}
	}
	u.Host = strings.ToLower(u.Host)
	return u.String(), ""
}

// checkHostHeader checks a Host header given in the config: host or
// host:port, an IPv6 address in brackets.
func checkHostHeader(h string) string {
	const want = "want host or host:port, an IPv6 address in brackets"
	if !httpguts.ValidHostHeader(h) {
		return fmt.Sprintf("%q is not a valid host; %s", h, want)
	}
	host := h
	if strings.Contains(h, ":") && !(strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]")) {
		hh, port, err := net.SplitHostPort(h)
		if err != nil {
			return fmt.Sprintf("%q is not a valid host; %s", h, want)
		}
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return fmt.Sprintf("%q: port %q is not a number from 1 to 65535", h, port)
		}
		host = hh
	}
	if host == "" || host == "[]" {
		return fmt.Sprintf("%q has no host; %s", h, want)
	}
	return ""
}

// sinkGroupPrefix starts the default consumer group of a sink.
const sinkGroupPrefix = "mqgate-sink-"

// maxSinkBatchBytes bounds sinks[].batch.max_bytes: a batch is one message
// to the plugin, held in memory on both ends, concurrency of them at once.
const maxSinkBatchBytes = 64 << 20

// validateSinks checks the sink pipelines and sets each one's default
// group. An entry or key whose shape was already wrong is skipped.
func (d *decoder) validateSinks(c *Config) {
	for i, sk := range c.Sinks {
		pp := fmt.Sprintf("sinks[%d]", i)
		if sk == nil || d.broken[pp] {
			continue
		}
		at := func(key string) (string, int, bool) { return d.keyAt(pp, key) }
		d.checkConsumer(c, pp, consumerEntry{kind: "sink", name: sk.Name, cluster: sk.Cluster, group: &sk.Group,
			groupPrefix: sinkGroupPrefix, topics: sk.Topics})

		sk.configLine = d.lines[pp]
		if cp, line, ok := at("config"); ok {
			sk.configLine = line
			sk.config = d.values[cp]
			if _, taken := sk.Config[sdk.SinkInfoKey]; taken {
				d.errorf(sk.LineOf(sdk.SinkInfoKey), keyPath(cp, sdk.SinkInfoKey),
					"is set by the gateway (the sink's name, group and gateway); remove it")
			}
		}
		if pp, line, ok := at("plugin"); ok && !d.broken["plugins"] {
			switch p, exists := c.Plugins[sk.Plugin]; {
			case !exists:
				d.errorf(line, pp, "no plugin %q under plugins", sk.Plugin)
			case p != nil && p.Kind != KindSink:
				d.errorf(line, pp, "plugin %q is a %s; a sink needs a plugin of kind sink", sk.Plugin, p.Kind)
			}
		}
		if bp, line, ok := d.keyAt(keyPath(pp, "batch"), "max_bytes"); ok && sk.Batch.MaxBytes > maxSinkBatchBytes {
			d.errorf(line, bp, "%d bytes; at most %d (64MiB): a batch is held in memory by the gateway and the plugin", sk.Batch.MaxBytes, maxSinkBatchBytes)
		}
		if bp, line, ok := d.keyAt(keyPath(pp, "retry"), "backoff"); ok && len(sk.Retry.Backoff) == 0 {
			d.errorf(line, bp, "must have at least one entry; leave it out for the default [1s, 5s, 30s, 1m]")
		}
		if fp, line, ok := at("filter"); ok {
			if _, err := transform.CompileFilter(sk.Filter); err != nil {
				d.errorf(line, fp, "does not compile: %s", oneLine(err))
			}
		}
		if tp, line, ok := at("transform"); ok && sk.Transform != nil {
			d.validateTransform(sk.Transform, tp, line)
		}
	}
}
