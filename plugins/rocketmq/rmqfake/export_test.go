package rmqfake

import "time"

// ExpireAsOf runs the check for consumers whose heartbeats stopped as if
// the time were now, so a test expires a client by a step of its own
// instead of waiting for ClientExpiry to pass.
func (f *Fake) ExpireAsOf(now time.Time) { f.expire(now) }
