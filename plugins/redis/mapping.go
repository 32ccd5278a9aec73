package redis

import (
	"fmt"
	"time"

	"github.com/mqgate/mqgate/core/transform"
)

// Arguments every record may need, boxed once.
var (
	argEX      any = "ex"
	argPX      any = "px"
	argNX      any = "nx"
	argXX      any = "xx"
	argMaxLen  any = "maxlen"
	argApprox  any = "~"
	argAutoID  any = "*"
	argLTrim   any = "ltrim"
	argPExpire any = "pexpire"
	argZero    any = 0
	argMinus1  any = -1
)

// mappingError is a record a command's mapping could not turn into
// arguments; at names the key of the config whose expression failed.
type mappingError struct {
	at  string
	err error
}

func (e *mappingError) Error() string { return e.at + ": " + firstLine(e.err) }

// build appends to b the Redis commands c sends for the record env holds:
// none when its when is false, two for LPUSH or RPUSH with max_len.
func (c *command) build(env *transform.Env, b *batch) error {
	if c.when != nil {
		ok, err := c.when.MatchEnv(env)
		if err != nil {
			return &mappingError{c.at + ".when", err}
		}
		if !ok {
			return nil
		}
	}
	var key any
	if c.key != nil {
		k, err := c.keyArg(env, c.key, ".key")
		if err != nil {
			return err
		}
		key = k
	}
	b.begin(c, c.spec.reply, c.name)
	switch c.upper {
	case "SET":
		return c.buildSet(env, b, key)
	case "MSET":
		return c.buildPairs(env, b)
	case "HSET", "HMSET", "HDEL":
		b.arg(key)
		return c.buildFields(env, b)
	case "DEL":
		b.arg(key)
	case "EXPIRE":
		return c.buildExpire(env, b, key)
	case "INCRBY":
		v, err := c.eval(env, c.by, ".by")
		if err != nil {
			return err
		}
		n, err := integerOf(v)
		if err != nil {
			return &mappingError{c.at + ".by", err}
		}
		b.arg(key, n)
	case "LPUSH", "RPUSH":
		return c.buildPush(env, b, key)
	case "SADD", "SREM", "ZREM":
		m, err := c.valueArg(env, c.member, ".member")
		if err != nil {
			return err
		}
		b.arg(key, m)
	case "ZADD":
		return c.buildZAdd(env, b, key)
	case "XADD":
		return c.buildXAdd(env, b, key)
	case "PUBLISH":
		ch, err := c.keyArg(env, c.channel, ".channel")
		if err != nil {
			return err
		}
		v, err := c.valueArg(env, c.value, ".value")
		if err != nil {
			return err
		}
		b.arg(ch, v)
	default:
		return fmt.Errorf("command %s has no mapping", c.upper) // parseCommand lets none through
	}
	return nil
}

// eval runs the expression of the key at (".value") on env.
func (c *command) eval(env *transform.Env, e *transform.Expr, at string) (any, error) {
	v, err := e.EvalEnv(env)
	if err != nil {
		return nil, &mappingError{c.at + at, err}
	}
	return v, nil
}

// keyArg evaluates a key (or channel) expression into its argument.
func (c *command) keyArg(env *transform.Env, e *transform.Expr, at string) (any, error) {
	v, err := c.eval(env, e, at)
	if err != nil {
		return nil, err
	}
	if s, ok := v.(string); ok && s != "" {
		return v, nil // already boxed
	}
	k, err := keyOf(v)
	if err != nil {
		return nil, &mappingError{c.at + at, err}
	}
	return k, nil
}

// valueArg evaluates a value expression into its argument; nil is an
// error.
func (c *command) valueArg(env *transform.Env, e *transform.Expr, at string) (any, error) {
	v, err := c.eval(env, e, at)
	if err != nil {
		return nil, err
	}
	a, err := argOf(v)
	if err != nil {
		return nil, &mappingError{c.at + at, err}
	}
	return a, nil
}

// ttlOf evaluates the command's ttl, fixed or per record.
func (c *command) ttlOf(env *transform.Env) (time.Duration, error) {
	if c.ttl.expr == nil {
		return c.ttl.fixed, nil
	}
	v, err := c.eval(env, c.ttl.expr, ".ttl")
	if err != nil {
		return 0, err
	}
	d, err := ttlOf(v)
	if err != nil {
		return 0, &mappingError{c.at + ".ttl", err}
	}
	return d, nil
}

// condition appends NX or XX when the command has one.
func (c *command) condition(b *batch) {
	switch {
	case c.nx:
		b.arg(argNX)
	case c.xx:
		b.arg(argXX)
	}
}

