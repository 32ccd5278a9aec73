// Package transform compiles and runs the expressions of plugins.yaml that
// select and reshape consumed messages: a filter that keeps or drops a
// message, and a transform that builds the body and headers sent on. HTTP
// push uses both; sinks use the same language. Expressions are in
// expr-lang (https://expr-lang.org), are compiled once, at start-up, and
// are type-checked against the variables a message offers:
//
//	topic         string  the message's topic
//	qid           string  its queue
//	offset        int     its offset in the queue
//	key           string  its key ("" when it has none)
//	value         string  its value as text
//	tags          string  RocketMQ tags ("" when none)
//	headers       map     header name -> value; a repeated name keeps its last value
//	timestamp_ms  int     when the broker stored it, in ms since the epoch
//	json          any     the value parsed as JSON, nil when it is not JSON
//
// A message is parsed as JSON only when an expression uses json.
package transform

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"

	"github.com/mqgate/mqgate/sdk"
)

// Input is the message an expression sees.
type Input struct {
	Topic     string
	Qid       string
	Offset    int64
	Key       []byte
	Value     []byte
	Tags      string
	Headers   []sdk.Header
	Timestamp time.Time
}

// RecordInput is the Input of a consumed record.
func RecordInput(r *sdk.Record) *Input {
	return &Input{Topic: r.Topic, Qid: r.Qid, Offset: r.Offset, Key: r.Key, Value: r.Value,
		Tags: r.Tags, Headers: r.Headers, Timestamp: r.Timestamp}
}

// vars are the variables an expression sees, as documented above.
type vars struct {
	Topic       string            `expr:"topic"`
	Qid         string            `expr:"qid"`
	Offset      int               `expr:"offset"`
	Key         string            `expr:"key"`
	Value       string            `expr:"value"`
	Tags        string            `expr:"tags"`
	Headers     map[string]string `expr:"headers"`
	TimestampMs int               `expr:"timestamp_ms"`
	JSON        any               `expr:"json"`
}

// maxNodes bounds the size of one compiled expression.
const maxNodes = 10000

// Expr is one compiled expression. It is safe for concurrent use.
type Expr struct {
	src  string
	prog *vm.Program
	// uses are the variables the expression reads that cost a copy or a
	// parse to provide; of json, when it reads only members of an object,
	// jsonMembers names them (nil: the whole value).
	uses        identifiers
	jsonMembers []string
}

// CompileExpr compiles src, an expression of any result type. The error
// says where in src the problem is.
func CompileExpr(src string) (*Expr, error) {
	return compile(src)
}

func compile(src string, opts ...expr.Option) (*Expr, error) {
	opts = append([]expr.Option{expr.Env(vars{}), expr.MaxNodes(maxNodes)}, opts...)
	prog, err := expr.Compile(src, opts...)
	if err != nil {
		return nil, err
	}
	r := &reads{}
	node := prog.Node()
	ast.Walk(&node, r)
	return &Expr{src: src, prog: prog, uses: r.identifiers, jsonMembers: r.jsonMembers()}, nil
}

// identifiers notes which of the variables that cost a copy or a parse
// an expression reads: all of them when it reads $env, the variables as
// one map.
type identifiers struct{ json, value, headers bool }

// reads walks an expression's tree for the costly variables it reads and
// the members of json it names: nil when it reads json other than as
// json.name or json["name"] (or reads it not at all).
type reads struct {
	identifiers
	members []string
	// jsons counts json's occurrences, named those as json.name.
	jsons, named int
}

func (v *reads) Visit(n *ast.Node) {
	switch t := (*n).(type) {
	case *ast.IdentifierNode:
		switch t.Value {
		case "json":
			v.json = true
			v.jsons++
		case "value":
			v.value = true
		case "headers":
			v.headers = true
		case "$env":
			v.json, v.value, v.headers = true, true, true
			v.jsons++ // json as a whole, through $env
		}
	case *ast.MemberNode:
		id, isID := t.Node.(*ast.IdentifierNode)
		name, isName := t.Property.(*ast.StringNode)
		if isID && isName && id.Value == "json" {
			v.named++
			if !slices.Contains(v.members, name.Value) {
				v.members = append(v.members, name.Value)
			}
		}
	}
}

