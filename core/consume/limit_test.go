package consume_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mqgate/mqgate/core/auth"
	"github.com/mqgate/mqgate/core/auth/acl"
	"github.com/mqgate/mqgate/core/consume"
	"github.com/mqgate/mqgate/core/quota"
	"github.com/mqgate/mqgate/internal/brokertest"
	"github.com/mqgate/mqgate/sdk"
)

// limitedService is e.service with at most max sessions (0: no bound),
// and those of each principal counted by quota (nil: none).
func (e *env) limitedService(set consume.Settings, max int, quota consume.SessionQuota) *consume.Service {
	svc := consume.New(consume.Options{
		Backends: map[string]sdk.Backend{"local": e.b}, Route: func(string) (string, error) { return "local", nil },
		DefaultCluster: "local", Producer: e.p, Defaults: set, Logger: slog.New(slog.DiscardHandler),
		Now: e.now, Registerer: e.reg, MaxSessions: max, Quota: quota,
	})
	e.t.Cleanup(svc.Close)
	return svc
}

// idlingEnv is an env whose sessions idle out after a minute of a clock
// held still until the test moves it, with three messages on topic.
func idlingEnv(t *testing.T, b sdk.Backend, topic string) (*env, consume.Settings, *heldClock) {
	set := fast()
	set.SessionIdle = time.Minute
	clock := newHeldClock()
	e := newEnvAt(t, b, set, clock.Now)
	e.produce(topic, 1, 3, "m")
	return e, set, clock
}

// A pull that would open a session past consume.max_sessions is refused
// with code 15 naming the limit and the key; sessions already open go on,
// the gateway's own readers are not refused, and once sessions idle out
// the refused pull passes.
func TestSessionLimit(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		e, set, clock := idlingEnv(t, b, "capped")
		svc := e.limitedService(set, 2, nil)
		ctx := context.Background()
		for _, g := range []string{"a", "b"} {
			if _, err := svc.Pull(ctx, g, "capped", 1, 0); err != nil {
				t.Fatalf("pull of group %s within the limit: %v", g, err)
			}
		}
		_, err := svc.Pull(ctx, "c", "capped", 1, 0)
		if sdk.CodeOf(err) != sdk.CodeRateLimited || !strings.Contains(err.Error(), "consume.max_sessions") || !strings.Contains(err.Error(), " 2 ") {
			t.Fatalf("a third group's pull with a limit of 2: %v (code %d); want code 15 naming consume.max_sessions and 2", err, sdk.CodeOf(err))
		}
		if n := e.metric("mqgate_consume_sessions_refused_total"); n != 1 {
			t.Errorf("mqgate_consume_sessions_refused_total = %v; want 1", n)
		}
		if _, err := svc.Pull(ctx, "a", "capped", 1, 0); err != nil {
			t.Fatalf("pull of a group whose session is open, at the limit: %v", err)
		}
		r, err := svc.OpenReader("pushed", "capped", consume.ReaderOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if _, err := r.Pull(ctx, 1, 0); err != nil {
			t.Fatalf("the gateway's own reader at the limit: %v", err)
		}
		e.waitMetric("mqgate_consume_sessions", 3)

		clock.Add(set.SessionIdle + time.Second) // a and b idle out; the reader's session stays
		e.waitMetric("mqgate_consume_sessions", 1)
		if _, err := svc.Pull(ctx, "c", "capped", 1, 0); err != nil {
			t.Fatalf("the refused pull once sessions closed: %v", err)
		}
	})
}

// as is a client's call context of principal name.
func as(name string) context.Context {
	return auth.WithPrincipal(context.Background(), auth.Principal{Name: name})
}