// buildSet: SET key value [EX s | PX ms] [NX | XX].
func (c *command) buildSet(env *transform.Env, b *batch, key any) error {
	v, err := c.valueArg(env, c.value, ".value")
	if err != nil {
		return err
	}
	b.arg(key, v)
	if c.ttl.set() {
		d, err := c.ttlOf(env)
		if err != nil {
			return err
		}
		if d%time.Second == 0 {
			b.arg(argEX, int64(d/time.Second))
		} else {
			b.arg(argPX, d.Milliseconds())
		}
	}
	c.condition(b)
	return nil
}

// buildExpire: EXPIRE key s, or PEXPIRE key ms for a ttl in fractions of
// a second, [NX | XX].
func (c *command) buildExpire(env *transform.Env, b *batch, key any) error {
	d, err := c.ttlOf(env)
	if err != nil {
		return err
	}
	if d%time.Second == 0 {
		b.arg(key, int64(d/time.Second))
	} else {
		b.rename(argPExpire)
		b.arg(key, d.Milliseconds())
	}
	c.condition(b)
	return nil
}

// buildPush: LPUSH or RPUSH key value, then with max_len LTRIM to keep
// the max_len newest elements.
func (c *command) buildPush(env *transform.Env, b *batch, key any) error {
	v, err := c.valueArg(env, c.value, ".value")
	if err != nil {
		return err
	}
	b.arg(key, v)
	if c.maxLen > 0 {
		b.begin(c, replyStatus, argLTrim)
		if c.upper == "LPUSH" { // newest first
			b.arg(key, argZero, c.maxLen-1)
		} else {
			b.arg(key, -c.maxLen, argMinus1)
		}
	}
	return nil
}

// buildZAdd: ZADD key [NX | XX] score member.
func (c *command) buildZAdd(env *transform.Env, b *batch, key any) error {
	m, err := c.valueArg(env, c.member, ".member")
	if err != nil {
		return err
	}
	v, err := c.eval(env, c.score, ".score")
	if err != nil {
		return err
	}
	score, err := scoreOf(v)
	if err != nil {
		return &mappingError{c.at + ".score", err}
	}
	b.arg(key)
	c.condition(b)
	b.arg(score, m)
	return nil
}

// buildXAdd: XADD key [MAXLEN [~] n] id field value...
func (c *command) buildXAdd(env *transform.Env, b *batch, key any) error {
	b.arg(key)
	if c.maxLen > 0 {
		b.arg(argMaxLen)
		if c.approx {
			b.arg(argApprox)
		}
		b.arg(c.maxLen)
	}
	if c.id == nil {
		b.arg(argAutoID)
	} else {
		id, err := c.keyArg(env, c.id, ".id")
		if err != nil {
			return err
		}
		b.arg(id)
	}
	return c.buildFields(env, b)
}

// buildFields appends the fields: name and value for HSET, HMSET and
// XADD, names for HDEL. A field whose value is nil is left out; a command
// left without fields is an error.
func (c *command) buildFields(env *transform.Env, b *batch) error {
	at := c.at + ".fields"
	withValues := c.upper != "HDEL"
	n := 0
	if c.fields.expr == nil {
		for i, name := range c.fields.boxed {
			if !withValues {
				b.arg(name)
				n++
				continue
			}
			v, err := c.fields.values[i].EvalEnv(env)
			if err != nil {
				return &mappingError{at + "." + c.fields.names[i], err}
			}
			if v == nil {
				continue
			}
			a, err := argOf(v)
			if err != nil {
				return &mappingError{at + "." + c.fields.names[i], err}
			}
			b.arg(name, a)
			n++
		}
	} else {
		v, err := c.eval(env, c.fields.expr, ".fields")
		if err != nil {
			return err
		}
		if withValues {
			n, err = b.mapArgs(v)
		} else {
			n, err = b.listArgs(v)
		}
		if err != nil {
			return &mappingError{at, err}
		}
	}
	if n == 0 {
		return &mappingError{at, fmt.Errorf("gave no field to %s", c.upper)}
	}
	return nil
}

// buildPairs: MSET key value...
func (c *command) buildPairs(env *transform.Env, b *batch) error {
	if c.pairs.expr != nil {
		v, err := c.eval(env, c.pairs.expr, ".pairs")
		if err != nil {
			return err
		}
		n, err := b.mapArgs(v)
		if err == nil && n == 0 {
			err = fmt.Errorf("gave no pair to MSET")
		}
		if err != nil {
			return &mappingError{c.at + ".pairs", err}
		}
		return nil
	}
	for i := range c.pairs.keys {
		at := fmt.Sprintf(".pairs[%d]", i)
		k, err := c.keyArg(env, c.pairs.keys[i], at+".key")
		if err != nil {
			return err
		}
		v, err := c.valueArg(env, c.pairs.values[i], at+".value")
		if err != nil {
			return err
		}
		b.arg(k, v)
	}
	return nil
}
