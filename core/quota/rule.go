// Package quota holds each principal to its limits on this gateway
// (quotas: in plugins.yaml): the messages and bytes it produces per
// second, and the consume sessions it holds open. The first rule whose
// principal pattern matches applies, and every principal it matches gets
// buckets of its own: a rule for "team-*" limits team-a and team-b each
// to its rate, not both together.
//
// A rate refusal is code 15 with how long to wait; a request larger than
// a burst can never pass and is code 16 naming the burst. Nothing here
// waits: a request is answered at once.
package quota

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/mqgate/mqgate/core/auth/acl"
	"github.com/mqgate/mqgate/core/config"
	"github.com/mqgate/mqgate/sdk"
)

// Rule is one entry of quotas:, compiled.
type Rule struct {
	Principal acl.Pattern
	// MessagesPerSecond is the steady rate of messages produced, Burst
	// how many may come at once; 0: messages are not limited.
	MessagesPerSecond, Burst int
	// BytesPerSecond is the steady rate of bytes produced, BurstBytes how
	// many may come at once; 0: bytes are not limited.
	BytesPerSecond, BurstBytes int64
	// MaxSessions bounds the consume sessions open at once; 0: no bound.
	MaxSessions int
	// Source says where the rule was written (quotas[2]), for messages.
	Source string
}

// limitsRates reports whether r limits what is produced. A rule that
// limits neither rates nor sessions exempts the principals it matches
// from the rules after it.
func (r *Rule) limitsRates() bool { return r.MessagesPerSecond > 0 || r.BytesPerSecond > 0 }

// limitsSessions reports whether r bounds consume sessions.
func (r *Rule) limitsSessions() bool { return r.MaxSessions > 0 }

// Compile turns the quotas: of a config, which Load has validated and
// whose bursts it has filled in, into rules.
func Compile(qs []*config.Quota) ([]Rule, error) {
	rules := make([]Rule, 0, len(qs))
	for i, q := range qs {
		src := fmt.Sprintf("quotas[%d]", i)
		p, err := acl.ParsePattern(q.Principal)
		if err != nil {
			return nil, fmt.Errorf("%s.principal: %w", src, err)
		}
		rules = append(rules, Rule{
			Principal: p, MessagesPerSecond: q.MessagesPerSecond, Burst: q.Burst,
			BytesPerSecond: q.BytesPerSecond, BurstBytes: q.BurstBytes,
			MaxSessions: q.MaxSessions, Source: src,
		})
	}
	return rules, nil
}

// Refusal is a request a quota refused: code 15 for a rate or a session
// cap, 16 for a request larger than a burst. It unwraps to its
// *sdk.Error, which carries the code and the message clients see.
type Refusal struct {
	Err *sdk.Error
	// RetryAfter is how long until the same request would pass, for a
	// rate; zero when waiting alone does not tell (a session cap) or
	// cannot help (a burst).
	RetryAfter time.Duration
}

func (r *Refusal) Error() string { return r.Err.Error() }
func (r *Refusal) Unwrap() error { return r.Err }

// RetryAfterSeconds is RetryAfter in whole seconds, rounded up, as HTTP's
// Retry-After header carries it: at least 1 when there is a wait, 0 when
// there is none.
func (r *Refusal) RetryAfterSeconds() int { return ceilSeconds(r.RetryAfter) }

// ceilSeconds is d in whole seconds, rounded up; 0 for no wait.
func ceilSeconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int(math.Ceil(d.Seconds()))
}

// RetryAfterSeconds returns the wait a Refusal in err's chain asks for, in
// whole seconds rounded up, and whether there is one.
func RetryAfterSeconds(err error) (int, bool) {
	var r *Refusal
	if !errors.As(err, &r) {
		return 0, false
	}
	s := r.RetryAfterSeconds()
	return s, s > 0
}
