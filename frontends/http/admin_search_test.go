package httpapi

import (
	"net/url"
	"strings"
	"testing"

	"github.com/mqgate/mqgate/core/admin"
	"github.com/mqgate/mqgate/internal/brokertest"
	"github.com/mqgate/mqgate/sdk"
)

func TestAdminSearch(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		h, qid, _ := adminServer(t, b)
		status, body := get(h, "/v1/admin/topics/orders/search?key=k1&format=json", "key-ops")
		if status != 200 || !strings.Contains(string(body), `"value_json":{"amount":42,"ok":true}`) || !strings.Contains(string(body), `"complete":true`) ||
			strings.Count(string(body), `"offset":`) != 1 || !strings.Contains(string(body), `"qid":"`+qid+`"`) {
			t.Fatalf("search by key: %d %s", status, body)
		}
		status, body = get(h, "/v1/admin/topics/orders/search?header=trace&header_value=abc", "key-ops")
		if status != 200 || !strings.Contains(string(body), `"value":"hello"`) || strings.Count(string(body), `"offset":`) != 1 {
			t.Fatalf("search by header: %d %s", status, body)
		}
		status, body = get(h, "/v1/admin/topics/orders/search?value_contains="+url.QueryEscape("amount"), "key-ops")
		if status != 200 || strings.Count(string(body), `"offset":`) != 1 {
			t.Fatalf("search in values: %d %s", status, body)
		}
		status, body = get(h, "/v1/admin/topics/orders/search?key=k1", "key-r")
		checkError(t, status, body, 403, sdk.CodeNotAllowed, "browse")
		for _, tc := range []struct{ target, msg string }{
			{"/v1/admin/topics/orders/search", "give what to search for"},
			{"/v1/admin/topics/orders/search?keys=a", "keys: unknown query parameter; known: key, header"},
			{"/v1/admin/topics/orders/search?key=a&key=b", "key: given 2 times"},
			{"/v1/admin/topics/orders/search?header=", "header: must name a header"},
			{"/v1/admin/topics/orders/search?header_value=x", "header_value: only with header"},
			{"/v1/admin/topics/orders/search?value_contains=", "value_contains: must not be empty"},
			{"/v1/admin/topics/orders/search?key=a&scan=0", "scan: must be 1 to 100000 messages; got 0"},
			{"/v1/admin/topics/orders/search?key=a&scan=100001", "scan: must be 1 to 100000"},
			{"/v1/admin/topics/orders/search?key=a&limit=101", "limit: must be 1 to 100"},
			{"/v1/admin/topics/orders/search?key=a&timestamp_ms=-1", "timestamp_ms: must be >= 0"},
			{"/v1/admin/topics/orders/search?key=a&format=xml", "format: must be text, hex or json"},
		} {
			status, body := get(h, tc.target, "key-ops")
			checkError(t, status, body, 400, sdk.CodeIllegal, tc.msg)
		}
	})
}

func FuzzParseSearchQuery(f *testing.F) {
	for _, s := range []string{"key=a&scan=5&limit=3&format=hex", "header=h&header_value=v", "value_contains=x&timestamp_ms=5", "scan=1e9", "%zz", "key="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		sq, format, err := parseSearchQuery(q)
		if err != nil {
			if sdk.CodeOf(err) != sdk.CodeIllegal {
				t.Fatalf("%q: error %v is not code 11", raw, err)
			}
			return
		}
		if sq.Scan < 0 || sq.Scan > admin.MaxSearchScan || sq.Limit < 0 || sq.Limit > admin.MaxBrowse ||
			(sq.Key == nil && sq.HeaderKey == "" && sq.ValueContains == nil) ||
			(format != browseText && format != browseHex && format != browseJSON) {
			t.Fatalf("%q: accepted %+v %q", raw, sq, format)
		}
	})
}
