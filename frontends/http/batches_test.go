package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mqgate/mqgate/core/consume"
	"github.com/mqgate/mqgate/sdk"
)

// TestSeed004CurlExamples runs seed 004's curl examples, paths and query
// strings as written, against the root routes of http.batch_default.
func TestSeed004CurlExamples(t *testing.T) {
	fake := &fakeConsumer{}
	h := consumeServer(t, Options{BatchDefault: &BatchSubscription{Group: "dts", Topic: "binlog"}}, fake)

	// curl "http://127.0.0.1:10231/info"
	status, _, body := do(t, h, "GET", "/info", "")
	checkOK(t, status, body, `{"acked_batch_id":0,"sent_batch_id":0}`)

	// The seed's fetch_new acks batch 1, which must have been sent first.
	status, _, first := do(t, h, "GET", "/fetch_new?batch_size=2", "")
	checkOK(t, status, first, `{"data": [
		{"value": "m0", "offset": 0, "qid": "0", "timestamp_ms": 1700000000000, "attempt": 1},
		{"value": "m1", "offset": 1, "qid": "0", "timestamp_ms": 1700000000001, "attempt": 1}], "batch_id": 1}`)

	// curl "http://127.0.0.1:10232/fetch_old?old_batch_id=1": batch 1
	// again, byte for byte.
	status, _, body = do(t, h, "GET", "/fetch_old?old_batch_id=1", "")
	if status != 200 || !bytes.Equal(body, first) {
		t.Errorf("fetch_old = %d %s, want %s", status, body, first)
	}

	// curl "http://127.0.0.1:10231/fetch_new?batch_size=2&ack_batch_id=1"
	status, _, body = do(t, h, "GET", "/fetch_new?batch_size=2&ack_batch_id=1", "")
	checkOK(t, status, body, `{"data": [
		{"value": "m2", "offset": 2, "qid": "0", "timestamp_ms": 1700000000002, "attempt": 1},
		{"value": "m3", "offset": 3, "qid": "0", "timestamp_ms": 1700000000003, "attempt": 1}], "batch_id": 2}`)
	if a := fake.fetchNewArgs[1]; a.group != "dts" || a.topic != "binlog" || a.size != 2 || a.ackID == nil || *a.ackID != 1 {
		t.Errorf("FetchNew(%+v), want dts binlog 2 ack 1", a)
	}
	for range 4 {
		do(t, h, "GET", "/fetch_new?batch_size=2", "")
	}

	// curl -X POST "http://127.0.0.1:10232/ack" -H "Content-Type: application/json" -d '{"ack_batch_id": 6}'
	req := httptest.NewRequest("POST", "/ack", strings.NewReader(`{"ack_batch_id": 6}`))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	checkOK(t, rec.Code, rec.Body.Bytes(), `{"acked_batch_id":6}`)

	status, _, body = do(t, h, "GET", "/info", "")
	checkOK(t, status, body, `{"acked_batch_id":6,"sent_batch_id":6}`)

	// Acked batches are gone; the consumer's range error reaches the
	// client as it is.
	status, _, body = do(t, h, "GET", "/fetch_old?old_batch_id=1", "")
	checkError(t, status, body, 400, 11, "old_batch_id: 1 is outside 7..6")
	status, _, body = do(t, h, "GET", "/fetch_new?batch_size=2&ack_batch_id=9", "")
	checkError(t, status, body, 400, 11, "ack_batch_id: 9 is outside 6..6")
}

