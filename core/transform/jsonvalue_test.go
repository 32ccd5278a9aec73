package transform

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// referenceJSON is what parseJSON must give: encoding/json's reading of v
// with UseNumber, numbers then made int or float64, nil for anything that
// is not exactly one JSON value.
func referenceJSON(v []byte) any {
	if !json.Valid(v) {
		return nil
	}
	d := json.NewDecoder(bytes.NewReader(v))
	d.UseNumber()
	var out any
	if err := d.Decode(&out); err != nil {
		return nil
	}
	return referenceNumbers(out)
}

// referenceNumbers turns json.Number into int when it is one and float64
// otherwise, keeping it when it is out of float64's range.
func referenceNumbers(v any) any {
	switch t := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(t), 10, 0); err == nil {
			return int(i)
		}
		if f, err := t.Float64(); err == nil {
			return f
		}
		return t
	case map[string]any:
		for k, e := range t {
			t[k] = referenceNumbers(e)
		}
	case []any:
		for i, e := range t {
			t[i] = referenceNumbers(e)
		}
	}
	return v
}

var jsonSamples = []string{
	`{"id": 42, "status": "paid", "total": 99.5, "items": [{"sku": "a", "qty": 2}], "ok": true, "none": null}`,
	`[]`, `{}`, `[1, -0, 0.5, 1e3, 1E-2, -12.5e+2, 9223372036854775807, 9223372036854775808, 1e400, -1e400]`,
	`"plain"`, `"esc \" \\ \/ \b \f \n \r \t \u00e9 \u4e2d \ud83d\ude00 \ud83d x \ude00 \ud83d\u0041"`,
	"\"invalid \xff\xfe utf-8 \xed\xa0\x80 and \xef\xbf\xbd\"", `"ü 中文 😀"`,
	` {"a" : [ 1 , 2 ] , "a" : 3 } `, `true`, `false`, `null`, `0`, `-1`,
	``, ` `, `{`, `}`, `{"a":1} }`, `1]`, `1 2`, `[1,]`, `{"a":1,}`, `{a:1}`, `01`, `1.`, `.5`, `-`, `+1`, `1e`,
	`"ctrl ` + "\x01" + `"`, `"\x"`, `"\u12"`, `"\uZZZZ"`, `tru`, `nul`, `[[[[]]]]`, `{"":""}`,
	strings.Repeat("[", 100) + strings.Repeat("]", 100),
	// Where fastjson's reading differs or is lenient: escapes in names,
	// repeated escaped names, unpaired surrogates, an escaped backslash
	// before "ud800", NaN and Infinity, control characters in a name,
	// nesting at and beyond fastjson's limit, control characters before
	// an escape in a string (which fastjson's own check misses).
	`{"k\u00e9y": "v\n", "k\u00e9y": 2, "\u00e9": [true]}`, `{"a": "\ud800", "\udc00": 1}`, `"\\ud800"`,
	`nan`, `NaN`, `[1, nan]`, `-inf`, `Infinity`, "{\"a\x01\": 1}", `[01]`, `1.5e`, `{"a": 1, "a": {"b": 2}}`,
	"{\"\xff\": 1, \"id\": \"\xc3\"}", "\"\x1c\\b\"", "{\"id\": \"a\tb\\n\"}",
	strings.Repeat("[", 300) + strings.Repeat("]", 300), strings.Repeat("[", 301) + strings.Repeat("]", 301),
	strings.Repeat(`{"id":`, 301) + "1" + strings.Repeat("}", 301),
}

// deepSamples nest as deep as encoding/json allows, and one deeper. They
// are not fuzz seeds: mutating 50 KiB inputs slows fuzzing to a crawl.
var deepSamples = []string{
	strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000),
	strings.Repeat(`{"a":`, 10001) + "1" + strings.Repeat("}", 10001),
}

// picked are the members parseJSONMembers picks in the tests.
var picked = []string{"id", "a", "é", "items"}

