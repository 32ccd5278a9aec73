package push

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// slowFactor is how much slower a slowed subscription sends: CProxy takes
// SLOW_DOWN_PERMITS (10) tokens of its rate limiter per request instead
// of 1.
const slowFactor = 10

// slowDown is a subscription's answer to errno 1000000, as CProxy's
// slowDown and getRequiredPermits (carrera-consumer's
// cproxy/actions/http/CarreraAsyncRequest.java) give it: the first such
// reply sets a number of permits to the subscription's rate (its requests
// per second); every further one while permits remain adds one; while
// permits remain, each request takes one and is paced at a tenth of the
// rate. So a slow-down lasts about ten seconds of slowed sending, longer
// if the receiver keeps asking.
//
// The rate is rate_limit; with rate_limit 0 (no limit) it is the rate the
// subscription sent at in the last whole second, at least 1. DDMQ keeps
// this state per group and topic; mqgate keeps it per subscription, the
// scope of rate_limit.
type slowDown struct {
	rateLimit int

	mu      sync.Mutex
	permits int
	pace    *rate.Limiter // valid while permits > 0
	total   int64         // slow-down replies
	// A meter of requests per second: the count of the second now
	// running and of the one before.
	sec       int64
	cur, prev int
}

func newSlowDown(rateLimit int) *slowDown { return &slowDown{rateLimit: rateLimit} }

// sent counts a request started at now.
func (s *slowDown) sent(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tickLocked(now)
	s.cur++
}

func (s *slowDown) tickLocked(now time.Time) {
	sec := now.Unix()
	switch {
	case sec == s.sec:
		return
	case sec == s.sec+1:
		s.prev = s.cur
	default:
		s.prev = 0
	}
	s.sec, s.cur = sec, 0
}

// trigger records a slow-down reply received at now.
func (s *slowDown) trigger(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total++
	if s.permits > 0 {
		s.permits++
		return
	}
	base := s.rateLimit
	if base <= 0 {
		s.tickLocked(now)
		base = max(1, s.prev)
	}
	s.permits = base
	s.pace = rate.NewLimiter(rate.Limit(float64(base)/slowFactor), 1)
}

// wait takes a permit, when one remains, and waits for the slowed pace.
// It returns at once when the subscription is not slowed.
func (s *slowDown) wait(ctx context.Context) error {
	s.mu.Lock()
	if s.permits <= 0 {
		s.mu.Unlock()
		return nil
	}
	s.permits--
	pace := s.pace
	s.mu.Unlock()
	return pace.Wait(ctx)
}

// state reports the slow-down replies so far and the requests still to
// be paced.
func (s *slowDown) state() (total int64, permits int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total, s.permits
}
