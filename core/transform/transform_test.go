package transform

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mqgate/mqgate/sdk"
)

func order(value string) *Input {
	return &Input{
		Topic: "orders", Qid: "3", Offset: 42, Key: []byte("user-7"), Value: []byte(value), Tags: "paid",
		Headers:   []sdk.Header{{Key: "source", Value: []byte("web")}, {Key: "trace", Value: []byte("abc")}},
		Timestamp: time.UnixMilli(1700000000123),
	}
}

func TestFilter(t *testing.T) {
	for _, tc := range []struct {
		name, src, value string
		want             bool
	}{
		{"json field", `json.amount > 100`, `{"amount": 250}`, true},
		{"json field below", `json.amount > 100`, `{"amount": 50}`, false},
		{"json float", `json.amount > 100`, `{"amount": 100.5}`, true},
		{"json int equality", `json.n == 3`, `{"n": 3}`, true},
		{"nested with ?.", `json?.user?.country == "DE"`, `{"user": {"country": "DE"}}`, true},
		{"not JSON gives nil json", `json == nil`, `plain text`, true},
		{"two JSON values are not JSON", `json == nil`, `{} {}`, true},
		{"key", `key startsWith "user-"`, `x`, true},
		{"tags", `tags in ["paid", "refunded"]`, `x`, true},
		{"headers", `headers.source == "web" && headers["trace"] == "abc"`, `x`, true},
		{"missing header", `headers.nope == ""`, `x`, true},
		{"topic qid offset", `topic == "orders" && qid == "3" && offset == 42`, `x`, true},
		{"timestamp", `timestamp_ms == 1700000000123`, `x`, true},
		{"value", `value contains "text"`, `some text`, true},
		{"json array", `len(json.items) == 2`, `{"items": [1, 2]}`, true},
		{"?? for values that are not JSON", `(json?.amount ?? 0) > 100`, `not json`, false},
		{"?? keeps a present field", `(json?.amount ?? 0) > 100`, `{"amount": 200}`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := CompileFilter(tc.src)
			if err != nil {
				t.Fatal(err)
			}
			got, err := f.Match(order(tc.value))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("Match(%s) on %s = %v, want %v", tc.src, tc.value, got, tc.want)
			}
		})
	}
}

func TestFilterRuntimeError(t *testing.T) {
	// Without ?. a missing object is an error, not a silent false.
	f, err := CompileFilter(`json.user.country == "DE"`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Match(order(`{"amount": 1}`)); err == nil {
		t.Fatal("no error for a field of a missing object")
	}
}

func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"syntax", `json.amount >`, "unexpected token"},
		{"not boolean", `key`, "expected bool"},
		{"unknown variable", `amount > 3`, "unknown name amount"},
		{"wrong type", `key > 3`, "invalid operation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := CompileFilter(tc.src)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("CompileFilter(%q) = %v, want an error containing %q", tc.src, err, tc.want)
			}
		})
	}
	_, err := Compile(Spec{Body: `json`, Headers: map[string]string{"X-Amount": `json.amount +`}})
	var ce *CompileError
	if !errors.As(err, &ce) || ce.Field != "headers.X-Amount" {
		t.Fatalf("Compile with a bad header expression = %v, want a CompileError for headers.X-Amount", err)
	}
}

func TestTransform(t *testing.T) {
	tr, err := Compile(Spec{
		Body: `{"id": json.id, "total": json.amount * 2, "from": headers.source}`,
		Headers: map[string]string{
			"X-Order":   `string(json.id)`,
			"X-Count":   `len(json.items)`,
			"X-Missing": `json?.nope`,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := tr.Apply(order(`{"id": 9, "amount": 21, "items": ["a", "b"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if !out.HasBody || string(out.Body) != `{"from":"web","id":9,"total":42}` {
		t.Errorf("body = %s", out.Body)
	}
	if out.Headers["X-Order"] != "9" || out.Headers["X-Count"] != "2" {
		t.Errorf("headers = %v", out.Headers)
	}
	if _, ok := out.Headers["X-Missing"]; ok {
		t.Errorf("a nil header value was sent: %v", out.Headers)
	}

	// A string body goes as it is; no body expression leaves the value.
	tr, _ = Compile(Spec{Body: `upper(value)`})
	if out, _ := tr.Apply(order("hello")); string(out.Body) != "HELLO" {
		t.Errorf("string body = %q", out.Body)
	}
	tr, _ = Compile(Spec{Headers: map[string]string{"X-Key": "key"}})
	if out, _ := tr.Apply(order("hello")); out.HasBody || out.Headers["X-Key"] != "user-7" {
		t.Errorf("headers-only transform = %+v", out)
	}
}

// FuzzFilter runs a filter and a transform that read json on arbitrary
// message values: whatever the bytes, they answer or fail, never panic.
func FuzzFilter(f *testing.F) {
	for _, s := range []string{`{"amount": 5}`, `[1,2]`, `"x"`, `1e400`, `{"amount": "x"}`, "\xff", `{"a":{"b":[{}]}}`, `null`} {
		f.Add([]byte(s))
	}
	filter, err := CompileFilter(`json?.amount > 3 || len(string(json)) > 2`)
	if err != nil {
		f.Fatal(err)
	}
	tr, err := Compile(Spec{Body: `json`, Headers: map[string]string{"X-A": `json?.a`}})
	if err != nil {
		f.Fatal(err)
	}
	bodyOnly, err := Compile(Spec{Body: `json`})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, value []byte) {
		in := order(string(value))
		// An error is an answer too (json?.a of an array is one); what
		// must not happen is a panic or a hang.
		_, _ = filter.Match(in)
		_, _ = tr.Apply(in)
		if _, err := bodyOnly.Apply(in); err != nil {
			// Whatever parses re-encodes; anything else is nil: empty.
			t.Fatalf("body json of %q: %v", value, err)
		}
	})
}
