package httpapi

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/mqgate/mqgate/core/auth/acl"
	"github.com/mqgate/mqgate/core/quota"
	"github.com/mqgate/mqgate/sdk"
)

// quotaServer is a server whose one principal (anonymous: no auth) may
// produce 1 message a second in bursts of 2, on a clock that stands
// still: a spent bucket stays spent.
func quotaServer(t *testing.T) (*Server, *fakeProducer, *fakeDelayer) {
	t.Helper()
	at := time.Unix(1000, 0)
	ledger := quota.New(quota.Options{
		Rules: []quota.Rule{{Principal: acl.MustPattern("anonymous"), MessagesPerSecond: 1, Burst: 2, Source: "quotas[0]"}},
		Now:   func() time.Time { return at },
	})
	p, dl := &fakeProducer{}, &fakeDelayer{}
	return newTestServer(t, Options{Quotas: ledger, Delayer: dl}, p, nil), p, dl
}

// Every produce route counts its messages against the principal's quota:
// past it, 429 with code 15, a Retry-After in whole seconds and a message
// naming the principal and the key, and nothing is produced. A request
// larger than the burst is 413, code 16, with no Retry-After: waiting
// cannot help it.
func TestProduceRoutesCountAgainstQuotas(t *testing.T) {
	for _, tc := range []struct {
		name, method, target, body string
	}{
		{"produce", "POST", "/v1/topics/orders/messages", `{"value": "v"}`},
		{"produce async", "POST", "/v1/topics/orders/messages?mode=async", `{"value": "v"}`},
		{"mqproxy send", "POST", "/v1/kafka/send", `{"topic": "orders", "payload": "p"}`},
		{"mqproxy delayed send", "POST", "/v1/kafka/send", `{"topic": "orders", "payload": "p", "headers": {"x-delay": "5"}}`},
		{"delayed", "POST", "/v1/topics/orders/delayed", `{"value": "v", "delay_ms": 1000}`},
		{"cancel", "DELETE", "/v1/topics/orders/delayed/id-1", ``},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, p, dl := quotaServer(t)
			for i := range 2 {
				if status, _, body := do(t, s.Handler(), tc.method, tc.target, tc.body); status != 200 && status != 202 {
					t.Fatalf("request %d within the burst: %d %s", i+1, status, body)
				}
			}
			calls := len(p.Calls()) + len(dl.adds) + len(dl.cancels)
			status, header, body := do(t, s.Handler(), tc.method, tc.target, tc.body)
			// mqproxy's reply adds code and msg around the error body.
			var e errorBody
			const want = `principal "anonymous" is over its quota of 1 messages/s (quotas[0].messages_per_second); try again in 1s`
			if err := json.Unmarshal(body, &e); err != nil || status != 429 || e.Error.Code != sdk.CodeRateLimited || e.Error.Message != want {
				t.Errorf("%d %s; want 429, code 15, %q", status, body, want)
			}
			if got := header.Get("Retry-After"); got != "1" {
				t.Errorf("Retry-After %q; want 1", got)
			}
			if n := len(p.Calls()) + len(dl.adds) + len(dl.cancels); n != calls {
				t.Errorf("the refused request reached the producer or delayer")
			}
		})
	}
	t.Run("larger than the burst", func(t *testing.T) {
		s, p, _ := quotaServer(t)
		status, header, body := do(t, s.Handler(), "POST", "/v1/topics/orders/messages", `{"messages": [{"value": "a"}, {"value": "b"}, {"value": "c"}]}`)
		checkError(t, status, body, 413, sdk.CodeTooLarge, "3 messages exceed the burst of 2 of principal \"anonymous\" (quotas[0].burst)")
		if got := header.Get("Retry-After"); got != "" || len(p.Calls()) != 0 {
			t.Errorf("Retry-After %q, %d producer calls; want none of either", got, len(p.Calls()))
		}
		// It took nothing: a batch of the burst still passes.
		if status, _, body := do(t, s.Handler(), "POST", "/v1/topics/orders/messages", `{"messages": [{"value": "a"}, {"value": "b"}]}`); status != 200 {
			t.Fatalf("a batch of the burst after: %d %s", status, body)
		}
	})
	t.Run("mqproxy's reply carries the code", func(t *testing.T) {
		s, _, _ := quotaServer(t)
		for range 2 {
			do(t, s.Handler(), "POST", "/v1/kafka/send", `{"topic": "orders", "payload": "p"}`)
		}
		_, _, body := do(t, s.Handler(), "POST", "/v1/kafka/send", `{"topic": "orders", "payload": "p"}`)
		var r kafkaSendReply
		if err := json.Unmarshal(body, &r); err != nil || r.Code != sdk.CodeRateLimited || r.Error == nil || r.Error.Code != sdk.CodeRateLimited {
			t.Errorf("reply %s; want code 15 in code and in error", body)
		}
	})
}