// jsonMembers are the members of json the expression reads, or nil for
// the whole value.
func (v *reads) jsonMembers() []string {
	if v.named < v.jsons {
		return nil
	}
	return v.members
}

// String returns the expression as written.
func (e *Expr) String() string { return e.src }

// Eval runs the expression on in. To run several expressions on one
// message, make its Env once and use EvalEnv.
func (e *Expr) Eval(in *Input) (any, error) {
	return e.EvalEnv(NewEnv(in))
}

// Filter keeps the messages its expression accepts.
type Filter struct{ e *Expr }

// CompileFilter compiles src, which must give a boolean.
func CompileFilter(src string) (*Filter, error) {
	e, err := compile(src, expr.AsBool())
	if err != nil {
		return nil, err
	}
	return &Filter{e}, nil
}

// Match reports whether in passes the filter. An error (such as indexing
// a missing field without ?.) means the filter could not decide.
func (f *Filter) Match(in *Input) (bool, error) {
	return f.MatchEnv(NewEnv(in))
}

// Spec is a transform as written in plugins.yaml: an expression for the
// body and one per header, or a transit mapping for the body; any may be
// left out, and Body and Transit exclude each other.
type Spec struct {
	Body    string
	Headers map[string]string
	// Transit maps a JSON path in the body built to a JSON path in the
	// message's JSON value, as a DDMQ subscription's transit does; the
	// target "$" names the object the others are set into.
	Transit map[string]string
}

// Transform builds what is sent for a message.
type Transform struct {
	body    *Expr
	transit *transit
	headers map[string]*Expr
}

// CompileError is a transform expression that does not compile; Field is
// "body" or "headers.NAME".
type CompileError struct {
	Field string
	Err   error
}

func (e *CompileError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *CompileError) Unwrap() error { return e.Err }

// Compile compiles every expression of s, and reports the first that does
// not compile as a *CompileError.
func Compile(s Spec) (*Transform, error) {
	t := &Transform{headers: map[string]*Expr{}}
	if s.Body != "" && len(s.Transit) > 0 {
		return nil, &CompileError{"transit", errors.New("body and transit both build the body; set one")}
	}
	if len(s.Transit) > 0 {
		tr, err := compileTransit(s.Transit)
		if err != nil {
			return nil, err
		}
		t.transit = tr
	}
	if s.Body != "" {
		e, err := CompileExpr(s.Body)
		if err != nil {
			return nil, &CompileError{"body", err}
		}
		t.body = e
	}
	for name, src := range s.Headers {
		e, err := CompileExpr(src)
		if err != nil {
			return nil, &CompileError{"headers." + name, err}
		}
		t.headers[name] = e
	}
	return t, nil
}

// Output is what a Transform built.
type Output struct {
	// Body replaces the message value when HasBody.
	Body    []byte
	HasBody bool
	// Headers are set on what is sent; a header whose expression gave nil
	// is not in the map.
	Headers map[string]string
}

// Apply runs the transform on in. A body of type string or []byte is
// sent as it is, nil as an empty body, anything else as JSON. A header
// value that is not a string is formatted as JSON.
func (t *Transform) Apply(in *Input) (Output, error) {
	var out Output
	if t.body != nil {
		v, err := t.body.Eval(in)
		if err != nil {
			return Output{}, err
		}
		if out.Body, err = bytesOf(v); err != nil {
			return Output{}, fmt.Errorf("body: %w", err)
		}
		out.HasBody = true
	}
	if t.transit != nil {
		b, err := t.transit.apply(in.Value)
		if err != nil {
			return Output{}, err
		}
		out.Body, out.HasBody = b, true
	}
	if len(t.headers) > 0 {
		out.Headers = make(map[string]string, len(t.headers))
	}
	for name, e := range t.headers {
		v, err := e.Eval(in)
		if err != nil {
			return Output{}, err
		}
		if v == nil {
			continue
		}
		b, err := bytesOf(v)
		if err != nil {
			return Output{}, fmt.Errorf("header %s: %w", name, err)
		}
		out.Headers[name] = string(b)
	}
	return out, nil
}

func bytesOf(v any) ([]byte, error) {
	switch t := v.(type) {
	case nil:
		return []byte{}, nil
	case string:
		return []byte(t), nil
	case []byte:
		return t, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encoding %T as JSON: %w", v, err)
	}
	return b, nil
}
