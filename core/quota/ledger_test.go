package quota

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mqgate/mqgate/core/auth"
	"github.com/mqgate/mqgate/core/auth/acl"
	"github.com/mqgate/mqgate/core/config"
	"github.com/mqgate/mqgate/sdk"
)

// clock is a Ledger's time, moved only by the test: what passes never
// depends on how fast the machine is.
type clock struct{ t time.Time }

func (c *clock) now() time.Time      { return c.t }
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }

// as is a request context of principal name.
func as(name string) context.Context {
	return auth.WithPrincipal(context.Background(), auth.Principal{Name: name})
}

// rule is r for the principals pattern p matches.
func rule(p string, r Rule) Rule {
	r.Principal = acl.MustPattern(p)
	return r
}

// newLedger is a ledger of rules, each with its Source, on clock c.
func newLedger(c *clock, rs ...Rule) *Ledger {
	for i := range rs {
		rs[i].Source = fmt.Sprintf("quotas[%d]", i)
	}
	return New(Options{Rules: rs, Now: c.now})
}

// wantRefusal checks err is a Refusal with code, naming every one of
// names, asking to wait retryAfter seconds (0: no Retry-After).
func wantRefusal(t *testing.T, what string, err error, code sdk.Code, retryAfter int, names ...string) {
	t.Helper()
	var r *Refusal
	if !errors.As(err, &r) {
		t.Fatalf("%s: %v; want a refusal", what, err)
	}
	if sdk.CodeOf(err) != code || r.RetryAfterSeconds() != retryAfter {
		t.Errorf("%s: code %d, retry after %ds (%v); want code %d, %ds", what, sdk.CodeOf(err), r.RetryAfterSeconds(), err, code, retryAfter)
	}
	for _, n := range names {
		if !strings.Contains(err.Error(), n) {
			t.Errorf("%s: %q does not name %q", what, err, n)
		}
	}
}

func produceN(t *testing.T, l *Ledger, ctx context.Context, n int) {
	t.Helper()
	for i := range n {
		if err := l.Produce(ctx, 1, 10); err != nil {
			t.Fatalf("message %d: %v; want it to pass", i+1, err)
		}
	}
}

// Every principal a pattern matches has its own buckets: team-a spending
// its burst leaves team-b's whole. Past the burst, the refusal is code 15
// with the wait until a token comes, and the clock bringing that token
// lets one more message pass.
func TestMessagesPerPrincipal(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	l := newLedger(c, rule("team-*", Rule{MessagesPerSecond: 1, Burst: 3}))
	a, b := as("team-a"), as("team-b")
	produceN(t, l, a, 3)
	wantRefusal(t, "team-a's 4th message", l.Produce(a, 1, 10), sdk.CodeRateLimited, 1,
		`principal "team-a"`, "quotas[0].messages_per_second", "1 messages/s", "try again in 1s")
	produceN(t, l, b, 3)
	c.add(time.Second)
	produceN(t, l, a, 1)
	wantRefusal(t, "team-a again", l.Produce(a, 1, 10), sdk.CodeRateLimited, 1, `principal "team-a"`)
	// A request of three after the bucket is spent waits three tokens.
	wantRefusal(t, "team-a's batch of 3", l.Produce(a, 3, 30), sdk.CodeRateLimited, 3, "try again in 3s")
	if got := testutil.ToFloat64(l.metrics.refused.WithLabelValues(limitMessages)); got != 3 {
		t.Errorf("refusals by messages_per_second: %v; want 3", got)
	}
}

// A request larger than the burst can never pass: code 16 naming the
// burst, and it takes nothing, so smaller requests still pass.
func TestLargerThanBurst(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	l := newLedger(c, rule("*", Rule{MessagesPerSecond: 10, Burst: 3, BytesPerSecond: 100, BurstBytes: 200}))
	p := as("svc")
	wantRefusal(t, "4 messages", l.Produce(p, 4, 4), sdk.CodeTooLarge, 0, "4 messages exceed the burst of 3", `principal "svc"`, "quotas[0].burst", "can never pass")
	wantRefusal(t, "201 bytes", l.Produce(p, 1, 201), sdk.CodeTooLarge, 0, "201 bytes exceed the burst of 200 bytes", "quotas[0].burst_bytes")
	if err := l.Produce(p, 3, 200); err != nil {
		t.Fatalf("a request of exactly the bursts: %v", err)
	}
}

