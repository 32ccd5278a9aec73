package httpapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/sdk"
)

func int64p(v int64) *int64 { return &v }

func TestDecodeMessages(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		want []produce.Message
	}{
		{
			name: "value only: nil key, hash partition",
			body: `{"value": "v"}`,
			want: []produce.Message{{Value: []byte("v"), Partition: sdk.PartitionHash}},
		},
		{
			name: "every field",
			body: `{"key": "k", "value": "v", "headers": {"b": "2", "a": "1", "b": "3"}, "tags": "t", "partition": 3, "hash_id": -9}`,
			want: []produce.Message{{
				Key: []byte("k"), Value: []byte("v"), Tags: "t", Partition: 3, HashID: int64p(-9),
				Headers: []sdk.Header{{Key: "b", Value: []byte("2")}, {Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("3")}},
			}},
		},
		{
			name: "empty key and value stay non-nil",
			body: `{"key": "", "value": ""}`,
			want: []produce.Message{{Key: []byte{}, Value: []byte{}, Partition: sdk.PartitionHash}},
		},
		{
			name: "null fields count as absent",
			body: `{"key": null, "value": "v", "value_base64": null, "headers": null, "tags": null, "partition": null, "hash_id": null}`,
			want: []produce.Message{{Value: []byte("v"), Partition: sdk.PartitionHash}},
		},
		{
			name: "value_base64 binary",
			body: `{"value_base64": "AP8QgA==", "partition": -2}`,
			want: []produce.Message{{Value: []byte{0, 0xff, 0x10, 0x80}, Partition: sdk.PartitionRandom}},
		},
		{
			name: "empty value_base64",
			body: `{"value_base64": ""}`,
			want: []produce.Message{{Value: []byte{}, Partition: sdk.PartitionHash}},
		},
		{
			name: "largest partition and hash_id",
			body: `{"value": "v", "partition": 2147483647, "hash_id": -9223372036854775808}`,
			want: []produce.Message{{Value: []byte("v"), Partition: 2147483647, HashID: int64p(-9223372036854775808)}},
		},
		{
			name: "batch in order",
			body: `{"messages": [{"value": "a"}, {"key": "k", "value_base64": "Yg=="}, {"value": "c", "partition": 0}]}`,
			want: []produce.Message{
				{Value: []byte("a"), Partition: sdk.PartitionHash},
				{Key: []byte("k"), Value: []byte("b"), Partition: sdk.PartitionHash},
				{Value: []byte("c"), Partition: 0},
			},
		},
		{
			name: "whitespace around everything",
			body: " \n{ \"value\" :\t\"v\" , \"headers\" : { \"h\" : \"x\" } }\n",
			want: []produce.Message{{Value: []byte("v"), Partition: sdk.PartitionHash, Headers: []sdk.Header{{Key: "h", Value: []byte("x")}}}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeMessages([]byte(tc.body))
			if err != nil {
				t.Fatalf("decodeMessages: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %#v\nwant %#v", got, tc.want)
			}
		})
	}
}

func TestDecodeMessagesRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		// msg must appear in the error message; exact when exact is set.
		msg   string
		exact bool
	}{
		{name: "empty body", body: "", msg: "request body is empty"},
		{name: "blank body", body: " \n", msg: "request body is empty"},
		{name: "trailing comma", body: `{"value": "v",}`, msg: "malformed JSON at line 1, column 14 (byte offset 13)"},
		{name: "syntax error on line 2", body: "{\"value\": \"v\",\n \"key\": tru}", msg: "malformed JSON at line 2, column 12"},
		{name: "truncated", body: `{"value": "v"`, msg: "malformed JSON at line 1"},
		{name: "trailing data", body: `{"value": "v"} {}`, msg: "malformed JSON at line 1, column 16"},
		{name: "array body", body: `[{"value": "v"}]`, msg: "request body must be a JSON object"},
		{name: "null body", body: `null`, msg: "request body must be a JSON object"},
		{name: "string body", body: `"v"`, msg: "request body must be a JSON object"},
		{name: "unknown field", body: `{"value": "v", "vaule": "w"}`, msg: `unknown field "vaule"`, exact: true},
		{name: "field names are case-sensitive", body: `{"Value": "v"}`, msg: `unknown field "Value"`, exact: true},
		{name: "unknown top-level field with messages", body: `{"messages": [{"value": "v"}], "extra": 1}`, msg: `unknown field "extra"`, exact: true},
		{name: "unknown field in batch", body: `{"messages": [{"value": "v"}, {"value": "v", "offset": 1}]}`, msg: `messages[1]: unknown field "offset"`, exact: true},
		{name: "missing value", body: `{"key": "k"}`, msg: "value or value_base64 is required", exact: true},
		{name: "null value", body: `{"value": null}`, msg: "value or value_base64 is required", exact: true},
		{name: "missing value in batch", body: `{"messages": [{"value": "v"}, {"key": "k"}]}`, msg: "messages[1]: value or value_base64 is required", exact: true},
		{name: "value and value_base64", body: `{"value": "v", "value_base64": "dg=="}`, msg: "value_base64: not allowed together with value"},
		{name: "value not a string", body: `{"value": 5}`, msg: "value: must be a string", exact: true},
		{name: "value an object", body: `{"value": {"a": 1}}`, msg: "value: must be a string", exact: true},
		{name: "value_base64 not base64", body: `{"value_base64": "not base64!"}`, msg: "value_base64: not standard padded base64"},
		{name: "value_base64 unpadded", body: `{"value_base64": "dg"}`, msg: "value_base64: not standard padded base64"},
		{name: "value_base64 a number", body: `{"value_base64": 1}`, msg: "value_base64: must be a string", exact: true},
		{name: "key not a string", body: `{"key": 1, "value": "v"}`, msg: "key: must be a string", exact: true},
		{name: "tags not a string", body: `{"tags": ["a"], "value": "v"}`, msg: "tags: must be a string", exact: true},
		{name: "headers an array", body: `{"headers": ["a"], "value": "v"}`, msg: "headers: must be an object of string values", exact: true},
		{name: "header value a number", body: `{"headers": {"a": "1", "b": 2}, "value": "v"}`, msg: `headers["b"]: must be a string`, exact: true},
		{name: "header value null", body: `{"headers": {"a": null}, "value": "v"}`, msg: `headers["a"]: must be a string`, exact: true},
		{name: "partition -3", body: `{"value": "v", "partition": -3}`, msg: "partition: must be -1 (by hash), -2 (random) or a partition >= 0; got -3", exact: true},
		{name: "partition in batch", body: `{"messages": [{"value": "v", "partition": -7}]}`, msg: "messages[0].partition: must be -1"},
		{name: "partition fraction", body: `{"value": "v", "partition": 1.5}`, msg: "partition: must be an integer; got 1.5", exact: true},
		{name: "partition exponent", body: `{"value": "v", "partition": 1e2}`, msg: "partition: must be an integer"},
		{name: "partition a string", body: `{"value": "v", "partition": "1"}`, msg: "partition: must be an integer", exact: true},
		{name: "partition over int32", body: `{"value": "v", "partition": 2147483648}`, msg: "partition: 2147483648 is out of range for a 32-bit integer", exact: true},
		{name: "hash_id fraction", body: `{"value": "v", "hash_id": 0.5}`, msg: "hash_id: must be an integer"},
		{name: "hash_id over int64", body: `{"value": "v", "hash_id": 9223372036854775808}`, msg: "hash_id: 9223372036854775808 is out of range for a 64-bit integer", exact: true},
		{name: "hash_id a bool", body: `{"value": "v", "hash_id": true}`, msg: "hash_id: must be an integer", exact: true},
		{name: "message and messages", body: `{"value": "v", "messages": [{"value": "w"}]}`, msg: "value: a message field cannot be combined with messages"},
		{name: "empty messages", body: `{"messages": []}`, msg: "messages: must not be empty", exact: true},
		{name: "null messages", body: `{"messages": null}`, msg: "messages: must be a non-empty array of message objects", exact: true},
		{name: "messages an object", body: `{"messages": {"value": "v"}}`, msg: "messages: must be a non-empty array of message objects", exact: true},
		{name: "messages element a string", body: `{"messages": ["v"]}`, msg: "messages[0]: must be a message object", exact: true},
		{name: "repeated field", body: `{"value": "v", "value": "w"}`, msg: "value: given twice", exact: true},
		{name: "repeated field in batch", body: `{"messages": [{"key": "a", "value": "v", "key": "b"}]}`, msg: "messages[0].key: given twice", exact: true},
		{name: "repeated messages", body: `{"messages": [{"value": "v"}], "messages": [{"value": "w"}]}`, msg: "messages: given twice", exact: true},
		{name: "invalid UTF-8 is refused, not replaced", body: "{\"value\": \"a\xffb\"}", msg: "malformed JSON at line 1, column 13 (byte offset 12)"},
		{name: "lone surrogate escape", body: `{"value": "\ud800"}`, msg: "malformed JSON at line 1"},
		{name: "syntax error wins over a type error", body: `{"headers": [1, }`, msg: "malformed JSON"},
		{name: "messages element null", body: `{"messages": [{"value": "v"}, null]}`, msg: "messages[1]: must be a message object", exact: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msgs, err := decodeMessages([]byte(tc.body))
			if err == nil {
				t.Fatalf("decodeMessages accepted it: %#v", msgs)
			}
			var e *sdk.Error
			if !errors.As(err, &e) || e.Code != sdk.CodeIllegal {
				t.Fatalf("error %#v is not an *sdk.Error with code %d", err, sdk.CodeIllegal)
			}
			if tc.exact && e.Msg != tc.msg || !strings.Contains(e.Msg, tc.msg) {
				t.Errorf("message %q, want %q", e.Msg, tc.msg)
			}
		})
	}
}

