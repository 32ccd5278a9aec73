package quota

import (
	"container/list"
	"context"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/mqgate/mqgate/core/auth"
	"github.com/mqgate/mqgate/core/metrics"
	"github.com/mqgate/mqgate/sdk"
)

// DefaultMaxPrincipals is how many principals' buckets a Ledger keeps
// unless told otherwise: a few MiB.
const DefaultMaxPrincipals = 10000

// The limits a refusal names, as in the metric's limit label.
const (
	limitMessages   = "messages_per_second"
	limitBytes      = "bytes_per_second"
	limitBurst      = "burst"
	limitBurstBytes = "burst_bytes"
	limitSessions   = "max_sessions"
)

// Options configure a Ledger.
type Options struct {
	Rules []Rule
	// MaxPrincipals bounds the principals whose buckets are kept;
	// DefaultMaxPrincipals when 0. Past it, the principal active least
	// recently and holding no session is forgotten: when it comes back its
	// buckets start full, as after an idle spell. Principals holding
	// sessions are kept whatever the bound (their sessions are bounded
	// by consume.max_sessions).
	MaxPrincipals int
	Registerer    prometheus.Registerer
	// Now is the buckets' clock; nil is time.Now. Tests hold it still.
	Now func() time.Time
}

// Ledger keeps each principal's buckets and session count. Its methods
// are safe for concurrent use, and a nil *Ledger limits nothing. It
// holds one lock, which it takes last: callers may hold theirs.
type Ledger struct {
	rules   []Rule
	max     int
	now     func() time.Time
	metrics *ledgerMetrics

	mu       sync.Mutex
	accounts map[string]*account
	// idle lists the accounts holding no session, the most recently used
	// first: the ones that may be forgotten.
	idle *list.List
}

// account is one principal's state under its rule.
type account struct {
	name string
	rule *Rule
	// messages and bytes are nil when the rule does not limit them.
	messages, bytes *rate.Limiter
	// sessions and idle are guarded by Ledger.mu; idle is the account's
	// place in Ledger.idle, nil while it holds sessions.
	sessions int
	idle     *list.Element
}