// Bytes have their own bucket, and a request refused by one bucket takes
// nothing from the other: its message token comes back.
func TestBytesAndMessagesTogether(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	l := newLedger(c, rule("*", Rule{MessagesPerSecond: 1, Burst: 2, BytesPerSecond: 100, BurstBytes: 100}))
	p := as("svc")
	if err := l.Produce(p, 1, 60); err != nil {
		t.Fatal(err)
	}
	wantRefusal(t, "60 more bytes", l.Produce(p, 1, 60), sdk.CodeRateLimited, 1,
		`principal "svc"`, "100 bytes/s", "quotas[0].bytes_per_second")
	if err := l.Produce(p, 1, 40); err != nil {
		t.Fatalf("the second message token, which the refusal gave back: %v", err)
	}
	wantRefusal(t, "a third message", l.Produce(p, 1, 0), sdk.CodeRateLimited, 1, "quotas[0].messages_per_second")
}

// The first rule that matches applies: one without limits exempts its
// principals from a rule for everyone after it. Principals no rule
// matches, and requests without a principal, are not limited; nor is
// anything by a nil ledger.
func TestFirstMatchingRuleAndExemptions(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	l := newLedger(c,
		rule("ops", Rule{}),
		rule("batch-*", Rule{MessagesPerSecond: 1, Burst: 1}),
	)
	produceN(t, l, as("ops"), 100)
	produceN(t, l, as("other"), 100)
	produceN(t, l, context.Background(), 100)
	produceN(t, l, as("batch-1"), 1)
	wantRefusal(t, "batch-1", l.Produce(as("batch-1"), 1, 1), sdk.CodeRateLimited, 1, "quotas[1].messages_per_second")
	var none *Ledger
	produceN(t, none, as("batch-1"), 10)
	if release, err := none.OpenSession(as("batch-1"), "g", "t"); err != nil {
		t.Fatal(err)
	} else {
		release()
	}
	if n := len(l.accounts); n != 1 {
		t.Errorf("%d principals kept; want 1 (only batch-1 is limited)", n)
	}
}

// A principal opens up to max_sessions; the next is code 15 naming the
// principal, the key, the group and the topic, and passes once one
// closes. Releasing twice counts once.
func TestSessionsPerPrincipal(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	l := newLedger(c, rule("*", Rule{MaxSessions: 2}))
	p := as("alice")
	r1, err := l.OpenSession(p, "g1", "t")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.OpenSession(p, "g2", "t"); err != nil {
		t.Fatal(err)
	}
	_, err = l.OpenSession(p, "g3", "orders")
	wantRefusal(t, "a third session", err, sdk.CodeRateLimited, 0,
		`principal "alice" already holds 2 consume sessions`, "quotas[0].max_sessions", "group g3 on topic orders")
	if _, err := l.OpenSession(as("bob"), "g3", "orders"); err != nil {
		t.Fatalf("bob's first session: %v", err)
	}
	r1()
	r1()
	if _, err := l.OpenSession(p, "g3", "orders"); err != nil {
		t.Fatalf("after one closed: %v", err)
	}
	_, err = l.OpenSession(p, "g4", "orders")
	wantRefusal(t, "past the cap again", err, sdk.CodeRateLimited, 0, "quotas[0].max_sessions")
	if got := testutil.ToFloat64(l.metrics.refused.WithLabelValues(limitSessions)); got != 2 {
		t.Errorf("refusals by max_sessions: %v; want 2", got)
	}
}