func TestBatchRoutes(t *testing.T) {
	fake := &fakeConsumer{maxBatch: 3}
	h := consumeServer(t, Options{}, fake)
	const base = "/v1/groups/g/topics/t/batches/"
	status, _, body := do(t, h, "GET", base+"info", "")
	checkOK(t, status, body, `{"acked_batch_id":0,"sent_batch_id":0}`)

	// batch_size above MaxBatch is capped.
	status, _, body = do(t, h, "GET", base+"fetch_new?batch_size=1000", "")
	if status != 200 || fake.fetchNewArgs[0].size != 3 {
		t.Fatalf("fetch_new = %d %s, size %d; want 200 capped to 3", status, body, fake.fetchNewArgs[0].size)
	}
	if a := fake.fetchNewArgs[0]; a.group != "g" || a.topic != "t" || a.ackID != nil {
		t.Errorf("FetchNew(%+v), want g t and no ack", a)
	}

	// format=avro: the same batch as Avro records, arrays of numbers.
	status, _, body = do(t, h, "GET", base+"fetch_old?old_batch_id=1&format=avro", "")
	var got struct {
		Data    [][]int `json:"data"`
		BatchID int64   `json:"batch_id"`
	}
	if err := json.Unmarshal(body, &got); status != 200 || err != nil {
		t.Fatalf("fetch_old avro = %d %s (%v)", status, body, err)
	}
	if got.BatchID != 1 || len(got.Data) != 3 {
		t.Fatalf("fetch_old avro = %s, want batch 1 of 3 records", body)
	}
	for i, rec := range got.Data {
		m := fake.batches[0][i]
		want := appendMessageAvro(nil, "t", &m)
		gotBytes := make([]byte, len(rec))
		for j, n := range rec {
			gotBytes[j] = byte(n)
		}
		if !bytes.Equal(gotBytes, want) {
			t.Errorf("record %d = %v, want %v", i, gotBytes, want)
		}
	}
	if !bytes.HasPrefix(body, []byte(`{"data":[[`)) {
		t.Errorf("avro data is not arrays of numbers: %.40s", body)
	}

	status, _, body = do(t, h, "POST", base+"ack", `{"ack_batch_id": 1}`)
	checkOK(t, status, body, `{"acked_batch_id": 1}`)

	for _, tc := range []struct{ method, target, body, msg string }{
		{"GET", base + "fetch_new", "", "batch_size: required"},
		{"GET", base + "fetch_new?batch_size=0", "", "batch_size: must be >= 1; got 0"},
		{"GET", base + "fetch_new?batch_size=-3", "", "batch_size: must be >= 1; got -3"},
		{"GET", base + "fetch_new?batch_size=two", "", `batch_size: must be an integer; got "two"`},
		{"GET", base + "fetch_new?batch_size=99999999999999999999", "", "batch_size: must be an integer"},
		{"GET", base + "fetch_new?batch_size=2&ack_batch_id=", "", `ack_batch_id: must be an integer; got ""`},
		{"GET", base + "fetch_new?batch_size=2&ack_batch_id=1.0", "", `ack_batch_id: must be an integer; got "1.0"`},
		{"GET", base + "fetch_new?batch_size=2&format=xml", "", `format: must be json or avro; got "xml"`},
		{"GET", base + "fetch_old", "", "old_batch_id: required"},
		{"GET", base + "fetch_old?old_batch_id=x", "", `old_batch_id: must be an integer; got "x"`},
		{"POST", base + "ack", "", "request body is empty"},
		{"POST", base + "ack", `{}`, "ack_batch_id: required"},
		{"POST", base + "ack", `{"ack_batch_id": "1"}`, "ack_batch_id: must be an integer"},
		{"POST", base + "ack", `{"ack_batch_id": 1, "batch_id": 1}`, `unknown field "batch_id"`},
		{"GET", "/v1/groups/g/topics/a%20b/batches/info", "", "topic: character ' '"},
		{"GET", "/v1/groups/-%3F/topics/t/batches/info", "", "group: character '?'"},
	} {
		status, _, body := do(t, h, tc.method, tc.target, tc.body)
		checkError(t, status, body, 400, 11, tc.msg)
	}
	if n := len(fake.fetchNewArgs); n != 1 {
		t.Errorf("FetchNew called %d times, want once (bad input calls nothing)", n)
	}
}

