package transform

import (
	"reflect"
	"slices"
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
		`$env.value`,
		`$env.headers.source + $env["json"].status`,
	}
	exprs := compileAll(t, srcs)
	env := &Env{}
	for _, in := range []*Input{
		order(`{"id": 42, "total": 99.5, "items": [1, 2], "status": "a"}`),
		order(`{"id": 43, "total": 10, "status": "b"}`),
		{Topic: "t", Value: []byte(`{"id": "x", "total": "n/a", "status": "c"}`)},
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
// when one of them reads json; it copies the value and indexes the headers
// only for an expression that reads them.
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
	if env.made.json || env.made.value || env.made.headers {
		t.Errorf("an expression reading only key made %+v", env.made)
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

// With a plan, an Env parses the value once for all its expressions, and
// what each gives is what Eval gives: members-only expressions as well as
// ones that read the whole value, in any order.
func TestEnvWithPlan(t *testing.T) {
	srcs := []string{`json.id`, `json?.status ?? "none"`, `json["total"] * 2`, `len(json)`, `json.items[1]`, `json`}
	exprs := compileAll(t, srcs)
	for _, tc := range []struct {
		name  string
		plan  *Plan
		order []int
	}{
		{"members of one plan", PlanOf(exprs[:3]...), []int{0, 1, 2}},
		{"members then whole without a plan", nil, []int{0, 1, 3, 5, 2}},
		{"whole plan", PlanOf(exprs...), []int{0, 3, 4, 5}},
		{"outside the plan", PlanOf(exprs[0]), []int{0, 4, 1, 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := &Env{}
			env.SetPlan(tc.plan)
			for _, value := range []string{`{"id": 42, "status": "paid", "total": 1.5, "items": [1, 2], "note": "x"}`,
				`{"id": 43, "total": 2, "items": [3, 4]}`} {
				in := order(value)
				env.Reset(in)
				for _, i := range tc.order {
					want, err := exprs[i].Eval(in)
					if err != nil {
						t.Fatal(err)
					}
					got, err := exprs[i].EvalEnv(env)
					if err != nil {
						t.Fatalf("EvalEnv(%s): %v", srcs[i], err)
					}
					if !reflect.DeepEqual(got, want) {
						t.Errorf("%s on %s: EvalEnv = %#v, Eval = %#v", srcs[i], value, got, want)
					}
				}
			}
		})
	}
	// The plan of members-only expressions names their members; one
	// reading json whole makes it whole.
	if p := PlanOf(exprs[:3]...); p.whole || !slices.Equal(p.members, []string{"id", "status", "total"}) {
		t.Errorf("PlanOf(members) = %+v", p)
	}
	if p := PlanOf(exprs[0], exprs[3]); !p.whole {
		t.Errorf("PlanOf with len(json) = %+v, want whole", p)
	}
	env := NewEnv(order(`{"id": 1, "status": "s", "total": 2, "note": "left out"}`))
	env.SetPlan(PlanOf(exprs[:3]...))
	for _, e := range exprs[:3] {
		if _, err := e.EvalEnv(env); err != nil {
			t.Fatal(err)
		}
	}
	if m, ok := env.v.JSON.(map[string]any); !ok || len(m) != 3 {
		t.Errorf("with a plan of three members json holds %#v", env.v.JSON)
	}
}

// compileAll compiles srcs, failing t on an error.
func compileAll(t *testing.T, srcs []string) []*Expr {
	t.Helper()
	exprs := make([]*Expr, len(srcs))
	for i, src := range srcs {
		e, err := CompileExpr(src)
		if err != nil {
			t.Fatal(err)
		}
		exprs[i] = e
	}
	return exprs
}
