package consume_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mqgate/mqgate/core/consume"
	"github.com/mqgate/mqgate/internal/brokertest"
	"github.com/mqgate/mqgate/sdk"
)

// limitedService is e.service with at most max sessions.
func (e *env) limitedService(set consume.Settings, max int) *consume.Service {
	svc := consume.New(consume.Options{
		Backends: map[string]sdk.Backend{"local": e.b}, Route: func(string) (string, error) { return "local", nil },
		DefaultCluster: "local", Producer: e.p, Defaults: set, Logger: slog.New(slog.DiscardHandler),
		Now: e.now, Registerer: e.reg, MaxSessions: max,
	})
	e.t.Cleanup(svc.Close)
	return svc
}

// A pull that would open a session past consume.max_sessions is refused
// with code 15 naming the limit and the key; sessions already open go on,
// the gateway's own readers are not refused, and once sessions idle out
// the refused pull passes.
func TestSessionLimit(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		set := fast()
		set.SessionIdle = time.Minute
		clock := newHeldClock()
		e := newEnvAt(t, b, set, clock.Now)
		e.produce("capped", 1, 3, "m")
		svc := e.limitedService(set, 2)
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