// referenceMembers is what parseJSONMembers must give: referenceJSON's
// value, less the members of an object that names does not hold.
func referenceMembers(v []byte, names []string) any {
	out := referenceJSON(v)
	if m, ok := out.(map[string]any); ok && bytes.HasPrefix(bytes.TrimLeft(v, " \t\r\n"), []byte("{")) {
		for k := range m {
			if !slices.Contains(names, k) {
				delete(m, k)
			}
		}
	}
	return out
}

func TestParseJSONMatchesEncodingJSON(t *testing.T) {
	for _, s := range append(jsonSamples, deepSamples...) {
		got, want := parseJSON([]byte(s)), referenceJSON([]byte(s))
		if !reflect.DeepEqual(got, want) {
			t.Errorf("parseJSON(%.60q) = %.200s, want %.200s", s, fmt.Sprintf("%#v", got), fmt.Sprintf("%#v", want))
		}
		got, want = parseJSONMembers([]byte(s), picked), referenceMembers([]byte(s), picked)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("parseJSONMembers(%.60q) = %.200s, want %.200s", s, fmt.Sprintf("%#v", got), fmt.Sprintf("%#v", want))
		}
	}
}

// fastjson builds the values it reads as encoding/json does, the common
// ones; encoding/json reads the others.
func TestBuildJSONByFastjson(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		fastjson    bool
	}{
		{"object", jsonSamples[0], true},
		{"indented", "{\n\t\"id\": 1,\n\t\"tags\": [\"a\", \"b\"]\n}\n", true},
		{"escapes and non-ASCII", `{"k\u00e9y": "tab\tquote\" \u4e2d", "ü": "中文 😀"}`, true},
		{"300 deep", strings.Repeat("[", 300) + strings.Repeat("]", 300), true},
		{"escaped backslash before u0041", `"\\u0041"`, true},
		{"surrogate pair", `"\ud83d\ude00"`, false},
		{"unpaired surrogate", `{"a": "\uDC00"}`, false},
		{"escaped backslash before ud800", `"\\ud800"`, false}, // a false alarm: slower, same value
		{"invalid UTF-8", "\"\xff\"", false},
		{"301 deep", strings.Repeat("[", 301) + strings.Repeat("]", 301), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := []byte(tc.value)
			got, ok := buildJSON(v, nil)
			if ok != tc.fastjson {
				t.Fatalf("buildJSON ok = %v, want %v", ok, tc.fastjson)
			}
			if want := referenceJSON(v); ok && !reflect.DeepEqual(got, want) {
				t.Errorf("buildJSON = %#v, want %#v", got, want)
			}
		})
	}
}

// FuzzParseJSON holds parseJSON, fastjson's reading where it reads as
// encoding/json does, to encoding/json's reading, and its reading of
// picked members to the same less the others.
func FuzzParseJSON(f *testing.F) {
	for _, s := range jsonSamples {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		got, want := parseJSON(v), referenceJSON(v)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("parseJSON(%.200q) = %.200s, want %.200s", v, fmt.Sprintf("%#v", got), fmt.Sprintf("%#v", want))
		}
		got, want = parseJSONMembers(v, picked), referenceMembers(v, picked)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("parseJSONMembers(%.200q) = %.200s, want %.200s", v, fmt.Sprintf("%#v", got), fmt.Sprintf("%#v", want))
		}
	})
}

func BenchmarkParseJSON(b *testing.B) {
	v := []byte(`{"id": 42, "status": "paid", "total": 99.5, "customer": "c-42", "items": [{"sku": "a-1", "qty": 2},
		{"sku": "b-7", "qty": 1}], "note": "` + strings.Repeat("n", 900) + `"}`)
	b.Run("parseJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			parseJSON(v)
		}
	})
	b.Run("parseJSONMembers", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			parseJSONMembers(v, []string{"id", "status", "total", "customer"})
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			referenceJSON(v)
		}
	})
}
