package redis

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/mqgate/mqgate/core/transform"
	"github.com/mqgate/mqgate/sdk"
)

// reply is the kind of reply a Redis command gives, which decides the
// go-redis command type that reads it.
type reply int

const (
	replyStatus reply = iota // +OK, or nil for SET NX/XX not done
	replyInt
	replyString
)

// spec is one command `cmd:` may name: what it sends and which keys of its
// entry it takes.
type spec struct {
	// name is the command as sent, lower case (go-redis routes by it).
	name     string
	reply    reply
	required []string
	optional []string
}

// specs are the commands `cmd:` may name, by upper-case name. Every entry
// also takes `cmd` and `when`.
var specs = map[string]spec{
	"SET":     {"set", replyStatus, []string{"key", "value"}, []string{"ttl", "nx", "xx"}},
	"MSET":    {"mset", replyStatus, []string{"pairs"}, nil},
	"HSET":    {"hset", replyInt, []string{"key", "fields"}, nil},
	"HMSET":   {"hmset", replyStatus, []string{"key", "fields"}, nil},
	"HDEL":    {"hdel", replyInt, []string{"key", "fields"}, nil},
	"DEL":     {"del", replyInt, []string{"key"}, nil},
	"EXPIRE":  {"expire", replyInt, []string{"key", "ttl"}, []string{"nx", "xx"}},
	"INCRBY":  {"incrby", replyInt, []string{"key", "by"}, nil},
	"LPUSH":   {"lpush", replyInt, []string{"key", "value"}, []string{"max_len"}},
	"RPUSH":   {"rpush", replyInt, []string{"key", "value"}, []string{"max_len"}},
	"SADD":    {"sadd", replyInt, []string{"key", "member"}, nil},
	"SREM":    {"srem", replyInt, []string{"key", "member"}, nil},
	"ZADD":    {"zadd", replyInt, []string{"key", "member", "score"}, []string{"nx", "xx"}},
	"ZREM":    {"zrem", replyInt, []string{"key", "member"}, nil},
	"XADD":    {"xadd", replyString, []string{"key", "fields"}, []string{"id", "max_len", "approx"}},
	"PUBLISH": {"publish", replyInt, []string{"channel", "value"}, nil},
}

// commandNames lists the names of specs in the order errors name them.
var commandNames = slices.Sorted(maps.Keys(specs))

// rawCommand is one entry of `commands:`. A nil field is a key the entry
// does not set.
type rawCommand struct {
	Cmd     *string         `json:"cmd"`
	When    *source         `json:"when"`
	Key     *source         `json:"key"`
	Value   *source         `json:"value"`
	Member  *source         `json:"member"`
	Score   *source         `json:"score"`
	By      *source         `json:"by"`
	Channel *source         `json:"channel"`
	ID      *source         `json:"id"`
	TTL     *source         `json:"ttl"`
	Fields  json.RawMessage `json:"fields"`
	Pairs   json.RawMessage `json:"pairs"`
	NX      *bool           `json:"nx"`
	XX      *bool           `json:"xx"`
	MaxLen  *int64          `json:"max_len"`
	Approx  *bool           `json:"approx"`
}

// set lists the keys r sets, in the order of the struct.
func (r *rawCommand) set() []string {
	var keys []string
	for _, k := range []struct {
		name string
		set  bool
	}{
		{"key", r.Key != nil}, {"value", r.Value != nil}, {"member", r.Member != nil},
		{"score", r.Score != nil}, {"by", r.By != nil}, {"channel", r.Channel != nil},
		{"id", r.ID != nil}, {"ttl", r.TTL != nil}, {"fields", r.Fields != nil},
		{"pairs", r.Pairs != nil}, {"nx", r.NX != nil}, {"xx", r.XX != nil},
		{"max_len", r.MaxLen != nil}, {"approx", r.Approx != nil},
	} {
		if k.set {
			keys = append(keys, k.name)
		}
	}
	return keys
}

// command is one compiled entry of `commands:`, applied to every record.
type command struct {
	// index is the entry's place in `commands:`; at is "commands[index]",
	// the prefix of its keys in messages.
	index int
	at    string
	// upper is the command as the config names it; spec what it sends.
	upper string
	spec  spec
	// name is spec.name boxed once, the first argument of every command.
	name any
	when *transform.Filter
	// The expressions of the keys the entry sets; nil when not set.
	key, value, member, score, by, channel, id *transform.Expr
	ttl                                        ttl
	fields                                     fields
	pairs                                      pairs
	nx, xx                                     bool
	// maxLen is 0 when not set: LPUSH and RPUSH then trim nothing, XADD
	// caps nothing.
	maxLen int64
	approx bool
}

