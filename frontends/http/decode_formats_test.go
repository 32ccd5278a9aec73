package httpapi

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/sdk"
)

// doProduce posts body to the produce route of topic orders with the
// Content-Type ctype and the headers hdr, and returns the status and body.
func doProduce(t *testing.T, s *Server, query, ctype string, hdr http.Header, body string) (int, []byte) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/v1/topics/orders/messages"+query, strings.NewReader(body))
	req.Header.Set("Content-Type", ctype)
	for name, vs := range hdr {
		for _, v := range vs {
			req.Header.Add(name, v)
		}
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

func TestProduceRawBody(t *testing.T) {
	binary := []byte{0, 0xff, 0xfe, '\n'}
	for _, tc := range []struct {
		name  string
		query string
		ctype string
		hdr   http.Header
		body  string
		want  produce.Message
	}{
		{name: "value only", ctype: "application/octet-stream", body: "hello",
			want: produce.Message{Value: []byte("hello"), Partition: sdk.PartitionHash}},
		{name: "empty value, media type with parameters and upper case", ctype: "Application/Octet-Stream; charset=binary",
			want: produce.Message{Value: []byte{}, Partition: sdk.PartitionHash}},
		{name: "binary value is not decoded", ctype: "application/octet-stream", body: string(binary),
			want: produce.Message{Value: binary, Partition: sdk.PartitionHash}},
		{name: "JSON-looking value stays the value", ctype: "application/octet-stream", body: `{"value": "v"}`,
			want: produce.Message{Value: []byte(`{"value": "v"}`), Partition: sdk.PartitionHash}},
		{
			name: "every field", ctype: "application/octet-stream", body: "v",
			hdr: http.Header{"X-Mqgate-Key": {"k"}, "X-Mqgate-Tags": {"t"}, "X-Mqgate-Partition": {"3"}, "X-Mqgate-Hash-Id": {"-42"},
				"X-Mqgate-Prop-Trace": {"abc", "def"}, "X-Mqgate-Prop-A": {"1"},
				"X-Mqgate-Prop-Encoded": {b64("Case-Kept") + ":" + b64("x\ny"), b64("e") + ":" + ", " + b64("") + ":" + b64("z")}},
			want: produce.Message{Key: []byte("k"), Value: []byte("v"), Tags: "t", Partition: 3, HashID: int64p(-42), Headers: []sdk.Header{
				{Key: "a", Value: []byte("1")}, {Key: "trace", Value: []byte("abc")}, {Key: "trace", Value: []byte("def")},
				{Key: "Case-Kept", Value: []byte("x\ny")}, {Key: "e", Value: []byte{}}, {Key: "", Value: []byte("z")}}},
		},
		{name: "binary key", ctype: "application/octet-stream", body: "v", hdr: http.Header{"X-Mqgate-Key-Base64": {b64(string(binary))}},
			want: produce.Message{Key: binary, Value: []byte("v"), Partition: sdk.PartitionHash}},
		{name: "empty key", ctype: "application/octet-stream", body: "v", hdr: http.Header{"X-Mqgate-Key": {""}},
			want: produce.Message{Key: []byte{}, Value: []byte("v"), Partition: sdk.PartitionHash}},
		{name: "key in the query, as kafka-pixy", query: "?key=user%2042&mode=sync", ctype: "application/octet-stream", body: "v",
			want: produce.Message{Key: []byte("user 42"), Value: []byte("v"), Partition: sdk.PartitionHash}},
		{name: "random partition", ctype: "application/octet-stream", body: "v", hdr: http.Header{"X-Mqgate-Partition": {" -2 "}},
			want: produce.Message{Value: []byte("v"), Partition: sdk.PartitionRandom}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fp := &fakeProducer{}
			s := newTestServer(t, Options{}, fp, nil)
			status, body := doProduce(t, s, tc.query, tc.ctype, tc.hdr, tc.body)
			if status != http.StatusOK {
				t.Fatalf("status %d: %s", status, body)
			}
			checkJSON(t, body, `{"results": [{"partition": 1, "offset": 100, "code": 0}]}`)
			calls := fp.Calls()
			if len(calls) != 1 || !reflect.DeepEqual(calls[0].msgs, []produce.Message{tc.want}) {
				t.Fatalf("produced %#v\nwant %#v", calls, tc.want)
			}
		})
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestProduceRawAndNDJSONRefuse(t *testing.T) {
	const raw, nd = "application/octet-stream", "application/x-ndjson"
	for _, tc := range []struct {
		name   string
		opts   Options
		query  string
		ctype  string
		hdr    http.Header
		body   string
		status int
		code   sdk.Code
		msg    string
	}{
		{name: "raw: both keys", ctype: raw, body: "v", hdr: http.Header{"X-Mqgate-Key": {"k"}, "X-Mqgate-Key-Base64": {"aw=="}},
			status: 400, code: 11, msg: "X-Mqgate-Key-Base64: not allowed together with X-Mqgate-Key"},
		{name: "raw: key header and query", ctype: raw, query: "?key=a", body: "v", hdr: http.Header{"X-Mqgate-Key": {"k"}},
			status: 400, code: 11, msg: "key: the query parameter is not allowed together with X-Mqgate-Key"},
		{name: "raw: bad base64 key", ctype: raw, body: "v", hdr: http.Header{"X-Mqgate-Key-Base64": {"a"}},
			status: 400, code: 11, msg: "X-Mqgate-Key-Base64: not standard padded base64"},
		{name: "raw: key twice", ctype: raw, body: "v", hdr: http.Header{"X-Mqgate-Key": {"a", "b"}},
			status: 400, code: 11, msg: "X-Mqgate-Key: given twice"},
		{name: "raw: partition not a number", ctype: raw, body: "v", hdr: http.Header{"X-Mqgate-Partition": {"x"}},
			status: 400, code: 11, msg: "X-Mqgate-Partition: must be an integer"},
		{name: "raw: partition empty", ctype: raw, body: "v", hdr: http.Header{"X-Mqgate-Partition": {""}},
			status: 400, code: 11, msg: "X-Mqgate-Partition: must be an integer; got an empty value"},
		{name: "raw: partition below -2", ctype: raw, body: "v", hdr: http.Header{"X-Mqgate-Partition": {"-3"}},
			status: 400, code: 11, msg: "X-Mqgate-Partition: must be -1 (by hash), -2 (random) or a partition >= 0; got -3"},
		{name: "raw: partition out of range", ctype: raw, body: "v", hdr: http.Header{"X-Mqgate-Partition": {"2147483648"}},
			status: 400, code: 11, msg: "X-Mqgate-Partition: 2147483648 is out of range for a 32-bit integer"},
		{name: "raw: hash id not a number", ctype: raw, body: "v", hdr: http.Header{"X-Mqgate-Hash-Id": {"1.5"}},
			status: 400, code: 11, msg: "X-Mqgate-Hash-Id: must be an integer"},
		{name: "raw: unknown header", ctype: raw, body: "v", hdr: http.Header{"X-Mqgate-Partiton": {"1"}},
			status: 400, code: 11, msg: "unknown header X-Mqgate-Partiton"},
		{name: "raw: bad encoded header", ctype: raw, body: "v", hdr: http.Header{"X-Mqgate-Prop-Encoded": {"abc"}},
			status: 400, code: 11, msg: `X-Mqgate-Prop-Encoded: "abc" is not base64(name):base64(value)`},
		{name: "raw: bad encoded value", ctype: raw, body: "v", hdr: http.Header{"X-Mqgate-Prop-Encoded": {"YQ==:!"}},
			status: 400, code: 11, msg: `X-Mqgate-Prop-Encoded: the value of "YQ==:!" is not standard padded base64`},
		{name: "raw: message too large", ctype: raw, opts: Options{MaxMessageBytes: 10}, body: "0123456789", hdr: http.Header{"X-Mqgate-Key": {"k"}},
			status: 413, code: 16, msg: "message 0 is 11 bytes, over http.max_message_bytes (10)"},
		{name: "raw: body too large", ctype: raw, opts: Options{MaxBodyBytes: 32}, body: strings.Repeat("x", 33),
			status: 413, code: 16, msg: "request body exceeds http.max_body_bytes (32 bytes)"},
		{name: "raw: bad mode", ctype: raw, query: "?mode=fast", body: "v", status: 400, code: 11, msg: `mode: must be sync or async; got "fast"`},
		{name: "ndjson: empty", ctype: nd, body: "\n \n", status: 400, code: 11, msg: "request body holds no message"},
		{name: "ndjson: malformed line", ctype: nd, body: "{\"value\": \"a\"}\n{\"value\": \"b\",}\n", status: 400, code: 11,
			msg: "malformed JSON at line 2, column 14"},
		{name: "ndjson: wrong type names line and field", ctype: nd, body: "{\"value\": \"a\"}\r\n\n{\"value\": \"b\", \"key\": 1}\n", status: 400, code: 11,
			msg: "line 3: key: must be a string"},
		{name: "ndjson: missing value", ctype: nd, body: "{\"value\": \"a\"}\n{\"key\": \"k\"}", status: 400, code: 11,
			msg: "line 2: value or value_base64 is required"},
		{name: "ndjson: unknown field", ctype: nd, body: "{\"value\": \"a\", \"x\": 1}", status: 400, code: 11, msg: `line 1: unknown field "x"`},
		{name: "ndjson: header value", ctype: nd, body: "{\"value\": \"a\", \"headers\": {\"h\": 2}}", status: 400, code: 11, msg: `line 1: headers["h"]: must be a string`},
		{name: "ndjson: not an object", ctype: nd, body: "{\"value\": \"a\"}\n[1]\n", status: 400, code: 11, msg: "line 2: must be a message object"},
		{name: "ndjson: messages wrapper is not a message", ctype: nd, body: `{"messages": [{"value": "a"}]}`, status: 400, code: 11, msg: `line 1: unknown field "messages"`},
		{name: "ndjson: two objects on a line", ctype: nd, body: "{\"value\": \"a\"} {\"value\": \"b\"}\n", status: 400, code: 11, msg: "line 1: holds more than one JSON value"},
		{name: "ndjson: object over two lines", ctype: nd, body: "{\"value\": \"a\",\n\"key\": \"k\"}\n", status: 400, code: 11, msg: "line 1: the message object continues on the next line"},
		{name: "ndjson: too many messages", ctype: nd, opts: Options{MaxBatchMessages: 2}, body: "{\"value\": \"a\"}\n{\"value\": \"b\"}\n{\"value\": \"c\"}\n",
			status: 413, code: 16, msg: "3 messages exceed http.max_batch_messages (2)"},
		{name: "json: headers that would take more than a body once decoded", ctype: "application/json", opts: Options{MaxBodyBytes: 400},
			body:   `{"value": "v", "headers": {"a": "", "b": "", "c": "", "d": "", "e": "", "f": "", "g": "", "h": "", "i": "", "j": "", "k": ""}}`,
			status: 413, code: 16, msg: "the messages hold more than 10 headers in all: 440 bytes once decoded, over http.max_body_bytes (400)"},
		{name: "ndjson: headers that would take more than a body once decoded", ctype: nd, opts: Options{MaxBodyBytes: 400},
			body:   strings.Repeat("{\"value\": \"v\", \"headers\": {\"a\": \"\", \"b\": \"\", \"c\": \"\"}}\n", 4),
			status: 413, code: 16, msg: "the messages hold more than 10 headers in all: 440 bytes once decoded, over http.max_body_bytes (400)"},
		{name: "json: too many messages, counted to the end", ctype: "application/json", opts: Options{MaxBatchMessages: 2},
			body:   `{"messages": [{"value": "a"}, {"value": "b"}, {"value": "c"}, {"value": "d"}]}`,
			status: 413, code: 16, msg: "4 messages exceed http.max_batch_messages (2)"},
		{name: "json: a malformed message past the limit is still named", ctype: "application/json", opts: Options{MaxBatchMessages: 1},
			body:   `{"messages": [{"value": "a"}, {"value": "b"}, {"value": 3}]}`,
			status: 400, code: 11, msg: "messages[2].value: must be a string"},
		{name: "ndjson: message too large", ctype: nd, opts: Options{MaxMessageBytes: 3}, body: "{\"value\": \"a\"}\n{\"value\": \"bcde\"}\n",
			status: 413, code: 16, msg: "message 1 is 4 bytes, over http.max_message_bytes (3)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fp := &fakeProducer{}
			s := newTestServer(t, tc.opts, fp, nil)
			status, body := doProduce(t, s, tc.query, tc.ctype, tc.hdr, tc.body)
			checkError(t, status, body, tc.status, tc.code, tc.msg)
			if calls := fp.Calls(); len(calls) != 0 {
				t.Errorf("bad input reached the producer: %+v", calls)
			}
		})
	}
}

// encodeNDJSON is msgs as an NDJSON body: encodeMessages's objects, one
// per line.
func encodeNDJSON(t testing.TB, msgs []produce.Message) []byte {
	var buf bytes.Buffer
	for _, m := range msgs {
		b := encodeMessages(t, []produce.Message{m})
		b = bytes.TrimSuffix(bytes.TrimPrefix(b, []byte(`{"messages": [`)), []byte("]}"))
		buf.Write(b)
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

func TestProduceNDJSONIsTheJSONBatch(t *testing.T) {
	msgs := []produce.Message{
		{Value: []byte{0, 1, 0xff}, Partition: sdk.PartitionHash},
		{Key: []byte{}, Value: []byte{}, Partition: 0, HashID: int64p(0)},
		{Key: []byte("ключ <&>"), Value: []byte("\"quoted\"\n"), Tags: "t", Partition: sdk.PartitionRandom,
			Headers: []sdk.Header{{Key: "h", Value: []byte{}}, {Key: "h", Value: []byte("2")}}},
	}
	fromJSON, err := decodeMessages(encodeMessages(t, msgs))
	if err != nil {
		t.Fatal(err)
	}
	fp := &fakeProducer{}
	s := newTestServer(t, Options{}, fp, nil)
	status, body := doProduce(t, s, "", "application/x-ndjson", nil, string(encodeNDJSON(t, msgs)))
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	checkJSON(t, body, `{"results": [{"partition": 1, "offset": 100, "code": 0}, {"partition": 1, "offset": 101, "code": 0}, {"partition": 1, "offset": 102, "code": 0}]}`)
	if calls := fp.Calls(); len(calls) != 1 || !reflect.DeepEqual(calls[0].msgs, fromJSON) {
		t.Fatalf("produced %#v\nwant %#v", calls, fromJSON)
	}
}

func FuzzDecodeNDJSON(f *testing.F) {
	for _, seed := range []string{
		"{\"value\": \"v\"}\n",
		"{\"key\": \"k\", \"value\": \"v\", \"headers\": {\"a\": \"1\"}}\r\n\n{\"value_base64\": \"AP8=\", \"partition\": -2}",
		"{\"value\": \"a\"} {\"value\": \"b\"}",
		"{\"value\": \"a\",\n\"key\": \"k\"}",
		"[1]\n",
		"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		msgs, err := decodeNDJSON(body)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		if len(msgs) == 0 {
			t.Fatal("no error and no messages")
		}
		// Each line is what one element of a JSON batch is.
		again, err := decodeNDJSON(encodeNDJSON(t, msgs))
		if err != nil {
			t.Fatalf("re-decoding the re-encoded messages: %v", err)
		}
		if !reflect.DeepEqual(again, msgs) {
			t.Fatalf("round trip changed the messages:\n got  %#v\nwant %#v", again, msgs)
		}
	})
}

func FuzzDecodeRaw(f *testing.F) {
	f.Add("X-Mqgate-Key", "k", "X-Mqgate-Prop-Encoded", "YQ==:Yg==, :", "key=x", []byte("v"))
	f.Add("X-Mqgate-Partition", "-2", "X-Mqgate-Hash-Id", "9223372036854775808", "", []byte{})
	f.Add("X-Mqgate-Key-Base64", "AP8=", "X-Mqgate-Prop-Trace", "abc", "key=a&key=b", []byte{0xff})
	f.Fuzz(func(t *testing.T, name1, value1, name2, value2, query string, body []byte) {
		h := http.Header{}
		h.Add(name1, value1)
		h.Add(name2, value2)
		q, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		msgs, err := decodeRaw(h, q, body)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		if len(msgs) != 1 || !bytes.Equal(msgs[0].Value, body) || msgs[0].Value == nil || msgs[0].Partition < sdk.PartitionRandom {
			t.Fatalf("decoded %#v from body %q", msgs, body)
		}
	})
}

// BenchmarkDecodeProduce compares the produce body formats for 100
// messages of 1 KiB, as in produce-http: the JSON batch and NDJSON per
// request, the raw body per message (times 100, one request each).
func BenchmarkDecodeProduce(b *testing.B) {
	value := []byte(strings.Repeat("abcdefghijklmnopqrstuvwxyz012345", 32))
	var msgs []produce.Message
	for i := range 100 {
		msgs = append(msgs, produce.Message{Key: []byte("key-" + string(rune('a'+i%26))), Value: value, Partition: sdk.PartitionHash})
	}
	jsonBody, ndBody := encodeMessages(b, msgs), encodeNDJSON(b, msgs)
	for _, tc := range []struct {
		name   string
		body   []byte
		decode func([]byte) ([]produce.Message, error)
	}{{"json", jsonBody, decodeMessages}, {"ndjson", ndBody, decodeNDJSON}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(tc.body)))
			for b.Loop() {
				if _, err := tc.decode(tc.body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("raw-x100", func(b *testing.B) {
		b.ReportAllocs()
		h := http.Header{"X-Mqgate-Key": {"key-a"}, "Content-Type": {"application/octet-stream"}}
		for b.Loop() {
			for range 100 {
				if _, err := decodeRaw(h, nil, value); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

// BenchmarkProduceRequest is one produce request of 100 messages of 1 KiB
// through the handler, against a producer that answers at once: what the
// HTTP frontend costs per request, body to answer.
func BenchmarkProduceRequest(b *testing.B) {
	value := []byte(strings.Repeat("abcdefghijklmnopqrstuvwxyz012345", 32))
	var msgs []produce.Message
	for i := range 100 {
		msgs = append(msgs, produce.Message{Key: []byte("key-" + string(rune('a'+i%26))), Value: value, Partition: sdk.PartitionHash})
	}
	s := New(Options{Logger: quietLogger()}, &fakeProducer{}, nil)
	h := s.Handler()
	for _, tc := range []struct {
		name, ctype string
		body        []byte
	}{{"json", "application/json", encodeMessages(b, msgs)}, {"ndjson", "application/x-ndjson", encodeNDJSON(b, msgs)}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(tc.body)))
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/v1/topics/orders/messages", bytes.NewReader(tc.body))
				req.Header.Set("Content-Type", tc.ctype)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
			}
		})
	}
}

// A body's buffer has room past the body, which a later request's body
// may be read into (bodyPool): a decoded message's key, value and header
// values, raw, protobuf or JSON, end where they end, so that an append to one copies it rather than writing
// into that room, and nothing read past them finds another body's bytes.
func TestDecodedBytesEndWithThem(t *testing.T) {
	inRoom := func(body []byte) []byte {
		buf := make([]byte, len(body), 4*len(body)+16)
		copy(buf, body)
		return buf
	}
	raw, err := decodeRaw(http.Header{}, nil, inRoom([]byte("the value")))
	if err != nil {
		t.Fatal(err)
	}
	pb, err := decodeProtobuf(inRoom(encodeProtobuf(t, []produce.Message{
		{Key: []byte("k"), Value: []byte("v1"), Headers: []sdk.Header{{Key: "h", Value: []byte("hv")}}},
		{Key: []byte("k2"), Value: []byte("v2")},
	})), testLimits)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/v1/topics/orders/messages", nil)
	req.Header.Set("Content-Type", "application/json")
	js, err := decodeProduceBody(req, inRoom([]byte(`{"messages":[{"key":"k","value":"v","headers":{"h":"hv"}},{"value":"v2"}]}`)), testLimits)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range append(append(raw, pb...), js...) {
		all := [][]byte{m.Key, m.Value}
		for _, h := range m.Headers {
			all = append(all, h.Value)
		}
		for _, b := range all {
			if cap(b) != len(b) {
				t.Errorf("%q has room for %d more bytes past it", b, cap(b)-len(b))
			}
		}
	}
}
