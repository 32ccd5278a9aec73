package transform

import (
	"strings"
	"testing"
)

const pathDoc = `{"id": 7, "user": {"name": "ann", "tags": ["a", "b", "c"], "nil": null},
	"odd key": {"x.y": 1.50}, "list": [{"n": 1}, {"n": 2}]}`

func TestPathGet(t *testing.T) {
	doc, err := DecodeJSON([]byte(pathDoc))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want string // the found value as JSON; "" for not found
	}{
		{"$", ""}, // checked below: the whole document
		{"$.id", "7"},
		{"id", "7"},
		{"user.name", `"ann"`},
		{"$.user.name", `"ann"`},
		{"$['user']['name']", `"ann"`},
		{`$["user"].tags[1]`, `"b"`},
		{"$.user.tags[-1]", `"c"`},
		{"$.user.tags[3]", ""},
		{"$.user.tags[-4]", ""},
		{"$.user.nil", "null"},
		{"$.user.missing", ""},
		{"$['odd key']['x.y']", "1.50"},
		{"$.list[1].n", "2"},
		{"$.id.deeper", ""},
		{"$.user[0]", ""},
		{"$.list.n", ""}, // fastjson maps over arrays here; this subset does not
		{"$[0]", ""},
	} {
		p, err := CompilePath(tc.path)
		if err != nil {
			t.Errorf("CompilePath(%q): %v", tc.path, err)
			continue
		}
		v, ok := p.Get(doc)
		if tc.path == "$" {
			if !ok || !p.IsRoot() {
				t.Errorf("$ did not find the document")
			}
			continue
		}
		got := ""
		if ok {
			b, err := EncodeJSON(v)
			if err != nil {
				t.Fatal(err)
			}
			got = string(b)
		}
		if got != tc.want {
			t.Errorf("Get(%s) = %q, want %q", tc.path, got, tc.want)
		}
	}
}

func TestCompilePathErrors(t *testing.T) {
	for src, want := range map[string]string{
		"":                              "empty",
		"$..a":                          "recursive descent",
		"$.a.*":                         "wildcards",
		"$.a[*]":                        "wildcards, slices",
		"$.a[1:2]":                      "slices",
		"$.a[?(@.x)]":                   "filters",
		"$.":                            "followed by a name",
		"$.a[":                          "unterminated [",
		"$['a":                          "unterminated",
		"$x":                            "unexpected",
		"$.a[+1]":                       "want an array index",
		"$.a[]":                         "want an array index",
		"$" + strings.Repeat(".a", 100): "more than 64 steps",
		"$." + strings.Repeat("a", 600): "at most 512",
	} {
		_, err := CompilePath(src)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CompilePath(%q) = %v; want an error with %q", src, err, want)
		}
	}
}

func TestDecodeJSON(t *testing.T) {
	for in, ok := range map[string]bool{
		`{}`: true, ` {"a":1} `: true, `[1]`: true, `"s"`: true, `null`: true,
		`{} {}`: false, `{}]`: false, `{}x`: false, ``: false, `{`: false,
	} {
		if _, err := DecodeJSON([]byte(in)); (err == nil) != ok {
			t.Errorf("DecodeJSON(%q): err = %v; want ok %v", in, err, ok)
		}
	}
}

// Transit as DDMQ's TransitAction (carrera-consumer's
// cproxy/actions/TransitAction.java) builds it: "$" picks the object to
// start from, other entries copy found, non-null values to their targets,
// creating objects on the way.
func TestTransit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		transit map[string]string
		value   string
		want    string // the body; "error: ..." for an error containing it
	}{
		{"fields into a new object", map[string]string{"$.uid": "$.user.id", "$.meta.city": "$.city"},
			`{"user": {"id": 42}, "city": "Paris", "other": 1}`, `{"meta":{"city":"Paris"},"uid":42}`},
		{"$ starts from a sub-object", map[string]string{"$": "$.order", "$.who": "$.user.name"},
			`{"order": {"id": "o1", "sum": 9.90}, "user": {"name": "ann"}}`, `{"id":"o1","sum":9.90,"who":"ann"}`},
		{"missing and null sources are skipped", map[string]string{"$.a": "$.nope", "$.b": "$.n", "$.c": "$.x"},
			`{"n": null, "x": [1, {"y": "<&>"}]}`, `{"c":[1,{"y":"<&>"}]}`},
		{"a target under a scalar is skipped", map[string]string{"$.a": "$.x", "$.a.b": "$.y"},
			`{"x": 1, "y": 2}`, `{"a":1}`},
		{"not JSON", map[string]string{"$.a": "$.x"}, `plain`, "error: not JSON"},
		{"not an object", map[string]string{"$.a": "$[0]"}, `[1, 2]`, "error: not a JSON object"},
		{"$ not an object", map[string]string{"$": "$.x"}, `{"x": 3}`, "error: does not name an object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := Compile(Spec{Transit: tc.transit})
			if err != nil {
				t.Fatal(err)
			}
			out, err := tr.Apply(order(tc.value))
			if strings.HasPrefix(tc.want, "error: ") {
				if err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(tc.want, "error: ")) {
					t.Fatalf("Apply = %q, %v; want an error with %q", out.Body, err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !out.HasBody || string(out.Body) != tc.want {
				t.Errorf("body = %s, want %s", out.Body, tc.want)
			}
		})
	}
}

func TestTransitCompileErrors(t *testing.T) {
	for _, tc := range []struct {
		spec  Spec
		field string
	}{
		{Spec{Body: "value", Transit: map[string]string{"$.a": "$.b"}}, "transit"},
		{Spec{Transit: map[string]string{"$.a[0]": "$.b"}}, "transit.$.a[0]"},
		{Spec{Transit: map[string]string{"$.a": "$..b"}}, "transit.$.a"},
		{Spec{Transit: map[string]string{"$.a": "$.b", "$.c[": "$.d"}}, "transit.$.c["},
	} {
		_, err := Compile(tc.spec)
		ce, ok := err.(*CompileError)
		if !ok || ce.Field != tc.field {
			t.Errorf("Compile(%+v) = %v; want a CompileError at %s", tc.spec, err, tc.field)
		}
	}
}

// FuzzJSONPath compiles any path and walks any document with it: no
// panic, and what Get finds encodes as JSON.
func FuzzJSONPath(f *testing.F) {
	for _, s := range []string{"$", "$.a", "a.b[0]", "$['x y'][-1]", `$["q"]`, "$..a", "$[", "$.a[99999999999999999999]"} {
		f.Add(s, pathDoc)
	}
	f.Add("$.a.b", `{"a": {"b": [1, 2.5e300, "x", null, true]}}`)
	f.Fuzz(func(t *testing.T, path, doc string) {
		p, err := CompilePath(path)
		if err != nil {
			return
		}
		v, err := DecodeJSON([]byte(doc))
		if err != nil {
			return
		}
		got, ok := p.Get(v)
		if !ok {
			return
		}
		if _, err := EncodeJSON(got); err != nil {
			t.Fatalf("Get(%q) found %#v, which does not encode: %v", path, got, err)
		}
		if m, isMap := v.(map[string]any); isMap && p.MembersOnly() && !p.IsRoot() {
			p.Set(m, "set")
			if _, err := EncodeJSON(m); err != nil {
				t.Fatalf("after Set(%q): %v", path, err)
			}
		}
	})
}
