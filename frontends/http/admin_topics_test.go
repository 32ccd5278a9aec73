package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mqgate/mqgate/core/admin"
	"github.com/mqgate/mqgate/core/auth"
	"github.com/mqgate/mqgate/core/config"
	"github.com/mqgate/mqgate/core/consume"
	"github.com/mqgate/mqgate/internal/brokertest"
	"github.com/mqgate/mqgate/sdk"
)

// adminServer serves the admin topic routes over a real backend holding
// topic "orders": three messages on one qid, whose name it returns: a
// text value with a header, a JSON value and a binary one with a binary
// key; and group g's dead-letter topic g-dlq one dead letter of orders.
// Principal "ops" may browse and read stats on orders, and browse and
// administer group g; "reader" only read stats. Redriven messages reach
// the returned producer.
func adminServer(t *testing.T, b sdk.Backend) (http.Handler, string, *fakeProducer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.EnsureTopics(ctx, []sdk.TopicSpec{{Name: "orders", Partitions: 2}, {Name: "g-dlq", Partitions: 1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Produce(ctx, []sdk.Record{{Topic: "g-dlq", Partition: 0, Value: []byte("spent"), Headers: []sdk.Header{
		{Key: "trace", Value: []byte("abc")}, {Key: consume.HeaderOriginTopic, Value: []byte("orders")}, {Key: consume.HeaderLastError, Value: []byte("boom")}}}}); err != nil {
		t.Fatal(err)
	}
	res, err := b.Produce(ctx, []sdk.Record{
		{Topic: "orders", Partition: 0, Key: []byte("k0"), Value: []byte("hello"), Headers: []sdk.Header{{Key: "trace", Value: []byte("abc")}}},
		{Topic: "orders", Partition: 0, Key: []byte("k1"), Value: []byte("{\"amount\": 42,\n \"ok\": true}")},
		{Topic: "orders", Partition: 0, Key: []byte{0xff}, Value: []byte{0x00, 0xfe}},
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("plugins.yaml", []byte(`version: 1
plugins: {kafka: {builtin: kafka}}
clusters: {local: {plugin: kafka}}
auth:
  api_keys:
    - {principal: ops, sha256: "`+hexSHA256("key-ops")+`"}
    - {principal: reader, sha256: "`+hexSHA256("key-r")+`"}
    - {principal: boss, sha256: "`+hexSHA256("key-admin")+`"}
acl:
  - {principal: boss, operations: [admin]}
  - {principal: ops, operations: [browse, read-stats, produce], topics: [orders]}
  - {principal: ops, operations: [browse, admin], topics: [g-dlq], groups: [g]}
  - {principal: reader, operations: [read-stats]}
`))
	if err != nil {
		t.Fatal(err)
	}
	gate, err := auth.New(context.Background(), cfg, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	svc := admin.New(admin.Options{Cluster: func(string) (string, sdk.Backend, error) { return "local", b, nil },
		Clusters: map[string]sdk.Backend{"local": b}})
	prod := &fakeProducer{}
	h := newTestServer(t, Options{Gate: gate, Admin: svc, Consumer: &fakeConsumer{}, RequestTimeout: 10 * time.Second}, prod, nil).Handler()
	return h, res[0].Qid, prod
}

// post sends body to target as the principal of key.
func post(h http.Handler, target, body, key string) (int, []byte) {
	req := httptest.NewRequest("POST", target, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

// get asks h for target as the principal of key.
func get(h http.Handler, target, key string) (int, []byte) {
	req := httptest.NewRequest("GET", target, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

func TestAdminTopicRoutes(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		h, qid, _ := adminServer(t, b)
		q := url.QueryEscape(qid)

		status, body := get(h, "/v1/admin/topics/orders", "key-r")
		var top admin.Topic
		if status != 200 || json.Unmarshal(body, &top) != nil || top.Name != "orders" || top.Cluster != "local" || top.Messages != 3 || len(top.Qids) < 2 {
			t.Fatalf("describe: %d %s", status, body)
		}

		status, body = get(h, "/v1/admin/topics/orders/messages?qid="+q+"&limit=2", "key-ops")
		checkJSONStatus(t, status, body, 200, `{"topic": "orders", "cluster": "local", "qid": "`+qid+`", "start": 0, "end": 3, "next_offset": 2, "messages": [
			{"key": "k0", "value": "hello", "headers": {"trace": "abc"}, "offset": 0, "qid": "`+qid+`", "timestamp_ms": `+timestampOf(t, body, 0)+`},
			{"key": "k1", "value": "{\"amount\": 42,\n \"ok\": true}", "offset": 1, "qid": "`+qid+`", "timestamp_ms": `+timestampOf(t, body, 1)+`}]}`)

		status, body = get(h, "/v1/admin/topics/orders/messages?qid="+q+"&offset=1&format=json", "key-ops")
		checkJSONStatus(t, status, body, 200, `{"topic": "orders", "cluster": "local", "qid": "`+qid+`", "start": 0, "end": 3, "next_offset": 3, "messages": [
			{"key": "k1", "value_json": {"amount": 42, "ok": true}, "offset": 1, "qid": "`+qid+`", "timestamp_ms": `+timestampOf(t, body, 0)+`},
			{"key_base64": "/w==", "value_base64": "AP4=", "offset": 2, "qid": "`+qid+`", "timestamp_ms": `+timestampOf(t, body, 1)+`}]}`)

		// From a time: before the first message, the first; after the
		// last, an empty page at the end.
		status, body = get(h, "/v1/admin/topics/orders/messages?qid="+q+"&timestamp_ms=0&limit=1", "key-ops")
		if status != 200 || !strings.Contains(string(body), `"next_offset":1,`) || !strings.Contains(string(body), `"offset":0,`) {
			t.Fatalf("browse from time 0: %d %s; want the first message", status, body)
		}
		future := strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10)
		status, body = get(h, "/v1/admin/topics/orders/messages?qid="+q+"&timestamp_ms="+future, "key-ops")
		if status != 200 || !strings.Contains(string(body), `"next_offset":3,"messages":[]`) {
			t.Fatalf("browse from an hour ahead: %d %s; want an empty page at 3", status, body)
		}

		status, body = get(h, "/v1/admin/topics/orders/messages/"+q+"/2?format=hex", "key-ops")
		var one map[string]any
		if status != 200 || json.Unmarshal(body, &one) != nil || one["key_hex"] != "ff" || one["value_hex"] != "00fe" || one["offset"] != 2.0 {
			t.Fatalf("show at 2 as hex: %d %s", status, body)
		}
		status, body = get(h, "/v1/admin/topics/orders/messages/"+q+"/3", "key-ops")
		checkError(t, status, body, 404, sdk.CodeNotFound, "not written yet")
		status, body = get(h, "/v1/admin/topics/nothing/messages?qid=0", "key-ops")
		checkError(t, status, body, 403, sdk.CodeNotAllowed, `browse on topic "nothing"`)
		status, body = get(h, "/v1/admin/topics/orders/messages?qid="+q, "key-r")
		checkError(t, status, body, 403, sdk.CodeNotAllowed, "browse")
		status, body = get(h, "/v1/admin/topics/orders", "nokey")
		checkError(t, status, body, 401, 18, "")
		// The other admin routes, each refused to a principal without
		// its operation.
		for _, tc := range []struct{ target, key, op string }{
			{"/v1/admin/topics/orders/delayed", "key-r", "browse"},
			{"/v1/admin/topics/orders/search?key=k0", "key-r", "browse"},
			{"/v1/admin/delays", "key-ops", "metrics"},
			{"/v1/admin/config", "key-ops", "admin"},
			{"/v1/admin/config", "key-r", "admin"},
		} {
			status, body := get(h, tc.target, tc.key)
			checkError(t, status, body, 403, sdk.CodeNotAllowed, tc.op)
		}
	})
}

func TestAdminTopicRoutesRefuseBadQueries(t *testing.T) {
	h, qid, _ := adminServer(t, brokertest.Kinds[0].Start(t))
	q := url.QueryEscape(qid)
	for _, tc := range []struct{ target, msg string }{
		{"/v1/admin/topics/orders/messages", "qid: required"},
		{"/v1/admin/topics/orders/messages?qid=" + q + "&ofset=3", "ofset: unknown query parameter; known: format, qid, offset, timestamp_ms, limit"},
		{"/v1/admin/topics/orders/messages?qid=" + q + "&limit=0", "limit: must be 1 to 100; got 0"},
		{"/v1/admin/topics/orders/messages?qid=" + q + "&limit=101", "limit: must be 1 to 100; got 101"},
		{"/v1/admin/topics/orders/messages?qid=" + q + "&offset=x", `offset: must be an integer; got "x"`},
		{"/v1/admin/topics/orders/messages?qid=" + q + "&offset=-1", "offset: must be >= 0, got -1"},
		{"/v1/admin/topics/orders/messages?qid=" + q + "&offset=9", "offset: 9 is past the end"},
		{"/v1/admin/topics/orders/messages?qid=" + q + "&qid=" + q, "qid: given 2 times"},
		{"/v1/admin/topics/orders/messages?qid=" + q + "&format=xml", `format: must be text, hex or json; got "xml"`},
		{"/v1/admin/topics/orders/messages?qid=nine", `qid: topic orders has no qid "nine"`},
		{"/v1/admin/topics/orders/messages?qid=" + q + "&offset=1&timestamp_ms=5", "timestamp_ms: give offset or timestamp_ms, not both"},
		{"/v1/admin/topics/orders/messages?qid=" + q + "&timestamp_ms=-5", "timestamp_ms: must be >= 0"},
		{"/v1/admin/topics/orders/messages?qid=" + q + "&timestamp_ms=yesterday", `timestamp_ms: must be an integer; got "yesterday"`},
		{"/v1/admin/topics/orders/messages/" + q + "/x", `offset: must be an integer; got "x"`},
		{"/v1/admin/topics/orders?limit=3", "limit: unknown query parameter; known: format"},
	} {
		status, body := get(h, tc.target, "key-ops")
		checkError(t, status, body, 400, sdk.CodeIllegal, tc.msg)
	}
}

// A group's dead letters are browsed like a topic and sent back to the
// topic each came from, without the headers dead-lettering added.
func TestAdminDeadLetterRoutes(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		h, _, prod := adminServer(t, b)
		status, body := get(h, "/v1/admin/groups/g/dead-letters", "key-ops")
		var top admin.Topic
		if status != 200 || json.Unmarshal(body, &top) != nil || top.Name != "g-dlq" || top.Messages != 1 {
			t.Fatalf("describe dead letters: %d %s", status, body)
		}
		qid := ""
		for _, q := range top.Qids {
			if q.End > q.Start {
				qid = q.Qid
			}
		}
		status, body = get(h, "/v1/admin/groups/g/dead-letters/messages?qid="+url.QueryEscape(qid), "key-ops")
		if status != 200 || !strings.Contains(string(body), `"mqgate-dlq-origin-topic":"orders"`) || !strings.Contains(string(body), `"mqgate-dlq-last-error":"boom"`) {
			t.Fatalf("browse dead letters: %d %s; want the origin and last error", status, body)
		}
		// Sending a dead letter back is producing to its topic: a principal
		// that may administer the group but not produce there is refused
		// for that dead letter.
		status, body = post(h, "/v1/admin/groups/g/dead-letters/redrive", `{"qid": "`+qid+`", "offsets": [0]}`, "key-admin")
		if status != 200 || !strings.Contains(string(body), `"redriven":0`) || !strings.Contains(string(body), `"code":13`) {
			t.Fatalf("redrive without produce on the origin: %d %s; want its result refused with code 13", status, body)
		}
		status, body = post(h, "/v1/admin/groups/g/dead-letters/redrive", `{"qid": "`+qid+`", "offsets": [0, 0]}`, "key-ops")
		checkError(t, status, body, 400, sdk.CodeIllegal, "offsets: an offset is named twice")
		status, body = post(h, "/v1/admin/groups/g/dead-letters/redrive", `{"qid": "`+qid+`", "offsets": [0, 5]}`, "key-ops")
		var out struct {
			Redriven int `json:"redriven"`
			Results  []struct {
				Offset int64  `json:"offset"`
				Topic  string `json:"topic"`
				Code   int    `json:"code"`
			} `json:"results"`
		}
		if status != 200 || json.Unmarshal(body, &out) != nil || out.Redriven != 1 || len(out.Results) != 2 ||
			out.Results[0].Topic != "orders" || out.Results[0].Code != 0 || out.Results[1].Code != int(sdk.CodeNotFound) {
			t.Fatalf("redrive: %d %s; want offset 0 sent back to orders and 5 not found", status, body)
		}
		calls := prod.Calls()
		if len(calls) != 1 || calls[0].topic != "orders" || string(calls[0].msgs[0].Value) != "spent" || len(calls[0].msgs[0].Headers) != 1 || calls[0].msgs[0].Headers[0].Key != "trace" {
			t.Fatalf("produced %+v; want spent to orders with only its trace header", calls)
		}

		// By a filter: the dead letters of orders whose error says boom.
		status, body = post(h, "/v1/admin/groups/g/dead-letters/redrive", `{"qid": "`+qid+`", "filter": {"origin_topic": "payments"}}`, "key-ops")
		if status != 200 || !strings.Contains(string(body), `"redriven":0`) || !strings.Contains(string(body), `"scanned":1,"next_offset":1,"end":1`) {
			t.Fatalf("redrive by a filter matching nothing: %d %s", status, body)
		}
		status, body = post(h, "/v1/admin/groups/g/dead-letters/redrive", `{"qid": "`+qid+`", "filter": {"origin_topic": "orders", "error_contains": "boom"}}`, "key-ops")
		if status != 200 || !strings.Contains(string(body), `"redriven":1`) || !strings.Contains(string(body), `"next_offset":1`) {
			t.Fatalf("redrive by a filter: %d %s", status, body)
		}
		status, body = post(h, "/v1/admin/groups/g/dead-letters/redrive", `{"qid": "`+qid+`", "filter": {}, "from_offset": 5}`, "key-ops")
		checkError(t, status, body, 400, sdk.CodeIllegal, "from_offset: 5 is past the end")
		status, body = post(h, "/v1/admin/groups/g/dead-letters/redrive", `{"qid": "`+qid+`", "offsets": [0]}`, "key-r")
		checkError(t, status, body, 403, sdk.CodeNotAllowed, "admin")
		status, body = get(h, "/v1/admin/groups/other/dead-letters", "key-ops")
		checkError(t, status, body, 403, sdk.CodeNotAllowed, "browse")
	})
}

func TestDecodeRedriveBody(t *testing.T) {
	for _, tc := range []struct {
		body string
		code sdk.Code
		msg  string
	}{
		{``, sdk.CodeIllegal, "request body is empty"},
		{`{"qid": "0"}`, sdk.CodeIllegal, "offsets: required"},
		{`{"offsets": [1]}`, sdk.CodeIllegal, "qid: required"},
		{`{"qid": "0", "offsets": [-1]}`, sdk.CodeIllegal, "offsets"},
		{`{"qid": "0", "offsets": [1], "all": true}`, sdk.CodeIllegal, "all"},
		{`{"qid": "0", "offsets": "1"}`, sdk.CodeIllegal, "offsets"},
		{`{"qid": "0", "offsets": [` + strings.Repeat("1,", admin.MaxRedrive) + `1]}`, sdk.CodeTooLarge, "at most 100 dead letters"},
		{`{"qid": "0", "offsets": [1]`, sdk.CodeIllegal, ""},
		{`{"qid": "0", "offsets": [1], "filter": {}}`, sdk.CodeIllegal, "give offsets or a filter, not both"},
		{`{"qid": "0", "offsets": [1], "from_offset": 3}`, sdk.CodeIllegal, "from_offset: only with a filter"},
		{`{"qid": "0", "filter": {"topic": "x"}}`, sdk.CodeIllegal, "topic"},
		{`{"qid": "0", "filter": {"origin_topic": 1}}`, sdk.CodeIllegal, "filter.origin_topic: must be a string"},
		{`{"qid": "0", "filter": {}, "from_offset": -1}`, sdk.CodeIllegal, "from_offset: must be >= 0"},
	} {
		_, err := decodeRedriveBody([]byte(tc.body))
		if sdk.CodeOf(err) != tc.code || err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v; want code %d naming %q", tc.body, err, tc.code, tc.msg)
		}
	}
	got, err := decodeRedriveBody([]byte(`{"qid": 3, "offsets": [4, 2]}`))
	if err != nil || got.qid != "3" || len(got.offsets) != 2 {
		t.Errorf("decode = %+v, %v", got, err)
	}
	got, err = decodeRedriveBody([]byte(`{"qid": "0", "filter": {"origin_topic": "orders", "error_contains": "boom"}, "from_offset": 7}`))
	if err != nil || got.filter == nil || got.filter.OriginTopic != "orders" || got.filter.ErrorContains != "boom" || got.from != 7 {
		t.Errorf("decode of a filter = %+v, %v", got, err)
	}
}

func FuzzDecodeRedriveBody(f *testing.F) {
	for _, s := range []string{`{"qid": "0", "offsets": [1, 2]}`, `{"qid": 7, "offsets": []}`, `{"offsets": [9223372036854775807]}`, `[]`, `{"qid": "\u0000"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := decodeRedriveBody(body)
		if err != nil {
			if c := sdk.CodeOf(err); c != sdk.CodeIllegal && c != sdk.CodeTooLarge {
				t.Fatalf("%q: error %v has code %d", body, err, c)
			}
			return
		}
		if got.qid == "" || (got.filter == nil && len(got.offsets) == 0) || (got.filter != nil && got.offsets != nil) || len(got.offsets) > admin.MaxRedrive || got.from < 0 {
			t.Fatalf("%q: accepted %+v", body, got)
		}
		for _, o := range got.offsets {
			if o < 0 {
				t.Fatalf("%q: accepted offset %d", body, o)
			}
		}
	})
}

// timestampOf reads the timestamp_ms of the i-th message of a browse
// answer, which the broker set.
func timestampOf(t *testing.T, body []byte, i int) string {
	t.Helper()
	var p struct {
		Messages []struct {
			TimestampMs json.Number `json:"timestamp_ms"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(body, &p); err != nil || len(p.Messages) <= i {
		t.Fatalf("answer %s: %v", body, err)
	}
	return p.Messages[i].TimestampMs.String()
}

func FuzzParseBrowseQuery(f *testing.F) {
	for _, s := range []string{"qid=0", "qid=0&offset=5&limit=100&format=hex", "qid=&offset=-1", "limit=1e3", "format=json&format=text", "%zz", "qid=0&offset=99999999999999999999"} {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, raw string, needQid bool) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		bq, err := parseBrowseQuery(q, needQid)
		if err != nil {
			if sdk.CodeOf(err) != sdk.CodeIllegal {
				t.Fatalf("%q: error %v is not code 11", raw, err)
			}
			return
		}
		if bq.limit < 0 || bq.limit > admin.MaxBrowse || (needQid && bq.qid == "") {
			t.Fatalf("%q: accepted %+v", raw, bq)
		}
		switch bq.format {
		case browseText, browseHex, browseJSON:
		default:
			t.Fatalf("%q: format %q accepted", raw, bq.format)
		}
	})
}

func TestAdminCreateTopic(t *testing.T) {
	h, _, _ := adminServer(t, brokertest.Kinds[0].Start(t))
	status, body := post(h, "/v1/admin/topics/orders", `{"partitions": 4}`, "key-admin")
	var out struct {
		Created bool `json:"created"`
		Qids    []any
	}
	if status != 200 || json.Unmarshal(body, &out) != nil || out.Created || len(out.Qids) != 2 {
		t.Fatalf("create of an existing topic: %d %s; want 200, as it was", status, body)
	}
	status, body = post(h, "/v1/admin/topics/fresh", `{"partitions": 3, "configs": {"retention.ms": "3600000"}}`, "key-admin")
	if status != 201 || json.Unmarshal(body, &out) != nil || !out.Created || len(out.Qids) != 3 {
		t.Fatalf("create: %d %s; want 201 and 3 qids", status, body)
	}
	status, body = post(h, "/v1/admin/topics/other", ``, "key-ops")
	checkError(t, status, body, 403, sdk.CodeNotAllowed, "admin")
	for _, tc := range []struct {
		body string
		code sdk.Code
		msg  string
	}{
		{`{"partitions": 0}`, sdk.CodeIllegal, "partitions"},
		{`{"partitions": 1001}`, sdk.CodeIllegal, "partitions: must be 1 to 1000"},
		{`{"partitions": "3"}`, sdk.CodeIllegal, "partitions"},
		{`{"configs": {"a": 1}}`, sdk.CodeIllegal, "configs.a: must be a string"},
		{`{"configs": {"a": "1", "a": "2"}}`, sdk.CodeIllegal, "configs.a: given twice"},
		{`{"configs": []}`, sdk.CodeIllegal, "configs: must be an object of strings"},
		{`{"replicas": 3}`, sdk.CodeIllegal, `unknown field "replicas"`},
	} {
		status, body := post(h, "/v1/admin/topics/bad", tc.body, "key-admin")
		var e errorBody
		if json.Unmarshal(body, &e) != nil || e.Error.Code != tc.code || !strings.Contains(e.Error.Message, tc.msg) {
			t.Errorf("%s: %d %s; want code %d naming %q", tc.body, status, body, tc.code, tc.msg)
		}
	}
}

func FuzzDecodeCreateTopicBody(f *testing.F) {
	for _, s := range []string{`{"partitions": 3, "configs": {"retention.ms": "1"}}`, `{}`, ``, `{"configs": {"\u0000": "x"}}`, `{"partitions": 1e3}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := decodeCreateTopicBody(body)
		if err != nil {
			if c := sdk.CodeOf(err); c != sdk.CodeIllegal && c != sdk.CodeTooLarge {
				t.Fatalf("%q: error %v has code %d", body, err, c)
			}
			return
		}
		if got.partitions < 0 || got.partitions > admin.MaxPartitions || len(got.configs) > admin.MaxTopicConfigs {
			t.Fatalf("%q: accepted %+v", body, got)
		}
	})
}

func TestAdminDiscardDeadLetters(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		h, _, _ := adminServer(t, b)
		status, body := get(h, "/v1/admin/groups/g/dead-letters", "key-ops")
		var top admin.Topic
		if status != 200 || json.Unmarshal(body, &top) != nil {
			t.Fatalf("describe dead letters: %d %s", status, body)
		}
		qid := ""
		for _, q := range top.Qids {
			if q.End > q.Start {
				qid = q.Qid
			}
		}
		status, body = post(h, "/v1/admin/groups/g/dead-letters/discard", `{"qid": "`+qid+`", "before_offset": 1}`, "key-r")
		checkError(t, status, body, 403, sdk.CodeNotAllowed, "admin")
		status, body = post(h, "/v1/admin/groups/g/dead-letters/discard", `{"qid": "`+qid+`", "before_offset": 2}`, "key-ops")
		checkError(t, status, body, 400, sdk.CodeIllegal, "before_offset: 2 is outside what topic g-dlq")
		status, body = post(h, "/v1/admin/groups/g/dead-letters/discard", `{"qid": "`+qid+`", "before_offset": 1}`, "key-ops")
		switch status {
		case 200: // Kafka
			if !strings.Contains(string(body), `"start":1,"end":1`) || !strings.Contains(string(body), `"discarded":1`) {
				t.Fatalf("discard: %s; want the qid empty, 1 discarded", body)
			}
		default: // RocketMQ
			checkError(t, status, body, 400, sdk.CodeIllegal, "RocketMQ deletes messages only as its commit log expires")
		}
	})
}

func TestDecodeDiscardBody(t *testing.T) {
	for _, tc := range []struct{ body, msg string }{
		{``, "request body is empty"},
		{`{"qid": "0"}`, "before_offset: required"},
		{`{"before_offset": 3}`, "qid: required"},
		{`{"qid": "0", "before_offset": -1}`, "before_offset: must be >= 0"},
		{`{"qid": "0", "before_offset": "3"}`, "before_offset"},
		{`{"qid": "0", "before_offset": 3, "all": true}`, `unknown field "all"`},
	} {
		_, err := decodeDiscardBody([]byte(tc.body))
		if sdk.CodeOf(err) != sdk.CodeIllegal || !strings.Contains(fmt.Sprint(err), tc.msg) {
			t.Errorf("%s: %v; want code 11 naming %q", tc.body, err, tc.msg)
		}
	}
	if got, err := decodeDiscardBody([]byte(`{"qid": 2, "before_offset": 0}`)); err != nil || got.qid != "2" || got.before != 0 {
		t.Errorf("decode = %+v, %v", got, err)
	}
}

func FuzzDecodeDiscardBody(f *testing.F) {
	for _, s := range []string{`{"qid": "0", "before_offset": 3}`, `{"qid": 1}`, `[]`, `{"before_offset": 1e3}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := decodeDiscardBody(body)
		if err != nil {
			if sdk.CodeOf(err) != sdk.CodeIllegal && sdk.CodeOf(err) != sdk.CodeTooLarge {
				t.Fatalf("%q: error %v has code %d", body, err, sdk.CodeOf(err))
			}
			return
		}
		if got.qid == "" || got.before < 0 {
			t.Fatalf("%q: accepted %+v", body, got)
		}
	})
}
