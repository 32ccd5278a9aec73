package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/mqgate/mqgate/core/auth"
	"github.com/mqgate/mqgate/core/config"
	"github.com/mqgate/mqgate/core/consume"
	"github.com/mqgate/mqgate/sdk"
)

// fakeSubscriptions keeps subscriptions in memory.
type fakeSubscriptions struct {
	mu   sync.Mutex
	subs map[string][]consume.Subscription
}

func (f *fakeSubscriptions) Topics(_ context.Context, group string) ([]consume.Subscription, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.subs[group], nil
}

func (f *fakeSubscriptions) Subscribe(_ context.Context, group, topic, by string) (consume.Subscription, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if topic == "full" {
		return consume.Subscription{}, false, sdk.Errorf(sdk.CodeRateLimited, "over subscriptions.max_topics_per_group")
	}
	for _, s := range f.subs[group] {
		if s.Topic == topic {
			return s, false, nil
		}
	}
	s := consume.Subscription{Group: group, Topic: topic, Source: consume.SourceAdmin, AddedBy: by}
	f.subs[group] = append(f.subs[group], s)
	return s, true, nil
}

func (f *fakeSubscriptions) Unsubscribe(_ context.Context, group, topic, _ string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, s := range f.subs[group] {
		if s.Topic == topic {
			f.subs[group] = append(f.subs[group][:i], f.subs[group][i+1:]...)
			return true, nil
		}
	}
	return false, nil
}

func hexSHA256(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// The subscription routes are the admin operation on the group named,
// audited with the principal; other operations do not open them.
func TestSubscriptionRoutes(t *testing.T) {
	cfg, err := config.Parse("plugins.yaml", []byte(`version: 1
plugins: {kafka: {builtin: kafka}}
clusters: {local: {plugin: kafka}}
auth:
  api_keys:
    - {principal: team-a, sha256: "`+hexSHA256("key-a")+`"}
    - {principal: reader, sha256: "`+hexSHA256("key-r")+`"}
acl:
  - {principal: team-a, operations: [admin], groups: ["a.*"]}
  - {principal: reader, operations: [consume, read-stats]}
`))
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	var logMu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		logMu.Lock()
		defer logMu.Unlock()
		return logs.Write(p)
	}), nil))
	gate, err := auth.New(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	subs := &fakeSubscriptions{subs: map[string][]consume.Subscription{}}
	h := newTestServer(t, Options{Gate: gate, Subscriptions: subs, Logger: log}, &fakeProducer{}, nil).Handler()
	call := func(method, target, key string) (int, []byte) {
		req := httptest.NewRequest(method, target, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.Bytes()
	}
	const base = "/v1/admin/groups/a.pay/subscriptions"
	status, body := call("PUT", base+"/orders", "key-a")
	checkJSONStatus(t, status, body, http.StatusCreated, `{"subscription": {"group": "a.pay", "topic": "orders", "source": "admin", "added_by": "team-a"}, "created": true}`)
	status, body = call("PUT", base+"/orders", "key-a")
	checkJSONStatus(t, status, body, http.StatusOK, `{"subscription": {"group": "a.pay", "topic": "orders", "source": "admin", "added_by": "team-a"}, "created": false}`)
	status, body = call("GET", base, "key-a")
	checkJSONStatus(t, status, body, http.StatusOK, `{"group": "a.pay", "subscriptions": [{"group": "a.pay", "topic": "orders", "source": "admin", "added_by": "team-a"}]}`)
	status, body = call("GET", "/v1/admin/groups/a.none/subscriptions", "key-a")
	checkJSONStatus(t, status, body, http.StatusOK, `{"group": "a.none", "subscriptions": []}`)

	status, body = call("PUT", "/v1/admin/groups/b.pay/subscriptions/orders", "key-a")
	checkError(t, status, body, 403, sdk.CodeNotAllowed, `admin on topic "orders" as group "b.pay"`)
	status, body = call("PUT", base+"/orders", "key-r")
	checkError(t, status, body, 403, sdk.CodeNotAllowed, "admin")
	status, body = call("GET", base, "nokey")
	checkError(t, status, body, 401, 18, "")
	status, body = call("PUT", base+"/full", "key-a")
	checkError(t, status, body, 429, sdk.CodeRateLimited, "subscriptions.max_topics_per_group")
	status, body = call("GET", "/v1/admin/groups/a.x%20y/subscriptions", "key-a")
	checkError(t, status, body, 400, sdk.CodeIllegal, "character ' '")

	status, body = call("DELETE", base+"/orders", "key-a")
	checkJSONStatus(t, status, body, http.StatusOK, `{"group": "a.pay", "topic": "orders", "removed": true}`)
	status, body = call("DELETE", base+"/orders", "key-a")
	checkJSONStatus(t, status, body, http.StatusOK, `{"group": "a.pay", "topic": "orders", "removed": false}`)

	logMu.Lock()
	defer logMu.Unlock()
	for _, want := range []string{`action="subscription added" principal=team-a`, `action="subscription removed" principal=team-a`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no audit line with %s in:\n%s", want, logs.String())
		}
	}
	if n := strings.Count(logs.String(), `action="subscription added"`); n != 1 {
		t.Errorf("%d audit lines for one subscription added; a PUT that changes nothing is not one", n)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func checkJSONStatus(t *testing.T, status int, body []byte, want int, wantBody string) {
	t.Helper()
	if status != want {
		t.Fatalf("status %d, body %s; want %d", status, body, want)
	}
	checkJSON(t, body, wantBody)
}
