package consume

import (
	"strings"
	"testing"
)

func TestDecodeSubRecord(t *testing.T) {
	good, goodValue := subRecord{Group: "cg", Topic: "orders", Subscribed: true, AtMs: 1700000000000, By: "alice"}.encode()
	for _, tc := range []struct {
		name, key, value string
		max              int
		want             string // "" for a record that decodes
	}{
		{"good", string(good), string(goodValue), 4096, ""},
		{"removal", "cg/orders", `{"v":1,"subscribed":false,"at_ms":0}`, 4096, ""},
		{"too large", "cg/orders", `{"v":1,"subscribed":true,"at_ms":1}`, 20, "over subscriptions.max_record_bytes"},
		{"no slash", "cgorders", `{"v":1,"subscribed":true,"at_ms":1}`, 4096, "not group/topic"},
		{"bad group", "c g/orders", `{"v":1,"subscribed":true,"at_ms":1}`, 4096, "group:"},
		{"bad topic", "cg/a/b", `{"v":1,"subscribed":true,"at_ms":1}`, 4096, "topic:"},
		{"empty topic", "cg/", `{"v":1,"subscribed":true,"at_ms":1}`, 4096, "topic:"},
		{"not json", "cg/orders", `yes`, 4096, "value"},
		{"null", "cg/orders", `null`, 4096, "version 0"},
		{"other version", "cg/orders", `{"v":2,"subscribed":true,"at_ms":1}`, 4096, "version 2"},
		{"no subscribed", "cg/orders", `{"v":1,"at_ms":1}`, 4096, "subscribed: required"},
		{"unknown field", "cg/orders", `{"v":1,"subscribed":true,"at_ms":1,"x":1}`, 4096, "unknown field"},
		{"negative time", "cg/orders", `{"v":1,"subscribed":true,"at_ms":-1}`, 4096, "negative"},
		{"two values", "cg/orders", `{"v":1,"subscribed":true,"at_ms":1}{}`, 4096, "more than one"},
		{"wrong type", "cg/orders", `{"v":"1","subscribed":true,"at_ms":1}`, 4096, "value"},
		{"empty", "", "", 4096, "not group/topic"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := decodeSubRecord([]byte(tc.key), []byte(tc.value), tc.max)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("decode: %v", err)
			case tc.want == "":
				if k, v := r.encode(); string(k) != tc.key || !strings.Contains(string(v), `"v":1`) {
					t.Fatalf("encode(decode) = %s %s", k, v)
				}
			case err == nil || !strings.Contains(err.Error(), tc.want):
				t.Fatalf("decode = %+v, %v; want an error naming %q", r, err, tc.want)
			}
		})
	}
}

// FuzzDecodeSubRecord feeds the subscriptions topic's decoder what anyone
// who can write to the broker could write: it must never panic, and what
// it accepts must encode back to a record it reads the same.
func FuzzDecodeSubRecord(f *testing.F) {
	k, v := subRecord{Group: "cg", Topic: "orders", Subscribed: true, AtMs: 1, By: "a"}.encode()
	f.Add(k, v)
	f.Add([]byte("g/t"), []byte(`{"v":1,"subscribed":false,"at_ms":0}`))
	f.Add([]byte("/"), []byte(`{"v":1}`))
	f.Add([]byte("a/b/c"), []byte(`{"v":1,"subscribed":true,"at_ms":1,"by":"\u0000"}`))
	f.Fuzz(func(t *testing.T, key, value []byte) {
		r, err := decodeSubRecord(key, value, 4096)
		if err != nil {
			return
		}
		k, v := r.encode()
		again, err := decodeSubRecord(k, v, 1<<20)
		if err != nil || again != r {
			t.Fatalf("%+v encodes to %q %q, which reads back as %+v, %v", r, k, v, again, err)
		}
	})
}
