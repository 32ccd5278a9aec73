package redis

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

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

// source is an expression as a config writes it: a string, or a number,
// which is the expression of that constant.
type source string

// UnmarshalJSON accepts a JSON string or number.
func (s *source) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err == nil {
		*s = source(str)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err == nil {
		*s = source(n)
		return nil
	}
	return errors.New("want an expression (a string) or a number")
}

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

// ttl is a time to live: fixed in the config, or an expression evaluated
// per record.
type ttl struct {
	fixed time.Duration
	expr  *transform.Expr
}

// set reports whether the entry has a ttl.
func (t ttl) set() bool { return t.fixed > 0 || t.expr != nil }

// fields are the fields of HSET, HMSET, XADD (names and value
// expressions, or one expression giving a map) or HDEL (names, or one
// expression giving a name or a list of them).
type fields struct {
	// names are sorted; boxed holds each name as an argument, boxed once.
	names []string
	boxed []any
	// values are the expressions of names, nil for HDEL.
	values []*transform.Expr
	// expr is the one expression, when fields is a string.
	expr *transform.Expr
}

// pairs are MSET's keys and values: a list of both as expressions, or one
// expression giving a map of keys to values.
type pairs struct {
	keys, values []*transform.Expr
	expr         *transform.Expr
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

// compile compiles an optional expression at key.
func compile(key string, src *source, errs *sdk.ConfigErrors) *transform.Expr {
	if src == nil || errs.Has(key) {
		return nil
	}
	if strings.TrimSpace(string(*src)) == "" {
		errs.Addf(key, "is empty; want an expression (a literal string is quoted inside: \"'text'\")")
		return nil
	}
	e, err := transform.CompileExpr(string(*src))
	if err != nil {
		errs.Addf(key, "%v%s", err, quoteHint(string(*src), err))
		return nil
	}
	return e
}

// quoteHint suggests quoting an expression that is a bare word the
// expression language does not know, such as `status: paid` meant as the
// text paid.
func quoteHint(src string, err error) string {
	word := strings.TrimSpace(src)
	if !strings.Contains(err.Error(), "unknown name "+word) {
		return ""
	}
	return fmt.Sprintf("\n(for the text %s, quote it inside the expression: \"'%s'\")", word, word)
}

// compileWhen compiles the optional `when:` filter.
func compileWhen(key string, src *source, errs *sdk.ConfigErrors) *transform.Filter {
	if src == nil || errs.Has(key) {
		return nil
	}
	f, err := transform.CompileFilter(string(*src))
	if err != nil {
		errs.Addf(key, "%v", err)
		return nil
	}
	return f
}

// parseTTL reads `ttl:`: a number of seconds or a Go duration ("90s",
// "1h") is fixed; anything else is an expression giving one per record.
func parseTTL(key string, src *source, errs *sdk.ConfigErrors) ttl {
	if src == nil || errs.Has(key) {
		return ttl{}
	}
	s := strings.TrimSpace(string(*src))
	d, isNumber, err := durationOf(s)
	if err == nil {
		return ttl{fixed: d}
	}
	if _, perr := time.ParseDuration(s); isNumber || perr == nil {
		errs.Addf(key, "%v", err) // a constant, but not a valid ttl
		return ttl{}
	}
	return ttl{expr: compile(key, src, errs)}
}

// parseFields reads `fields:`: a map of field names to value expressions
// (withValues) or a list of names (HDEL), or one expression.
func parseFields(key string, raw json.RawMessage, withValues bool, errs *sdk.ConfigErrors) fields {
	var f fields
	var src string
	if json.Unmarshal(raw, &src) == nil {
		s := source(src)
		f.expr = compile(key, &s, errs)
		return f
	}
	if withValues {
		var m map[string]source
		if err := json.Unmarshal(raw, &m); err != nil || len(m) == 0 {
			errs.Addf(key, "want a map of field names to expressions, or one expression giving such a map; got %s", raw)
			return f
		}
		f.names = slices.Sorted(maps.Keys(m))
		for _, name := range f.names {
			s := m[name]
			f.values = append(f.values, compile(key+"."+name, &s, errs))
		}
	} else {
		if err := json.Unmarshal(raw, &f.names); err != nil || len(f.names) == 0 {
			errs.Addf(key, "want a list of field names, or one expression giving a name or a list; got %s", raw)
			return f
		}
	}
	for _, name := range f.names {
		f.boxed = append(f.boxed, name)
	}
	return f
}

// parsePairs reads MSET's `pairs:`: a list of {key, value} expressions,
// or one expression giving a map of keys to values.
func parsePairs(key string, raw json.RawMessage, errs *sdk.ConfigErrors) pairs {
	var p pairs
	var src string
	if json.Unmarshal(raw, &src) == nil {
		s := source(src)
		p.expr = compile(key, &s, errs)
		return p
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil || len(list) == 0 {
		errs.Addf(key, "want a list of {key: ..., value: ...}, or one expression giving a map of keys to values; got %s", raw)
		return p
	}
	for i, item := range list {
		at := fmt.Sprintf("%s[%d]", key, i)
		var kv struct {
			Key   *source `json:"key"`
			Value *source `json:"value"`
		}
		es := sdk.ConfigErrorsOf(sdk.DecodeConfig(item, &kv))
		if len(es) == 1 && es[0].Key == "" {
			errs.Addf(at, "want {key: ..., value: ...}, got %s", item)
			continue
		}
		for _, e := range es {
			errs.Addf(at+"."+e.Key, "%s", e.Msg)
		}
		for _, part := range []struct {
			name string
			src  *source
		}{{"key", kv.Key}, {"value", kv.Value}} {
			if part.src == nil {
				errs.Addf(at+"."+part.name, "required in every pair")
			}
		}
		p.keys = append(p.keys, compile(at+".key", kv.Key, errs))
		p.values = append(p.values, compile(at+".value", kv.Value, errs))
	}
	return p
}

// durationOf reads a time to live: a number of seconds, fractions
// allowed, or a Go duration. isNumber tells the first from the second.
// It must be at least a millisecond, Redis's resolution.
func durationOf(s string) (d time.Duration, isNumber bool, err error) {
	if f, perr := strconv.ParseFloat(s, 64); perr == nil {
		isNumber = true
		if !(f*1e3 >= 1) || f > maxTTL.Seconds() { // NaN fails the first
			return 0, true, fmt.Errorf("want a time to live from 0.001 to %.0f seconds, got %s", maxTTL.Seconds(), s)
		}
		return time.Duration(f * float64(time.Second)), true, nil
	}
	d, err = time.ParseDuration(s)
	if err != nil {
		return 0, false, fmt.Errorf("want a number of seconds or a duration such as \"90s\" or \"24h\", got %q", s)
	}
	if d < time.Millisecond || d > maxTTL {
		return 0, false, fmt.Errorf("want a time to live from 1ms to %v, got %q", maxTTL, s)
	}
	return d, false, nil
}

// maxTTL bounds a time to live so that it fits a Duration and Redis.
const maxTTL = 100 * 365 * 24 * time.Hour

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