// The ledger keeps at most MaxPrincipals principals: the one used least
// recently is forgotten, and starts with a full bucket when it comes
// back. One holding a session is never forgotten, so its count stays.
func TestBoundedPrincipals(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	l := New(Options{Rules: []Rule{rule("*", Rule{MessagesPerSecond: 1, Burst: 1, MaxSessions: 1, Source: "quotas[0]"})},
		MaxPrincipals: 2, Now: c.now})
	spend := func(name string) {
		t.Helper()
		produceN(t, l, as(name), 1)
		wantRefusal(t, name, l.Produce(as(name), 1, 1), sdk.CodeRateLimited, 1, name)
	}
	spend("a")
	spend("b")
	spend("c") // forgets a
	produceN(t, l, as("a"), 1)
	if n := len(l.accounts); n != 2 {
		t.Errorf("%d principals kept; want 2", n)
	}

	// d holds a session: e, f and g come and go, and d's count and bucket
	// stay.
	if _, err := l.OpenSession(as("d"), "g", "t"); err != nil {
		t.Fatal(err)
	}
	spend("d")
	for _, name := range []string{"e", "f", "g"} {
		spend(name)
	}
	wantRefusal(t, "d's bucket", l.Produce(as("d"), 1, 1), sdk.CodeRateLimited, 1, `"d"`)
	_, err := l.OpenSession(as("d"), "g2", "t")
	wantRefusal(t, "d's second session", err, sdk.CodeRateLimited, 0, "quotas[0].max_sessions")
	if got := testutil.ToFloat64(l.metrics.evicted); got < 4 {
		t.Errorf("%v principals evicted; want at least 4", got)
	}
	if got := testutil.ToFloat64(l.metrics.principals); got != 2 {
		t.Errorf("mqgate_quota_principals %v; want 2", got)
	}
}

// A principal whose rule bounds only sessions is forgotten once its last
// session closes: it has nothing else to remember.
func TestSessionOnlyPrincipalsAreForgotten(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	l := newLedger(c, rule("*", Rule{MaxSessions: 1}))
	release, err := l.OpenSession(as("x"), "g", "t")
	if err != nil {
		t.Fatal(err)
	}
	produceN(t, l, as("x"), 10) // not limited: no rate
	release()
	if n := len(l.accounts); n != 0 {
		t.Errorf("%d principals kept; want 0", n)
	}
}

func TestCompile(t *testing.T) {
	rules, err := Compile([]*config.Quota{{Principal: "team-*", MessagesPerSecond: 5, Burst: 10, MaxSessions: 2}})
	if err != nil {
		t.Fatal(err)
	}
	r := rules[0]
	if !r.Principal.Match("team-x") || r.MessagesPerSecond != 5 || r.Burst != 10 || r.MaxSessions != 2 || r.Source != "quotas[0]" {
		t.Errorf("compiled %+v", r)
	}
	if _, err := Compile([]*config.Quota{{Principal: ""}}); err == nil || !strings.Contains(err.Error(), "quotas[0].principal") {
		t.Errorf("an empty principal: %v; want an error naming quotas[0].principal", err)
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want int
		ok   bool
	}{
		{"a millisecond rounds up", &Refusal{Err: sdk.Errorf(sdk.CodeRateLimited, "x"), RetryAfter: time.Millisecond}, 1, true},
		{"a second and a bit", &Refusal{Err: sdk.Errorf(sdk.CodeRateLimited, "x"), RetryAfter: 1001 * time.Millisecond}, 2, true},
		{"wrapped", errors.Join(errors.New("producing"), &Refusal{Err: sdk.Errorf(sdk.CodeRateLimited, "x"), RetryAfter: 3 * time.Second}), 3, true},
		{"no wait", &Refusal{Err: sdk.Errorf(sdk.CodeTooLarge, "x")}, 0, false},
		{"not a refusal", sdk.Errorf(sdk.CodeRateLimited, "x"), 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := RetryAfterSeconds(tc.err)
			if got != tc.want || ok != tc.ok {
				t.Errorf("RetryAfterSeconds = %d, %v; want %d, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}
