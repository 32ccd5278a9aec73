package transform

import (
	"fmt"

	"github.com/expr-lang/expr/vm"
)

// Env is the variables of one message, made once for several expressions
// evaluated on it, as a sink mapping that builds a key and several fields
// from each record does: the value is copied and the headers are indexed
// once, and the value is parsed as JSON once, by the first expression that
// reads json. An Env is not safe for concurrent use; Reset points it at
// the next message without allocating a new one.
type Env struct {
	in     *Input
	v      vars
	parsed bool
	vm     vm.VM
}

// NewEnv returns the variables of in. in and the bytes it refers to must
// not change while the Env is in use.
func NewEnv(in *Input) *Env {
	e := &Env{}
	e.Reset(in)
	return e
}

// noHeaders is the headers variable of a message without headers. Nothing
// writes to it: expressions cannot assign to a map.
var noHeaders = map[string]string{}

// Reset makes e the variables of in, as NewEnv does. Values earlier
// evaluations returned stay valid.
func (e *Env) Reset(in *Input) {
	hs := noHeaders
	if len(in.Headers) > 0 {
		hs = make(map[string]string, len(in.Headers))
		for _, h := range in.Headers {
			hs[h.Key] = string(h.Value)
		}
	}
	e.in = in
	e.parsed = false
	e.v = vars{Topic: in.Topic, Qid: in.Qid, Offset: int(in.Offset), Key: string(in.Key),
		Value: string(in.Value), Tags: in.Tags, Headers: hs}
	if !in.Timestamp.IsZero() {
		e.v.TimestampMs = int(in.Timestamp.UnixMilli())
	}
}

// EvalEnv runs the expression on env's message, as Eval does on an Input.
func (e *Expr) EvalEnv(env *Env) (any, error) {
	if e.usesJSON && !env.parsed {
		env.v.JSON = parseJSON(env.in.Value)
		env.parsed = true
	}
	out, err := env.vm.Run(e.prog, &env.v)
	if err != nil {
		return nil, fmt.Errorf("evaluating %q: %w", e.src, err)
	}
	return out, nil
}

// MatchEnv reports whether env's message passes the filter, as Match does.
func (f *Filter) MatchEnv(env *Env) (bool, error) {
	out, err := f.e.EvalEnv(env)
	if err != nil {
		return false, err
	}
	b, ok := out.(bool)
	if !ok {
		return false, fmt.Errorf("filter %q gave %T, not a boolean", f.e.src, out)
	}
	return b, nil
}
