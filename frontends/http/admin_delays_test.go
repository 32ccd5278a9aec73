package httpapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mqgate/mqgate/core/admin"
	"github.com/mqgate/mqgate/core/delay"
	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/internal/brokertest"
	"github.com/mqgate/mqgate/sdk"
)

// delayServer serves the admin routes with a real delay service on b,
// holding one delayed message for orders, due in an hour, id "later".
func delayServer(t *testing.T, b sdk.Backend) (*delay.Service, *Server) {
	t.Helper()
	plan, err := delay.NewPlan(10, 2)
	if err != nil {
		t.Fatal(err)
	}
	p := produce.NewProducer(map[string]sdk.Backend{"local": b}, produce.Options{Logger: slog.New(slog.DiscardHandler)})
	d := delay.New(delay.Options{Cluster: "local", Backend: b, Producer: p, Route: func(string) (string, error) { return "local", nil },
		Plan: plan, Partitions: 1, Max: 24 * time.Hour, Logger: slog.New(slog.DiscardHandler)})
	d.Start()
	t.Cleanup(d.Close)
	for deadline := time.Now().Add(60 * time.Second); d.Ready() != nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the delay service never became ready")
		}
	}
	res, err := d.Add(context.Background(), []delay.Message{{Topic: "orders", ID: "later", DueAt: time.Now().Add(time.Hour),
		Msg: produce.Message{Key: []byte("k"), Value: []byte(`{"n": 1}`), Partition: sdk.PartitionHash}}})
	if err != nil || res[0].Err != nil {
		t.Fatalf("add: %v %+v", err, res)
	}
	svc := admin.New(admin.Options{Cluster: func(string) (string, sdk.Backend, error) { return "local", b, nil }})
	return d, newTestServer(t, Options{Delayer: d, Admin: svc, RequestTimeout: 10 * time.Second}, &fakeProducer{}, nil)
}

func TestAdminDelayRoutes(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		d, srv := delayServer(t, b)
		h := srv.Handler()
		status, body := get(h, "/v1/admin/delays", "")
		var tiers struct {
			Pending int64 `json:"pending"`
			Tiers   []struct {
				Topic   string `json:"topic"`
				TierMs  int64  `json:"tier_ms"`
				Pending int64  `json:"pending"`
			} `json:"tiers"`
		}
		if status != 200 || json.Unmarshal(body, &tiers) != nil || tiers.Pending != 1 || len(tiers.Tiers) != 18 || tiers.Tiers[0].TierMs != 1000 {
			t.Fatalf("tiers: %d %s; want 18 tiers from 1 s, 1 pending", status, body)
		}

		status, body = get(h, "/v1/admin/topics/orders/delayed?format=json", "")
		if status != 200 || !strings.Contains(string(body), `"id":"later"`) || !strings.Contains(string(body), `"cancelled":false`) ||
			!strings.Contains(string(body), `"value_json":{"n":1}`) || !strings.Contains(string(body), `"complete":true`) {
			t.Fatalf("pending: %d %s", status, body)
		}
		if err := d.Cancel(context.Background(), "orders", "later"); err != nil {
			t.Fatal(err)
		}
		status, body = get(h, "/v1/admin/topics/orders/delayed?id=later", "")
		if status != 200 || !strings.Contains(string(body), `"cancelled":true`) {
			t.Fatalf("pending after the cancel: %d %s; want it cancelled", status, body)
		}
		status, body = get(h, "/v1/admin/topics/other/delayed", "")
		if status != 200 || !strings.Contains(string(body), `"messages":[]`) {
			t.Fatalf("pending of a topic with none: %d %s", status, body)
		}
		for _, tc := range []struct{ target, msg string }{
			{"/v1/admin/topics/orders/delayed?limit=0", "limit: must be 1 to 100; got 0"},
			{"/v1/admin/topics/orders/delayed?limit=x", `limit: must be an integer; got "x"`},
			{"/v1/admin/topics/orders/delayed?ids=a", "ids: unknown query parameter; known: id, limit, format"},
			{"/v1/admin/topics/orders/delayed?id=", "id: must not be empty"},
			{"/v1/admin/topics/orders/delayed?id=a&id=b", "id: given 2 times"},
			{"/v1/admin/topics/orders/delayed?format=xml", "format: must be text, hex or json"},
			{"/v1/admin/topics/orders/delayed?id=" + url.QueryEscape(strings.Repeat("x", 300)), "id"},
			{"/v1/admin/delays?x=1", "takes no query parameters"},
		} {
			status, body := get(h, tc.target, "")
			checkError(t, status, body, 400, sdk.CodeIllegal, tc.msg)
		}
		status, body = get(h, "/v1/admin/topics/mqgate_delay_cancel/delayed", "")
		checkError(t, status, body, 403, sdk.CodeNotAllowed, "")
	})
}

func TestAdminDelayRoutesWithoutDelays(t *testing.T) {
	h := newTestServer(t, Options{Admin: admin.New(admin.Options{}), RequestTimeout: time.Second}, &fakeProducer{}, nil).Handler()
	status, body := get(h, "/v1/admin/delays", "")
	checkError(t, status, body, 400, sdk.CodeIllegal, "delay messages are not enabled")
	status, body = get(h, "/v1/admin/topics/orders/delayed", "")
	checkError(t, status, body, 400, sdk.CodeIllegal, "delay messages are not enabled")
}

func FuzzParsePendingQuery(f *testing.F) {
	for _, s := range []string{"id=a&limit=5&format=hex", "limit=101", "id=", "format=json&format=json", "%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		_, limit, format, err := parsePendingQuery(q)
		if err != nil {
			if sdk.CodeOf(err) != sdk.CodeIllegal {
				t.Fatalf("%q: error %v is not code 11", raw, err)
			}
			return
		}
		if limit < 0 || limit > delay.MaxPendingShown || (format != browseText && format != browseHex && format != browseJSON) {
			t.Fatalf("%q: accepted limit %d format %q", raw, limit, format)
		}
	})
}