// A principal opens at most its quota's max_sessions, by pull or by
// batch fetch, counted against the one that opened each session: a pull
// of a session another principal opened is not counted, and a session
// that idles out gives its place back.
func TestSessionQuota(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		e, set, clock := idlingEnv(t, b, "quoted")
		ledger := quota.New(quota.Options{Rules: []quota.Rule{{Principal: acl.MustPattern("*"), MaxSessions: 1, Source: "quotas[0]"}}})
		svc := e.limitedService(set, 0, ledger)
		alice, bob := as("alice"), as("bob")
		if _, err := svc.Pull(alice, "a", "quoted", 1, 0); err != nil {
			t.Fatalf("alice's first session: %v", err)
		}
		refused := func(what string, err error) {
			t.Helper()
			if sdk.CodeOf(err) != sdk.CodeRateLimited || !strings.Contains(err.Error(), `principal "alice"`) || !strings.Contains(err.Error(), "quotas[0].max_sessions") {
				t.Fatalf("%s: %v (code %d); want code 15 naming alice and quotas[0].max_sessions", what, err, sdk.CodeOf(err))
			}
		}
		_, err := svc.Pull(alice, "b", "quoted", 1, 0)
		refused("alice's second session by pull", err)
		_, _, err = svc.FetchNew(alice, "b", "quoted", 1, nil)
		refused("alice's second session by batch fetch", err)
		if _, err := svc.Pull(bob, "b", "quoted", 1, 0); err != nil {
			t.Fatalf("bob's first session: %v", err)
		}
		if _, err := svc.Pull(alice, "b", "quoted", 1, 0); err != nil {
			t.Fatalf("alice pulling the session bob opened: %v", err)
		}
		if _, err := svc.Pull(alice, "a", "quoted", 1, 0); err != nil {
			t.Fatalf("alice pulling her own session at her limit: %v", err)
		}
		e.waitMetric("mqgate_consume_sessions", 2)

		clock.Add(set.SessionIdle + time.Second)
		e.waitMetric("mqgate_consume_sessions", 0)
		if _, _, err := svc.FetchNew(alice, "c", "quoted", 1, nil); err != nil {
			t.Fatalf("alice's batch fetch once her session closed: %v", err)
		}
	})
}

// A batch-id cursor lives with its session: info on a group and topic
// with no session opens none and keeps nothing, and once the session
// idles out, ids start from 1 again and an old ack is out of range.
func TestBatchCursorEndsWithItsSession(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		e, set, clock := idlingEnv(t, b, "cursor")
		ctx := context.Background()
		if info, err := e.svc.BatchInfo(ctx, "never", "cursor"); err != nil || info != (consume.BatchInfo{}) {
			t.Fatalf("info of a group never fetched: %+v, %v", info, err)
		}
		if n := e.metric("mqgate_consume_sessions"); n != 0 {
			t.Fatalf("info opened %v sessions; want none", n)
		}
		for range 2 {
			if _, _, err := e.svc.FetchNew(ctx, "dts", "cursor", 1, nil); err != nil {
				t.Fatal(err)
			}
		}
		if info, _ := e.svc.BatchInfo(ctx, "dts", "cursor"); info.SentBatchID != 2 {
			t.Fatalf("info after two fetches: %+v", info)
		}
		clock.Add(set.SessionIdle + time.Second)
		e.waitMetric("mqgate_consume_sessions", 0)
		if info, err := e.svc.BatchInfo(ctx, "dts", "cursor"); err != nil || info != (consume.BatchInfo{}) {
			t.Fatalf("info once the session closed: %+v, %v; want 0 and 0", info, err)
		}
		two := int64(2)
		if _, _, err := e.svc.FetchNew(ctx, "dts", "cursor", 1, &two); sdk.CodeOf(err) != sdk.CodeIllegal || !strings.Contains(err.Error(), "at most sent_batch_id 0") {
			t.Fatalf("acking a batch of the closed session: %v; want code 11 naming the range", err)
		}
		if id, _, err := e.svc.FetchNew(ctx, "dts", "cursor", 1, nil); err != nil || id != 1 {
			t.Fatalf("the first fetch of the new session: id %d, %v; want 1", id, err)
		}
	})
}
