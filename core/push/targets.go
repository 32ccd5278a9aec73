package push

import (
	"sync"
	"time"
)

// target is one URL a subscription delivers to, with its passive health:
// a target that does not answer (connection refused, timeout) or answers
// 502, 503 or 504 is skipped until downUntil.
type target struct {
	url string

	// guarded by targets.mu
	downUntil time.Time
	lastErr   string
	sent      int64
	failed    int64
}

// targets spreads requests round-robin over the healthy targets.
type targets struct {
	cooldown time.Duration

	mu   sync.Mutex
	list []*target
	next int
}

func newTargets(urls []string, cooldown time.Duration) *targets {
	ts := &targets{cooldown: cooldown}
	for _, u := range urls {
		ts.list = append(ts.list, &target{url: u})
	}
	return ts
}

// pick returns the next healthy target other than skip. When every
// candidate is down it returns the one whose cooldown ends first, so
// delivery never stops for good.
func (ts *targets) pick(now time.Time, skip *target) *target {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	n := len(ts.list)
	var soonest *target
	for i := range n {
		c := ts.list[(ts.next+i)%n]
		if c == skip && n > 1 {
			continue
		}
		if !c.downUntil.After(now) {
			ts.next = (ts.next + i + 1) % n
			c.sent++
			return c
		}
		if soonest == nil || c.downUntil.Before(soonest.downUntil) {
			soonest = c
		}
	}
	if soonest == nil {
		soonest = skip
	}
	soonest.sent++
	return soonest
}

// down marks t unhealthy for the cooldown.
func (ts *targets) down(t *target, now time.Time, why string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	t.downUntil = now.Add(ts.cooldown)
	t.lastErr = why
	t.failed++
}

// TargetStatus is one target in the status.
type TargetStatus struct {
	URL     string `json:"url"`
	Healthy bool   `json:"healthy"`
	// Requests and Failures count attempts sent to it and those that did
	// not get an answer (or got 502-504).
	Requests  int64  `json:"requests"`
	Failures  int64  `json:"failures"`
	LastError string `json:"last_error,omitempty"`
}

func (ts *targets) status(now time.Time) []TargetStatus {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	out := make([]TargetStatus, len(ts.list))
	for i, t := range ts.list {
		out[i] = TargetStatus{URL: t.url, Healthy: !t.downUntil.After(now), Requests: t.sent, Failures: t.failed, LastError: t.lastErr}
	}
	return out
}
