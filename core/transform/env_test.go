package transform

import (
	"reflect"
	"testing"
)

// Several expressions on one Env see what Eval shows each of them, and a
// Reset Env sees the next message, not a leftover of the last one.
func TestEnvMatchesEval(t *testing.T) {
	srcs := []string{
		`"order:" + string(json.id)`,
		`json.total`,
		`headers.source + "/" + topic + "/" + qid`,
		`headers.nope`,
		`offset + timestamp_ms`,
		`value`,
		`json?.items ?? []`,
	}
	exprs := make([]*Expr, len(srcs))
	for i, src := range srcs {
		e, err := CompileExpr(src)
		if err != nil {
			t.Fatal(err)
		}
		exprs[i] = e
	}
	env := &Env{}
	for _, in := range []*Input{
		order(`{"id": 42, "total": 99.5, "items": [1, 2]}`),
		order(`{"id": 43, "total": 10}`),
		{Topic: "t", Value: []byte(`{"id": "x", "total": "n/a"}`)},
	} {
		env.Reset(in)
		for i, e := range exprs {
			want, err := e.Eval(in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := e.EvalEnv(env)
			if err != nil {
				t.Fatalf("EvalEnv(%s): %v", srcs[i], err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s on %s: EvalEnv = %#v, Eval = %#v", srcs[i], in.Value, got, want)
			}
		}
	}
}

// An Env parses the value as JSON once for all its expressions, and only
// when one of them reads json.
func TestEnvParsesJSONOnceAndOnlyWhenRead(t *testing.T) {
	noJSON, err := CompileExpr(`key`)
	if err != nil {
		t.Fatal(err)
	}
	withJSON, err := CompileExpr(`json.id`)
	if err != nil {
		t.Fatal(err)
	}
	env := NewEnv(order(`{"id": 1}`))
	if _, err := noJSON.EvalEnv(env); err != nil {
		t.Fatal(err)
	}
	if env.parsed {
		t.Error("an expression that does not read json parsed the value")
	}
	if _, err := withJSON.EvalEnv(env); err != nil {
		t.Fatal(err)
	}
	first := reflect.ValueOf(env.v.JSON).Pointer()
	if _, err := withJSON.EvalEnv(env); err != nil {
		t.Fatal(err)
	}
	if reflect.ValueOf(env.v.JSON).Pointer() != first {
		t.Error("the second expression reading json parsed the value again")
	}
}