// parseCommands compiles `commands:`, reporting every problem at its key.
func parseCommands(raws []json.RawMessage, errs *sdk.ConfigErrors) []*command {
	if errs.Has("commands") {
		return nil
	}
	switch {
	case len(raws) == 0:
		errs.Addf("commands", "required: at least one command, such as {cmd: SET, key: \"'user:' + key\", value: value}")
		return nil
	case len(raws) > maxCommands:
		errs.Addf("commands", "at most %d commands, got %d", maxCommands, len(raws))
		return nil
	}
	cmds := make([]*command, 0, len(raws))
	for i, raw := range raws {
		if c := parseCommand(i, raw, errs); c != nil {
			cmds = append(cmds, c)
		}
	}
	return cmds
}

// parseCommand compiles entry i, or returns nil after reporting why not.
func parseCommand(i int, data json.RawMessage, errs *sdk.ConfigErrors) *command {
	c := &command{index: i, at: fmt.Sprintf("commands[%d]", i)}
	before := len(*errs)
	var r rawCommand
	for _, e := range sdk.ConfigErrorsOf(sdk.DecodeConfig(data, &r)) {
		if e.Key == "" {
			errs.Addf(c.at, "want a command such as {cmd: SET, key: ..., value: ...}, got %s", data)
			return nil
		}
		errs.Addf(c.at+"."+e.Key, "%s", e.Msg)
	}
	known := c.checkName(r.Cmd, errs)
	if known {
		c.checkKeys(r.set(), errs)
	}
	c.when = compileWhen(c.at+".when", r.When, errs)
	exprs := []struct {
		key string
		src *source
		dst **transform.Expr
	}{
		{"key", r.Key, &c.key}, {"value", r.Value, &c.value}, {"member", r.Member, &c.member},
		{"score", r.Score, &c.score}, {"by", r.By, &c.by}, {"channel", r.Channel, &c.channel},
		{"id", r.ID, &c.id},
	}
	for _, x := range exprs {
		*x.dst = compile(c.at+"."+x.key, x.src, errs)
	}
	c.ttl = parseTTL(c.at+".ttl", r.TTL, errs)
	if r.Fields != nil {
		c.fields = parseFields(c.at+".fields", r.Fields, c.upper != "HDEL", errs)
	}
	if r.Pairs != nil {
		c.pairs = parsePairs(c.at+".pairs", r.Pairs, errs)
	}
	c.nx, c.xx, c.approx = r.NX != nil && *r.NX, r.XX != nil && *r.XX, r.Approx != nil && *r.Approx
	if c.nx && c.xx {
		errs.Addf(c.at+".xx", "nx and xx exclude each other: nx sets only what does not exist, xx only what does")
	}
	if r.MaxLen != nil {
		if c.maxLen = *r.MaxLen; c.maxLen < 1 {
			errs.Addf(c.at+".max_len", "must be 1 or more, got %d", c.maxLen)
		}
	}
	if c.approx && r.MaxLen == nil && known {
		errs.Addf(c.at+".approx", "applies to max_len, which is not set")
	}
	if len(*errs) > before || !known {
		return nil
	}
	return c
}

// checkName looks up `cmd:` and reports whether it names a known command.
func (c *command) checkName(cmd *string, errs *sdk.ConfigErrors) bool {
	key := c.at + ".cmd"
	switch {
	case errs.Has(key):
		return false
	case cmd == nil || *cmd == "":
		errs.Addf(key, "required: one of %s", strings.Join(commandNames, ", "))
		return false
	}
	c.upper = strings.ToUpper(*cmd)
	s, ok := specs[c.upper]
	if !ok {
		errs.Addf(key, "unknown command %q; want one of %s", *cmd, strings.Join(commandNames, ", "))
		return false
	}
	c.spec, c.name = s, s.name
	return true
}

// checkKeys reports the keys the command requires that are not set and
// the keys set that it does not take.
func (c *command) checkKeys(set []string, errs *sdk.ConfigErrors) {
	for _, k := range c.spec.required {
		if !slices.Contains(set, k) && !errs.Has(c.at+"."+k) {
			errs.Addf(c.at+"."+k, "required by %s", c.upper)
		}
	}
	for _, k := range set {
		if !slices.Contains(c.spec.required, k) && !slices.Contains(c.spec.optional, k) {
			errs.Addf(c.at+"."+k, "%s takes no %s; it takes %s", c.upper, k, c.takes())
		}
	}
}

// takes lists the keys the command takes, for messages.
func (c *command) takes() string {
	keys := slices.Concat(c.spec.required, c.spec.optional, []string{"when"})
	return strings.Join(keys, ", ")
}

// exprs lists the expressions of c, for transform.PlanOf.
func (c *command) exprs() []*transform.Expr {
	out := []*transform.Expr{c.key, c.value, c.member, c.score, c.by, c.channel, c.id, c.ttl.expr,
		c.fields.expr, c.pairs.expr}
	if c.when != nil {
		out = append(out, c.when.Expr())
	}
	out = append(out, c.fields.values...)
	out = append(out, c.pairs.keys...)
	return append(out, c.pairs.values...)
}
