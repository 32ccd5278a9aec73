package transform

import (
	"fmt"
	"slices"

	"github.com/expr-lang/expr/vm"
)

// Env is the variables of one message, made once for several expressions
// evaluated on it, as a sink mapping that builds a key and several fields
// from each record does. The variables that cost a copy or a parse are
// made once, by the first expression that reads them: value (a copy of
// the bytes), headers (a map) and json (the value parsed). An Env is not
// safe for concurrent use; Reset points it at the next message without
// allocating a new one.
type Env struct {
	in *Input
	v  vars
	// made are the costly variables v holds for in so far; of json,
	// members names those it holds, nil for the whole value.
	made    identifiers
	members []string
	// plan is what the expressions to come read of json, if known.
	plan *Plan
	vm   vm.VM
}

// Plan is what a set of expressions reads of a message's JSON value: the
// members of an object they name, when they read nothing else of it (as
// json.id or json["id"]), or else the whole value. An Env that knows it
// parses the value once for all of them, and builds only those members: a
// 1 KiB value whose expressions read four small members costs about a
// third of what building all of it does (BenchmarkParseJSON). A Plan is
// safe for concurrent use.
type Plan struct {
	whole   bool
	members []string
}

// PlanOf returns the plan of exprs.
func PlanOf(exprs ...*Expr) *Plan {
	p := &Plan{}
	for _, e := range exprs {
		if e == nil || !e.uses.json {
			continue
		}
		if e.jsonMembers == nil {
			p.whole = true
		}
		for _, m := range e.jsonMembers {
			if !slices.Contains(p.members, m) {
				p.members = append(p.members, m)
			}
		}
	}
	return p
}

// SetPlan tells e what the expressions evaluated on it read of json, for
// this message and those it is Reset to after. An expression outside the
// plan still sees all it reads, at the cost of a second parse.
func (e *Env) SetPlan(p *Plan) { e.plan = p }

// NewEnv returns the variables of in. in and the bytes it refers to must
// not change while the Env is in use.
func NewEnv(in *Input) *Env {
	e := &Env{}
	e.Reset(in)
	return e
}

// noHeaders is the headers variable of a message without headers, and of
// one whose expressions do not read headers. Nothing writes to it:
// expressions cannot assign to a map.
var noHeaders = map[string]string{}

// Reset makes e the variables of in, as NewEnv does. Values earlier
// evaluations returned stay valid.
func (e *Env) Reset(in *Input) {
	e.in = in
	e.made, e.members = identifiers{}, nil
	e.v = vars{Topic: in.Topic, Qid: in.Qid, Offset: int(in.Offset), Key: string(in.Key), Tags: in.Tags,
		Headers: noHeaders}
	if !in.Timestamp.IsZero() {
		e.v.TimestampMs = int(in.Timestamp.UnixMilli())
	}
}

// make provides the costly variables uses asks for that e lacks, but
// json, which makeJSON provides.
func (e *Env) make(uses identifiers) {
	if uses.value && !e.made.value {
		e.v.Value = string(e.in.Value)
		e.made.value = true
	}
	if uses.headers && !e.made.headers {
		if len(e.in.Headers) > 0 {
			e.v.Headers = make(map[string]string, len(e.in.Headers))
			for _, h := range e.in.Headers {
				e.v.Headers[h.Key] = string(h.Value)
			}
		}
		e.made.headers = true
	}
}

// makeJSON provides json as x needs it: parsed whole, or the members it
// names; with a plan that covers x, as the plan needs it.
func (e *Env) makeJSON(x *Expr) {
	if e.made.json && (e.members == nil || covers(e.members, x.jsonMembers)) {
		return
	}
	members := x.jsonMembers
	if e.made.json {
		members = nil // x reads what an earlier parse left out
	} else if e.plan != nil && (e.plan.whole || covers(e.plan.members, members)) {
		members = e.plan.members
		if e.plan.whole {
			members = nil
		}
	}
	if members == nil {
		e.v.JSON = parseJSON(e.in.Value)
	} else {
		e.v.JSON = parseJSONMembers(e.in.Value, members)
	}
	e.made.json, e.members = true, members
}

// covers reports whether have holds every member of want; want nil is
// the whole value, which no list of members covers.
func covers(have, want []string) bool {
	if want == nil {
		return false
	}
	for _, m := range want {
		if !slices.Contains(have, m) {
			return false
		}
	}
	return true
}

// EvalEnv runs the expression on env's message, as Eval does on an Input.
func (e *Expr) EvalEnv(env *Env) (any, error) {
	env.make(e.uses)
	if e.uses.json {
		env.makeJSON(e)
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

// Expr returns the filter's expression, for PlanOf.
func (f *Filter) Expr() *Expr { return f.e }
