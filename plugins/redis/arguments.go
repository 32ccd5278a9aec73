package redis

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mqgate/mqgate/core/transform"
	"github.com/mqgate/mqgate/sdk"
)

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