// encodeMessages is the inverse of decodeMessages: a body that decodes to
// msgs. Values that are valid UTF-8 travel as "value", others as
// "value_base64", as API.md has responses do.
func encodeMessages(t testing.TB, msgs []produce.Message) []byte {
	t.Helper()
	str := func(s string) string {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("encoding %q: %v", s, err)
		}
		return string(b)
	}
	var buf bytes.Buffer
	buf.WriteString(`{"messages": [`)
	for i, m := range msgs {
		if i > 0 {
			buf.WriteString(", ")
		}
		buf.WriteString(`{"partition": ` + strconv.Itoa(int(m.Partition)))
		if utf8.Valid(m.Value) {
			buf.WriteString(`, "value": ` + str(string(m.Value)))
		} else {
			buf.WriteString(`, "value_base64": "` + base64.StdEncoding.EncodeToString(m.Value) + `"`)
		}
		if m.Key != nil {
			buf.WriteString(`, "key": ` + str(string(m.Key)))
		}
		if m.Tags != "" {
			buf.WriteString(`, "tags": ` + str(m.Tags))
		}
		if m.HashID != nil {
			buf.WriteString(`, "hash_id": ` + strconv.FormatInt(*m.HashID, 10))
		}
		if len(m.Headers) > 0 {
			// Written by hand: headers may repeat a name, which a Go map
			// cannot hold.
			buf.WriteString(`, "headers": {`)
			for j, h := range m.Headers {
				if j > 0 {
					buf.WriteString(", ")
				}
				buf.WriteString(str(h.Key) + ": " + str(string(h.Value)))
			}
			buf.WriteString("}")
		}
		buf.WriteString("}")
	}
	buf.WriteString("]}")
	return buf.Bytes()
}

func TestDecodeMessagesRoundTrip(t *testing.T) {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	msgs := []produce.Message{
		{Value: all, Partition: sdk.PartitionHash},
		{Key: []byte{}, Value: []byte{}, Partition: 0, HashID: int64p(0)},
		{Key: []byte("ключ <&>"), Value: []byte("\"quoted\"\n"), Tags: "t", Partition: sdk.PartitionRandom,
			Headers: []sdk.Header{{Key: "h", Value: []byte{}}, {Key: "h", Value: []byte("2")}}},
	}
	got, err := decodeMessages(encodeMessages(t, msgs))
	if err != nil {
		t.Fatalf("decodeMessages: %v", err)
	}
	if !reflect.DeepEqual(got, msgs) {
		t.Errorf("got  %#v\nwant %#v", got, msgs)
	}
}

func FuzzDecodeMessages(f *testing.F) {
	for _, seed := range []string{
		`{"value": "v"}`,
		`{"key": "k", "value": "v", "headers": {"a": "1", "a": "2"}, "tags": "t", "partition": 3, "hash_id": -9}`,
		`{"value_base64": "AP8QgA==", "partition": -2}`,
		`{"messages": [{"value": "a"}, {"key": "", "value_base64": ""}]}`,
		`{"messages": []}`,
		`{"value": "\ud800", "key": "\u00e9"}`,
		`{"value": "v",}`,
		`[1, 2]`,
		``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		msgs, err := decodeMessages(body)
		if err != nil {
			var e *sdk.Error
			if !errors.As(err, &e) || e.Code != sdk.CodeIllegal || e.Msg == "" {
				t.Fatalf("error %#v is not an *sdk.Error with code %d and a message", err, sdk.CodeIllegal)
			}
			return
		}
		if len(msgs) == 0 {
			t.Fatal("no error and no messages")
		}
		for i, m := range msgs {
			if m.Value == nil {
				t.Fatalf("message %d has a nil Value", i)
			}
			if m.Partition < sdk.PartitionRandom {
				t.Fatalf("message %d has partition %d", i, m.Partition)
			}
		}
		again, err := decodeMessages(encodeMessages(t, msgs))
		if err != nil {
			t.Fatalf("re-decoding the re-encoded messages: %v", err)
		}
		if !reflect.DeepEqual(again, msgs) {
			t.Fatalf("round trip changed the messages:\n got  %#v\nwant %#v", again, msgs)
		}
	})
}

// Values without escapes alias the request body. A large batch of distinct
// values must come out intact, each its own bytes: were the tokenizer to
// reuse an internal buffer, later values would overwrite earlier ones.
func TestDecodeLargeBatchKeepsEveryValue(t *testing.T) {
	var want []produce.Message
	for i := range 2000 {
		v := []byte(strings.Repeat(strconv.Itoa(i%10), 700) + "#" + strconv.Itoa(i))
		if i%7 == 0 {
			v = append(v, "\t\"esc\""...) // escaped in JSON: takes the copying path
		}
		want = append(want, produce.Message{Key: []byte("k" + strconv.Itoa(i)), Value: v, Partition: sdk.PartitionHash})
	}
	body := encodeMessages(t, want)
	got, err := decodeMessages(body)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		for i := range want {
			if !bytes.Equal(got[i].Value, want[i].Value) {
				t.Fatalf("message %d: value %.40q..., want %.40q...", i, got[i].Value, want[i].Value)
			}
		}
		t.Fatal("decoded batch differs")
	}
}
