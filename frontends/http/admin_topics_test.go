package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/mqgate/mqgate/core/admin"
	"github.com/mqgate/mqgate/core/auth"
	"github.com/mqgate/mqgate/core/config"
	"github.com/mqgate/mqgate/internal/brokertest"
	"github.com/mqgate/mqgate/sdk"
)

// adminServer serves the admin topic routes over a real backend holding
// topic "orders": three messages on one qid, whose name it returns: a
// text value with a header, a JSON value and a binary one with a binary
// key. Principal "ops" may browse and read stats on orders; "reader" only
// read stats.
func adminServer(t *testing.T, b sdk.Backend) (http.Handler, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.EnsureTopics(ctx, []sdk.TopicSpec{{Name: "orders", Partitions: 2}}); err != nil {
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
acl:
  - {principal: ops, operations: [browse, read-stats], topics: [orders]}
  - {principal: reader, operations: [read-stats]}
`))
	if err != nil {
		t.Fatal(err)
	}
	gate, err := auth.New(context.Background(), cfg, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	svc := admin.New(admin.Options{Cluster: func(string) (string, sdk.Backend, error) { return "local", b, nil }})
	return newTestServer(t, Options{Gate: gate, Admin: svc, RequestTimeout: 10 * time.Second}, &fakeProducer{}, nil).Handler(), res[0].Qid
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
		h, qid := adminServer(t, b)
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
	})
}

func TestAdminTopicRoutesRefuseBadQueries(t *testing.T) {
	h, qid := adminServer(t, brokertest.Kinds[0].Start(t))
	q := url.QueryEscape(qid)
	for _, tc := range []struct{ target, msg string }{
		{"/v1/admin/topics/orders/messages", "qid: required"},
		{"/v1/admin/topics/orders/messages?qid=" + q + "&ofset=3", "ofset: unknown query parameter; known: format, qid, offset, limit"},
		{"/v1/admin/topics/orders/messages?qid=" + q + "&limit=0", "limit: must be 1 to 100; got 0"},
		{"/v1/admin/topics/orders/messages?qid=" + q + "&limit=101", "limit: must be 1 to 100; got 101"},
		{"/v1/admin/topics/orders/messages?qid=" + q + "&offset=x", `offset: must be an integer; got "x"`},
		{"/v1/admin/topics/orders/messages?qid=" + q + "&offset=-1", "offset: must be >= 0, got -1"},
		{"/v1/admin/topics/orders/messages?qid=" + q + "&offset=9", "offset: 9 is past the end"},
		{"/v1/admin/topics/orders/messages?qid=" + q + "&qid=" + q, "qid: given 2 times"},
		{"/v1/admin/topics/orders/messages?qid=" + q + "&format=xml", `format: must be text, hex or json; got "xml"`},
		{"/v1/admin/topics/orders/messages?qid=nine", `qid: topic orders has no qid "nine"`},
		{"/v1/admin/topics/orders/messages/" + q + "/x", `offset: must be an integer; got "x"`},
		{"/v1/admin/topics/orders?limit=3", "limit: unknown query parameter; known: format"},
	} {
		status, body := get(h, tc.target, "key-ops")
		checkError(t, status, body, 400, sdk.CodeIllegal, tc.msg)
	}
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
