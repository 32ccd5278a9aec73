package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mqgate/mqgate/core/admin"
	"github.com/mqgate/mqgate/core/auth"
	"github.com/mqgate/mqgate/core/config"
	"github.com/mqgate/mqgate/internal/brokertest"
	"github.com/mqgate/mqgate/sdk"
)

func TestAdminResetOffsets(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		h, qid, _ := adminServer(t, b)
		const route = "/v1/admin/groups/g/topics/orders/offsets"
		committedAt := func() int64 {
			t.Helper()
			offs, err := b.ListOffsets(context.Background(), []string{"orders"}, "g")
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range offs {
				if o.Qid == qid {
					return o.Committed
				}
			}
			t.Fatalf("no qid %s in %+v", qid, offs)
			return 0
		}

		status, body := post(h, route, `{"to": "latest", "dry_run": true}`, "key-admin")
		var r admin.Reset
		if status != 200 || json.Unmarshal(body, &r) != nil || !r.DryRun || r.To != "latest" || len(r.Qids) < 2 {
			t.Fatalf("dry run: %d %s", status, body)
		}
		if c := committedAt(); c != -1 {
			t.Fatalf("a dry run committed %d", c)
		}

		for _, tc := range []struct {
			body string
			want int64
		}{
			{`{"to": "latest"}`, 3},
			{`{"to": "earliest"}`, 0},
			{`{"to": "offsets", "offsets": {"` + qid + `": 2}}`, 2},
			{`{"to": "timestamp", "timestamp_ms": 0}`, 0},
		} {
			status, body := post(h, route, tc.body, "key-admin")
			if status != 200 || json.Unmarshal(body, &r) != nil || r.DryRun {
				t.Fatalf("%s: %d %s", tc.body, status, body)
			}
			if c := committedAt(); c != tc.want {
				t.Errorf("%s: committed %d, want %d (answer %s)", tc.body, c, tc.want, body)
			}
		}

		status, body = post(h, route, `{"to": "offsets", "offsets": {"`+qid+`": 7}}`, "key-admin")
		checkError(t, status, body, 400, sdk.CodeIllegal, "outside what it retains, 0 to 3")
		status, body = post(h, route, `{"to": "latest"}`, "key-ops")
		checkError(t, status, body, 403, sdk.CodeNotAllowed, "admin")
		status, body = post(h, "/v1/admin/groups/g/topics/nothing/offsets", `{"to": "latest"}`, "key-admin")
		checkError(t, status, body, 404, sdk.CodeTopicNotExist, "nothing")
		if c := committedAt(); c != 0 {
			t.Errorf("refused resets moved the group to %d", c)
		}
	})
}

func TestDecodeResetBody(t *testing.T) {
	for _, tc := range []struct {
		body string
		code sdk.Code
		msg  string
	}{
		{``, sdk.CodeIllegal, "request body is empty"},
		{`{}`, sdk.CodeIllegal, "to: required"},
		{`{"to": "now"}`, sdk.CodeIllegal, `to: must be earliest, latest, timestamp or offsets, got "now"`},
		{`{"to": 1}`, sdk.CodeIllegal, "to: must be a string"},
		{`{"to": "timestamp"}`, sdk.CodeIllegal, "timestamp_ms: required"},
		{`{"to": "latest", "timestamp_ms": 5}`, sdk.CodeIllegal, "timestamp_ms: only with to \"timestamp\""},
		{`{"to": "timestamp", "timestamp_ms": -5}`, sdk.CodeIllegal, "timestamp_ms: must be >= 0"},
		{`{"to": "offsets"}`, sdk.CodeIllegal, "offsets: required"},
		{`{"to": "offsets", "offsets": {}}`, sdk.CodeIllegal, "offsets: required"},
		{`{"to": "latest", "offsets": {"0": 1}}`, sdk.CodeIllegal, "offsets: only with to \"offsets\""},
		{`{"to": "offsets", "offsets": {"0": -1}}`, sdk.CodeIllegal, "offsets.0: must be >= 0"},
		{`{"to": "offsets", "offsets": {"": 1}}`, sdk.CodeIllegal, "the qid must not be empty"},
		{`{"to": "offsets", "offsets": {"0": 1, "0": 2}}`, sdk.CodeIllegal, "offsets.0: given twice"},
		{`{"to": "offsets", "offsets": [1]}`, sdk.CodeIllegal, "offsets: must be an object {qid: offset}"},
		{`{"to": "latest", "force": "yes"}`, sdk.CodeIllegal, "force: must be true or false"},
		{`{"to": "latest", "dry_run": 1}`, sdk.CodeIllegal, "dry_run: must be true or false"},
		{`{"to": "latest", "group": "x"}`, sdk.CodeIllegal, `unknown field "group"`},
		{`{"to": "latest"`, sdk.CodeIllegal, ""},
	} {
		_, err := decodeResetBody([]byte(tc.body))
		if sdk.CodeOf(err) != tc.code || err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v; want code %d naming %q", tc.body, err, tc.code, tc.msg)
		}
	}
	var many strings.Builder
	many.WriteString(`{"to": "offsets", "offsets": {`)
	for i := range maxResetOffsets + 1 {
		if i > 0 {
			many.WriteString(",")
		}
		fmt.Fprintf(&many, `"q%d": 1`, i)
	}
	many.WriteString("}}")
	if _, err := decodeResetBody([]byte(many.String())); sdk.CodeOf(err) != sdk.CodeTooLarge || !strings.Contains(err.Error(), "at most 10000 qids") {
		t.Errorf("%d qids: %v; want code 16", maxResetOffsets+1, err)
	}
	got, err := decodeResetBody([]byte(`{"to": "timestamp", "timestamp_ms": 1700000000000, "dry_run": true, "force": false}`))
	if err != nil || got.target.To != admin.ToTimestamp || got.target.Time.UnixMilli() != 1700000000000 || !got.dryRun || got.force {
		t.Errorf("decode = %+v, %v", got, err)
	}
}

