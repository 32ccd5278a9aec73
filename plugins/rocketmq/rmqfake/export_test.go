package rmqfake

import "time"

// ExpireAsOf runs the check for consumers whose heartbeats stopped as if
// the time were now, so a test expires a client by a step of its own
// instead of waiting for ClientExpiry to pass.
func (f *Fake) ExpireAsOf(now time.Time) { f.expire(now) }

// GroupConnected reports whether a connection that sent heartbeats for
// group is still open. A client that unregistered stays connected until
// it hangs up; once it has, everything it sent has been applied (the fake
// applies a connection's requests in order), its last offset updates too.
func (f *Fake) GroupConnected(group string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		if c.groups[group] {
			return true
		}
	}
	return false
}