func TestBatchDefaultWithBadNames(t *testing.T) {
	h := consumeServer(t, Options{BatchDefault: &BatchSubscription{Group: "", Topic: "t"}}, &fakeConsumer{})
	status, _, body := do(t, h, "GET", "/info", "")
	checkError(t, status, body, 400, 11, "group: must not be empty")
}

// TestAvroEncoding checks the encoder against bytes worked out by hand
// from the Avro specification.
func TestAvroEncoding(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    consume.Message
		want []byte
	}{
		{
			name: "no key, one header",
			m: consume.Message{Topic: "t", Qid: "0", Offset: 5, Value: []byte("hi"), Timestamp: time.UnixMilli(1),
				Headers: []sdk.Header{{Key: "a", Value: []byte("b")}}},
			want: []byte{
				2, 't', // topic: length 1 (zig-zag 2), "t"
				2, '0', // qid
				10,          // offset 5 -> 10
				0,           // key: union branch 0, null
				4, 'h', 'i', // value: length 2
				0,                 // tags: ""
				2,                 // timestamp_ms 1 -> 2
				2, 2, 'a', 2, 'b', // headers: a block of 1 entry, "a" -> "b"
				0, // end of the map
			},
		},
		{
			name: "key, no headers, multi-byte varints",
			m:    consume.Message{Topic: "t", Qid: "12", Offset: 64, Key: []byte("k"), Value: []byte{}, Tags: "x", Timestamp: time.UnixMilli(-65)},
			want: []byte{
				2, 't',
				4, '1', '2',
				0x80, 0x01, // 64 -> 128
				2, 2, 'k', // key: union branch 1, length 1, "k"
				0,      // value: empty
				2, 'x', // tags
				0x81, 0x01, // -65 -> 129
				0, // headers: empty map
			},
		},
		{
			name: "docs/http.md's example",
			m:    consume.Message{Qid: "0", Value: []byte("hi"), Timestamp: time.UnixMilli(1767225600000)},
			want: []byte{12, 98, 105, 110, 108, 111, 103, 2, 48, 0, 0, 4, 104, 105, 0, 128, 160, 213, 237, 238, 102, 0},
		},
		{
			name: "topic from the caller, empty key",
			m:    consume.Message{Qid: "0", Offset: -1, Key: []byte{}, Value: []byte{0xff}},
			want: []byte{6, 'o', 'r', 'd', 2, '0', 1, 2, 0, 2, 0xff, 0, 0, 0},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic := "ord"
			if strings.HasPrefix(tc.name, "docs") {
				topic = "binlog"
			}
			if got := appendMessageAvro(nil, topic, &tc.m); !bytes.Equal(got, tc.want) {
				t.Errorf("got  %v\nwant %v", got, tc.want)
			}
		})
	}
	for v, want := range map[int64][]byte{0: {0}, -1: {1}, 1: {2}, -64: {0x7f}, 63: {0x7e}, 8191: {0xfe, 0x7f}, -9223372036854775808: {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}} {
		if got := appendAvroLong(nil, v); !bytes.Equal(got, want) {
			t.Errorf("long %d = %x, want %x", v, got, want)
		}
	}
}

func TestMessageSchema(t *testing.T) {
	h := consumeServer(t, Options{}, nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/schemas/message.avsc", nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("schema: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	var schema struct {
		Type, Name, Namespace string
		Fields                []struct {
			Name string
			Type any
		}
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &schema); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range schema.Fields {
		names = append(names, f.Name)
	}
	// The order appendMessageAvro writes.
	want := []string{"topic", "qid", "offset", "key", "value", "tags", "timestamp_ms", "headers"}
	if schema.Type != "record" || schema.Name != "Message" || schema.Namespace != "mqgate" || !reflect.DeepEqual(names, want) {
		t.Errorf("schema %+v, want record mqgate.Message with fields %v", schema, want)
	}
}