// New returns a ledger of opts.Rules.
func New(opts Options) *Ledger {
	if opts.MaxPrincipals <= 0 {
		opts.MaxPrincipals = DefaultMaxPrincipals
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	return &Ledger{rules: opts.Rules, max: opts.MaxPrincipals, now: opts.Now, metrics: newLedgerMetrics(opts.Registerer),
		accounts: map[string]*account{}, idle: list.New()}
}

// Produce counts a request producing messages of bytes in all (key,
// value, tags and headers) against the principal of ctx, or refuses it at
// once: code 15 with a RetryAfter when a rate is spent, code 16 when the
// request is larger than a burst and so can never pass. A refused request
// takes nothing from the buckets. A ctx without a principal is not
// limited.
func (l *Ledger) Produce(ctx context.Context, messages int, bytes int64) error {
	a := l.accountOf(ctx, (*Rule).limitsRates)
	if a == nil {
		return nil
	}
	r := a.rule
	switch {
	case a.messages != nil && messages > r.Burst:
		return l.refuse(limitBurst, 0, sdk.CodeTooLarge,
			"%d messages exceed the burst of %d of principal %q (%s.burst): the request can never pass; send fewer messages at a time",
			messages, r.Burst, a.name, r.Source)
	case a.bytes != nil && bytes > r.BurstBytes:
		return l.refuse(limitBurstBytes, 0, sdk.CodeTooLarge,
			"%d bytes exceed the burst of %d bytes of principal %q (%s.burst_bytes): the request can never pass; send fewer bytes at a time",
			bytes, r.BurstBytes, a.name, r.Source)
	}
	now := l.now()
	var wait time.Duration
	limit, perSecond, unit := "", int64(0), ""
	var reserved []*rate.Reservation
	if a.messages != nil {
		res := a.messages.ReserveN(now, messages)
		reserved = append(reserved, res)
		if d := res.DelayFrom(now); d > wait {
			wait, limit, perSecond, unit = d, limitMessages, int64(r.MessagesPerSecond), "messages"
		}
	}
	if a.bytes != nil {
		res := a.bytes.ReserveN(now, int(min(bytes, math.MaxInt)))
		reserved = append(reserved, res)
		if d := res.DelayFrom(now); d > wait {
			wait, limit, perSecond, unit = d, limitBytes, r.BytesPerSecond, "bytes"
		}
	}
	if wait == 0 {
		return nil
	}
	// Refused: what was reserved goes back, so that a client retrying
	// too early does not push its own wait further out.
	for _, res := range reserved {
		res.CancelAt(now)
	}
	return l.refuse(limit, wait, sdk.CodeRateLimited, "principal %q is over its quota of %d %s/s (%s.%s); try again in %ds",
		a.name, perSecond, unit, r.Source, limit, ceilSeconds(wait))
}

// OpenSession counts one more consume session, of group on topic, against
// the principal of ctx, or refuses it with code 15 when the principal
// holds its max_sessions already. The caller calls release, once, when
// the session closes. A ctx without a principal is not limited.
func (l *Ledger) OpenSession(ctx context.Context, group, topic string) (release func(), err error) {
	p, ok := l.principalOf(ctx)
	if !ok {
		return func() {}, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.accountLocked(p, (*Rule).limitsSessions)
	if a == nil {
		return func() {}, nil
	}
	if a.sessions >= a.rule.MaxSessions {
		return nil, l.refuse(limitSessions, 0, sdk.CodeRateLimited,
			"principal %q already holds %d consume sessions, its limit (%s.max_sessions); a pull of group %s on topic %s would open another. "+
				"Pull again once its sessions close (a session closes consume.session_idle after its last pull or ack)",
			a.name, a.rule.MaxSessions, a.rule.Source, group, topic)
	}
	a.sessions++
	if a.idle != nil {
		l.idle.Remove(a.idle)
		a.idle = nil
	}
	return sync.OnceFunc(func() { l.closeSession(a) }), nil
}

// closeSession counts a session of a closed.
func (l *Ledger) closeSession(a *account) {
	l.mu.Lock()
	defer l.mu.Unlock()
	a.sessions--
	switch {
	case a.sessions > 0:
	case !a.rule.limitsRates():
		// Nothing left to remember: no session, and no bucket.
		l.forgetLocked(a)
	default:
		a.idle = l.idle.PushFront(a)
	}
}

// principalOf is the name of ctx's principal, and whether l limits
// anyone and ctx has a principal.
func (l *Ledger) principalOf(ctx context.Context) (string, bool) {
	if l == nil {
		return "", false
	}
	p, ok := auth.PrincipalFrom(ctx)
	return p.Name, ok
}

// accountOf returns the account of ctx's principal, or nil when its rule
// does not limit it as need asks.
func (l *Ledger) accountOf(ctx context.Context, need func(*Rule) bool) *account {
	p, ok := l.principalOf(ctx)
	if !ok {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.accountLocked(p, need)
}

// accountLocked returns the account of principal, making it when the
// principal has none, or nil when its rule does not limit it as need
// asks. l.mu is held.
func (l *Ledger) accountLocked(principal string, need func(*Rule) bool) *account {
	a := l.accounts[principal]
	if a != nil {
		if a.idle != nil {
			l.idle.MoveToFront(a.idle)
		}
		if !need(a.rule) {
			return nil
		}
		return a
	}
	r := l.ruleFor(principal)
	if r == nil || !need(r) {
		return nil
	}
	for len(l.accounts) >= l.max {
		last := l.idle.Back()
		if last == nil {
			break // every account holds sessions: consume.max_sessions bounds them
		}
		l.forgetLocked(last.Value.(*account))
		l.metrics.evicted.Inc()
	}
	a = &account{name: principal, rule: r}
	if r.MessagesPerSecond > 0 {
		a.messages = rate.NewLimiter(rate.Limit(r.MessagesPerSecond), r.Burst)
	}
	if r.BytesPerSecond > 0 {
		a.bytes = rate.NewLimiter(rate.Limit(r.BytesPerSecond), int(min(r.BurstBytes, math.MaxInt)))
	}
	a.idle = l.idle.PushFront(a)
	l.accounts[principal] = a
	l.metrics.principals.Set(float64(len(l.accounts)))
	return a
}

// forgetLocked drops a, which holds no session. l.mu is held.
func (l *Ledger) forgetLocked(a *account) {
	if a.idle != nil {
		l.idle.Remove(a.idle)
		a.idle = nil
	}
	if l.accounts[a.name] == a {
		delete(l.accounts, a.name)
	}
	l.metrics.principals.Set(float64(len(l.accounts)))
}

// ruleFor is the first rule whose principal pattern matches principal.
func (l *Ledger) ruleFor(principal string) *Rule {
	for i := range l.rules {
		if l.rules[i].Principal.Match(principal) {
			return &l.rules[i]
		}
	}
	return nil
}

// refuse counts a refusal by limit and returns it.
func (l *Ledger) refuse(limit string, wait time.Duration, code sdk.Code, format string, args ...any) *Refusal {
	l.metrics.refused.WithLabelValues(limit).Inc()
	return &Refusal{Err: sdk.Errorf(code, format, args...), RetryAfter: wait}
}

type ledgerMetrics struct {
	refused    *prometheus.CounterVec
	principals prometheus.Gauge
	evicted    prometheus.Counter
}

func newLedgerMetrics(reg prometheus.Registerer) *ledgerMetrics {
	m := &ledgerMetrics{
		// By the key that refused, never by principal: principals are
		// unbounded, and the refusal's message names the principal.
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mqgate_quota_refused_total",
			Help: "Requests refused by a principal's quota, by the key of the limit (messages_per_second, bytes_per_second, burst, burst_bytes, max_sessions)."},
			[]string{"limit"}),
		principals: prometheus.NewGauge(prometheus.GaugeOpts{Name: "mqgate_quota_principals",
			Help: "Principals whose quota buckets or sessions this gateway keeps."}),
		evicted: prometheus.NewCounter(prometheus.CounterOpts{Name: "mqgate_quota_principals_evicted_total",
			Help: "Principals forgotten to keep at most the bound of principals: each starts with full buckets when it comes back."}),
	}
	m.refused = metrics.Register(reg, m.refused)
	m.principals = metrics.Register(reg, m.principals)
	m.evicted = metrics.Register(reg, m.evicted)
	for _, limit := range []string{limitMessages, limitBytes, limitBurst, limitBurstBytes, limitSessions} {
		m.refused.WithLabelValues(limit)
	}
	return m
}
