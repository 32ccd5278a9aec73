package redis

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/mqgate/mqgate/core/transform"
)

// batch is the scratch memory of one Write: the arguments and go-redis
// commands of its records, and the record each command belongs to. Writes
// take one from a pool and clear it after, so that a steady stream of
// batches allocates little beyond the commands themselves.
type batch struct {
	in  transform.Input
	env transform.Env
	// args holds the arguments of every command, each command's a slice
	// of it. When append moves it, earlier commands keep the old array.
	args []any
	// pending are the commands of the record being mapped, sent only when
	// all of them mapped.
	pending []pendingCmd
	cmds    []redis.Cmder
	// owners[i] is the record cmds[i] belongs to; from[i] the entry of
	// `commands:` that made it.
	owners []int
	from   []*command
}

// pendingCmd is a command of the record being mapped: args[start:] up to
// the next one's start.
type pendingCmd struct {
	c     *command
	reply reply
	start int
}

// reset clears b for the next Write, dropping its references to records
// and results.
func (b *batch) reset() {
	clear(b.args)
	clear(b.cmds)
	clear(b.from)
	b.args, b.pending, b.cmds, b.owners, b.from = b.args[:0], b.pending[:0], b.cmds[:0], b.owners[:0], b.from[:0]
	b.in = transform.Input{}
	b.env.Reset(&b.in)
}

// begin starts a command of the current record named name.
func (b *batch) begin(c *command, r reply, name any) {
	b.pending = append(b.pending, pendingCmd{c: c, reply: r, start: len(b.args)})
	b.args = append(b.args, name)
}

// rename replaces the name of the command begun last.
func (b *batch) rename(name any) {
	b.args[b.pending[len(b.pending)-1].start] = name
}

// arg appends arguments to the command begun last.
func (b *batch) arg(vs ...any) {
	b.args = append(b.args, vs...)
}

// mapArgs appends the names and values of a map an expression gave,
// leaving out nil values, and returns how many it appended.
func (b *batch) mapArgs(v any) (int, error) {
	n := 0
	switch m := v.(type) {
	case map[string]any:
		for k, e := range m {
			if e == nil {
				continue
			}
			if k == "" {
				return 0, fmt.Errorf("gave a map with an empty name")
			}
			a, err := argOf(e)
			if err != nil {
				return 0, fmt.Errorf("%s %w", k, err)
			}
			b.arg(k, a)
			n++
		}
	case map[string]string:
		for k, e := range m {
			if k == "" {
				return 0, fmt.Errorf("gave a map with an empty name")
			}
			b.arg(k, e)
			n++
		}
	default:
		return 0, fmt.Errorf("gave %s, want a map of names to values", describe(v))
	}
	return n, nil
}

// listArgs appends the names a list (or one name) an expression gave,
// and returns how many it appended.
func (b *batch) listArgs(v any) (int, error) {
	switch l := v.(type) {
	case []any:
		for _, e := range l {
			k, err := keyOf(e)
			if err != nil {
				return 0, fmt.Errorf("an element %w", err)
			}
			b.arg(k)
		}
		return len(l), nil
	case []string:
		for _, e := range l {
			if e == "" {
				return 0, fmt.Errorf("gave an empty name")
			}
			b.arg(e)
		}
		return len(l), nil
	}
	k, err := keyOf(v)
	if err != nil {
		return 0, fmt.Errorf("%w; or a list of names", err)
	}
	b.arg(k)
	return 1, nil
}

// commit turns the pending commands of record i into go-redis commands.
func (b *batch) commit(ctx context.Context, i int) {
	for j, p := range b.pending {
		end := len(b.args)
		if j+1 < len(b.pending) {
			end = b.pending[j+1].start
		}
		args := b.args[p.start:end:end]
		var cmd redis.Cmder
		switch p.reply {
		case replyStatus:
			cmd = redis.NewStatusCmd(ctx, args...)
		case replyInt:
			cmd = redis.NewIntCmd(ctx, args...)
		default:
			cmd = redis.NewStringCmd(ctx, args...)
		}
		b.cmds = append(b.cmds, cmd)
		b.owners = append(b.owners, i)
		b.from = append(b.from, p.c)
	}
	b.pending = b.pending[:0]
}

// rollback drops the pending commands of a record that failed to map.
func (b *batch) rollback() {
	if len(b.pending) > 0 {
		start := b.pending[0].start
		clear(b.args[start:])
		b.args = b.args[:start]
	}
	b.pending = b.pending[:0]
}
