package produce

import (
	"time"

	"golang.org/x/time/rate"

	"github.com/mqgate/mqgate/core/quota"
	"github.com/mqgate/mqgate/sdk"
)

// RateLimit is a topic's limit: PerSecond messages a second on average,
// with bursts of up to Burst messages (PerSecond when 0).
type RateLimit struct {
	PerSecond int
	Burst     int
}

// limits holds one token bucket per limited topic. The map is built once
// and only read after, so lookups need no lock; rate.Limiter locks itself.
type limits map[string]*limitedTopic

type limitedTopic struct {
	limiter *rate.Limiter
	limit   RateLimit
}

func newLimits(cfg map[string]RateLimit) limits {
	l := make(limits, len(cfg))
	for topic, rl := range cfg {
		if rl.PerSecond <= 0 {
			continue
		}
		if rl.Burst <= 0 {
			rl.Burst = rl.PerSecond
		}
		l[topic] = &limitedTopic{limiter: rate.NewLimiter(rate.Limit(rl.PerSecond), rl.Burst), limit: rl}
	}
	return l
}

// allow takes n tokens for topic now or refuses at once with code 15 and
// how long until the same request would pass (HTTP's Retry-After); it
// never waits. A request larger than the burst can never pass and says so.
func (l limits) allow(topic string, n int) error {
	t, ok := l[topic]
	if !ok {
		return nil
	}
	if n > t.limit.Burst {
		return sdk.Errorf(sdk.CodeRateLimited, "%d messages exceed topic %s's burst of %d (topics.%s.burst)", n, topic, t.limit.Burst, topic)
	}
	now := time.Now()
	r := t.limiter.ReserveN(now, n)
	if wait := r.DelayFrom(now); wait > 0 {
		r.CancelAt(now) // a refused request takes nothing
		return &quota.Refusal{
			Err:        sdk.Errorf(sdk.CodeRateLimited, "topic %s is over its rate limit of %d messages/s (topics.%s.rate_limit)", topic, t.limit.PerSecond, topic),
			RetryAfter: wait,
		}
	}
	return nil
}
