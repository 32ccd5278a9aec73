package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqgate/mqgate/core/admin"
	"github.com/mqgate/mqgate/internal/brokertest"
	"github.com/mqgate/mqgate/sdk"
)

// The lists show what the principal may read the stats of; deleting a
// group is admin on it.
func TestAdminLists(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		h, qid, _ := adminServer(t, b)
		if err := b.Commit(context.Background(), "g", []sdk.Offset{{Topic: "orders", Qid: qid, Offset: 1}}); err != nil {
			t.Fatal(err)
		}
		topicsOf := func(key string) []string {
			t.Helper()
			status, body := get(h, "/v1/admin/topics", key)
			var out struct{ Topics []admin.TopicEntry }
			if status != 200 || json.Unmarshal(body, &out) != nil {
				t.Fatalf("topics as %s: %d %s", key, status, body)
			}
			var names []string
			for _, e := range out.Topics {
				names = append(names, e.Name)
			}
			return names
		}
		if got := topicsOf("key-r"); !slices.Equal(got, []string{"g-dlq", "orders"}) {
			t.Errorf("topics a reader of every stat sees: %v, want g-dlq and orders", got)
		}
		if got := topicsOf("key-ops"); !slices.Equal(got, []string{"orders"}) {
			t.Errorf("topics ops sees: %v, want only orders (its read-stats rule)", got)
		}
		status, body := get(h, "/v1/admin/groups?cluster=local", "key-r")
		var groups struct{ Groups []admin.GroupEntry }
		if status != 200 || json.Unmarshal(body, &groups) != nil || !slices.ContainsFunc(groups.Groups, func(g admin.GroupEntry) bool { return g.Name == "g" && g.Cluster == "local" }) {
			t.Fatalf("groups: %d %s; want g on local", status, body)
		}

		status, body = deleteAs(h, "/v1/admin/groups/g", "key-r")
		checkError(t, status, body, 403, sdk.CodeNotAllowed, "admin")
		// ops may administer group g on topic g-dlq only, not delete it.
		status, body = deleteAs(h, "/v1/admin/groups/g", "key-ops")
		checkError(t, status, body, 403, sdk.CodeNotAllowed, "admin")
		status, body = deleteAs(h, "/v1/admin/groups/g", "key-admin")
		switch status {
		case 200: // Kafka
			status, body = deleteAs(h, "/v1/admin/groups/g", "key-admin")
			checkError(t, status, body, 404, sdk.CodeNotFound, "no cluster has it")
		default: // RocketMQ: the plugin does not delete groups
			checkError(t, status, body, 400, sdk.CodeIllegal, "does not delete groups")
		}

		for _, tc := range []struct{ target, msg string }{
			{"/v1/admin/topics?cluster=nowhere", `cluster: no cluster "nowhere"`},
			{"/v1/admin/topics?cluster=", "cluster: must not be empty"},
			{"/v1/admin/topics?all=yes", `all: must be true or false; got "yes"`},
			{"/v1/admin/groups?clusters=a", "clusters: unknown query parameter; known: cluster, all"},
			{"/v1/admin/groups?all=true&all=false", "all: given 2 times"},
		} {
			status, body := get(h, tc.target, "key-r")
			checkError(t, status, body, 400, sdk.CodeIllegal, tc.msg)
		}
	})
}

func FuzzParseListQuery(f *testing.F) {
	for _, s := range []string{"cluster=local&all=true", "all=1", "cluster=", "%zz", "all=false&all=true"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		cluster, _, err := parseListQuery(q)
		if err != nil {
			if sdk.CodeOf(err) != sdk.CodeIllegal {
				t.Fatalf("%q: error %v is not code 11", raw, err)
			}
			return
		}
		if q.Has("cluster") && cluster == "" {
			t.Fatalf("%q: accepted an empty cluster", raw)
		}
	})
}

// deleteAs sends DELETE target as the principal of key.
func deleteAs(h http.Handler, target, key string) (int, []byte) {
	req := httptest.NewRequest("DELETE", target, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

func TestAdminConfig(t *testing.T) {
	shown := func() (string, any, []string, error) {
		return "/etc/mqgate/plugins.yaml", map[string]any{"auth": map[string]any{"api_keys": []any{map[string]any{"principal": "ops", "sha256": "<redacted>"}}}},
			[]string{"auth.api_keys[0].sha256"}, nil
	}
	h := newTestServer(t, Options{Config: shown, RequestTimeout: time.Second}, &fakeProducer{}, nil).Handler()
	status, body := get(h, "/v1/admin/config", "")
	checkJSONStatus(t, status, body, 200, `{"file": "/etc/mqgate/plugins.yaml", "config": {"auth": {"api_keys": [{"principal": "ops", "sha256": "<redacted>"}]}},
		"redacted": ["auth.api_keys[0].sha256"]}`)
	status, body = get(h, "/v1/admin/config?x=1", "")
	checkError(t, status, body, 400, sdk.CodeIllegal, "takes no query parameters")
	off := newTestServer(t, Options{RequestTimeout: time.Second}, &fakeProducer{}, nil).Handler()
	status, body = get(off, "/v1/admin/config", "")
	checkError(t, status, body, 400, sdk.CodeIllegal, "does not show its config")
}

// A browser's request made for a page of another site is refused before
// anything else: a page elsewhere cannot use the browser's certificate or
// the console's key.
func TestCrossSiteRequestsRefused(t *testing.T) {
	h := newTestServer(t, Options{RequestTimeout: time.Second}, &fakeProducer{}, nil).Handler()
	for _, site := range []string{"cross-site", "same-site"} {
		req := httptest.NewRequest("POST", "/v1/topics/orders/messages", strings.NewReader(`{"value":"x"}`))
		req.Header.Set("Sec-Fetch-Site", site)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		checkError(t, rec.Code, rec.Body.Bytes(), 403, sdk.CodeNotAllowed, "another site (Sec-Fetch-Site: "+site+")")
	}
	for _, site := range []string{"same-origin", "none", ""} {
		req := httptest.NewRequest("GET", "/v1/plugins", nil)
		if site != "" {
			req.Header.Set("Sec-Fetch-Site", site)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Errorf("Sec-Fetch-Site %q: %d %s", site, rec.Code, rec.Body)
		}
	}
}

func TestAdminLagHistory(t *testing.T) {
	lh := admin.NewLagHistory(admin.LagHistoryOptions{
		Groups: func() []string { return []string{"billing"} },
		Lag:    func(context.Context, string) (int64, error) { return 42, nil },
	})
	lh.Sample(context.Background(), time.UnixMilli(1767225600000))
	h := newTestServer(t, Options{LagHistory: lh, RequestTimeout: time.Second}, &fakeProducer{}, nil).Handler()
	status, body := get(h, "/v1/admin/lag", "")
	checkJSONStatus(t, status, body, 200, `{"every_ms": 60000, "groups": {"billing": [{"at_ms": 1767225600000, "lag": 42}]}}`)
	status, body = get(h, "/v1/admin/lag?group=x", "")
	checkError(t, status, body, 400, sdk.CodeIllegal, "takes no query parameters")
}