func FuzzDecodeResetBody(f *testing.F) {
	for _, s := range []string{`{"to": "latest"}`, `{"to": "timestamp", "timestamp_ms": 1}`, `{"to": "offsets", "offsets": {"0": 3}}`, `{"force": true, "dry_run": false}`, `{"to": "offsets", "offsets": {"\u0000": 0}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := decodeResetBody(body)
		if err != nil {
			if c := sdk.CodeOf(err); c != sdk.CodeIllegal && c != sdk.CodeTooLarge {
				t.Fatalf("%q: error %v has code %d", body, err, c)
			}
			return
		}
		switch got.target.To {
		case admin.ToEarliest, admin.ToLatest, admin.ToTimestamp:
			if got.target.Offsets != nil {
				t.Fatalf("%q: accepted offsets with to %s", body, got.target.To)
			}
		case admin.ToOffsets:
			if len(got.target.Offsets) == 0 || len(got.target.Offsets) > maxResetOffsets {
				t.Fatalf("%q: accepted %d offsets", body, len(got.target.Offsets))
			}
			for q, o := range got.target.Offsets {
				if q == "" || o < 0 {
					t.Fatalf("%q: accepted qid %q offset %d", body, q, o)
				}
			}
		default:
			t.Fatalf("%q: accepted to %q", body, got.target.To)
		}
	})
}

// The console's files are served at /ui/ without credentials (they hold no
// data), and not at all when it is off.
func TestConsoleMount(t *testing.T) {
	files := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "page at "+r.URL.Path) })
	cfg, err := config.Parse("plugins.yaml", []byte(`version: 1
plugins: {kafka: {builtin: kafka}}
clusters: {local: {plugin: kafka}}
auth: {api_keys: [{principal: ops, sha256: "`+hexSHA256("key-ops")+`"}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	gate, err := auth.New(context.Background(), cfg, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	on := newTestServer(t, Options{Gate: gate, Console: files, RequestTimeout: time.Second}, &fakeProducer{}, nil).Handler()
	rec := httptest.NewRecorder()
	on.ServeHTTP(rec, httptest.NewRequest("GET", "/ui/app.js", nil))
	if rec.Code != 200 || rec.Body.String() != "page at /ui/app.js" {
		t.Fatalf("GET /ui/app.js: %d %s", rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	on.ServeHTTP(rec, httptest.NewRequest("GET", "/ui", nil))
	if rec.Code != http.StatusMovedPermanently || rec.Header().Get("Location") != "/ui/" {
		t.Errorf("GET /ui: %d %s; want a redirect to /ui/", rec.Code, rec.Header().Get("Location"))
	}
	off := newTestServer(t, Options{RequestTimeout: time.Second}, &fakeProducer{}, nil).Handler()
	rec = httptest.NewRecorder()
	off.ServeHTTP(rec, httptest.NewRequest("GET", "/ui/", nil))
	checkError(t, rec.Code, rec.Body.Bytes(), 404, sdk.CodeNotFound, "no such route")
}
