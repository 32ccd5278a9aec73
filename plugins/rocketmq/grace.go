package rocketmq

import (
	"context"
	"slices"
	"time"

	"github.com/mqgate/mqgate/sdk"
)

// A member that gives queues up holds them, keeping and renewing the
// broker's locks on them, until the gateway's release commit of them
// (sdk.Consumer.Commit) is stored; their next owner, this member included,
// then starts after what that commit stored. Commits of a held queue are
// stored, but only the release commit lets it go: a commit without
// Offset.Release may be a periodic one the gateway began before it saw the
// Revoked event, at an offset the release commit is about to pass.
//
// The release commit of a Revoked event is the Commit that marks an offset
// of one of its queues Release, or that has no offsets at all: the gateway
// leaves out qids whose position it never learnt, so its release commit may
// name none of them, but it makes no other commit of nothing. The gateway
// answers Revoked events in the order it polled them, with one commit each,
// and commits are applied in the order they were made; so a release commit
// also releases every older revocation still held, and a release commit of
// no offsets is that of the oldest revocation not answered yet. It releases
// all the queues of its revocation, named in it or not.
//
// A revocation the gateway does not answer in time (it stopped polling, or
// took longer than the grace to finish) is let go anyway graceWindow after
// its Revoked event: no queue stays locked longer than that to a member
// that no longer consumes it.

// graceWindow is how long a member holds the queues of a Revoked event for
// the gateway's release commit: the longest a consume session waits for
// messages it handed out (50 s) and the commit after it. After it the queues
// are unlocked, and commits of them refused.
const graceWindow = time.Minute

// lateAnswerWindow is how long a revocation the grace let go waits in line
// for its release commit. An answer later than that (none should be) is
// taken for the next revocation's, which is then let go early.
const lateAnswerWindow = 10 * time.Minute

// A revocation is the queues of one Revoked event, held until its release
// commit. Let go when the grace ran out, it stays in line until the release
// commit it is owed comes (for lateAnswerWindow at most), so that a release
// commit of no offsets is matched with its own revocation.
type revocation struct {
	at     time.Time
	queues []ownedQueue
	letGo  bool // its queues are no longer held
}

// hold records the queues of a Revoked event before it is emitted; they
// stay held until released.
func (c *consumer) hold(queues []ownedQueue) {
	r := &revocation{at: time.Now(), queues: queues}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, oq := range queues {
		c.held[oq] = r
	}
	c.revocations = append(c.revocations, r)
	select {
	case c.holds <- struct{}{}:
	default: // graceLoop has one to see already
	}
}

// graceLoop lets go of revocations whose grace ran out, on time even while
// the rebalance loop waits for Poll.
func (c *consumer) graceLoop() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var due <-chan time.Time
		if next := c.expireGrace(time.Now()); !next.IsZero() {
			timer.Reset(time.Until(next))
			due = timer.C
		}
		select {
		case <-c.ctx.Done():
			return
		case <-c.holds:
		case <-due:
		}
	}
}

// heldQueuesLocked lists the queues of topic held for a release commit.
// c.mu must be held.
func (c *consumer) heldQueuesLocked(topic string) []queue {
	var qs []queue
	for oq := range c.held {
		if oq.topic == topic {
			qs = append(qs, oq.q)
		}
	}
	return qs
}

// answeredByLocked is the newest revocation that a commit of offsets (of
// queues, in order) answers, nil when it is not a release commit. c.mu must
// be held.
func (c *consumer) answeredByLocked(offsets []sdk.Offset, queues []ownedQueue) *revocation {
	if len(offsets) == 0 {
		if len(c.revocations) == 0 {
			return nil
		}
		return c.revocations[0]
	}
	newest := -1
	for i, o := range offsets {
		if !o.Release {
			continue
		}
		// The oldest in line that gave the queue up: the answers come in
		// order.
		at := slices.IndexFunc(c.revocations, func(r *revocation) bool { return slices.Contains(r.queues, queues[i]) })
		newest = max(newest, at)
	}
	if newest < 0 {
		return nil
	}
	return c.revocations[newest]
}

// release takes the revocations up to and including through out of line,
// letting go of those the grace did not, and unlocks their queues for
// their next owner.
func (c *consumer) release(through *revocation) {
	c.lockMu.Lock()
	defer c.lockMu.Unlock()
	c.mu.Lock()
	n := slices.Index(c.revocations, through) + 1
	gone := c.forgetLocked(c.revocations[:n])
	c.revocations = slices.Delete(c.revocations, 0, n)
	c.mu.Unlock()
	c.unlock(gone)
}

// expireGrace lets go of the revocations held for the grace or longer at
// now, and returns when the next one held is due, zero when none is.
func (c *consumer) expireGrace(now time.Time) time.Time {
	grace := c.grace
	c.lockMu.Lock()
	defer c.lockMu.Unlock()
	c.mu.Lock()
	var expired []*revocation
	var next time.Time
	for _, r := range c.revocations {
		switch {
		case r.letGo:
		case now.Sub(r.at) >= grace:
			expired = append(expired, r)
		case next.IsZero():
			next = r.at.Add(grace)
		}
	}
	gone := c.forgetLocked(expired)
	n := 0
	for n < len(c.revocations) && c.revocations[n].letGo && now.Sub(c.revocations[n].at) >= lateAnswerWindow {
		n++
	}
	c.revocations = slices.Delete(c.revocations, 0, n)
	c.mu.Unlock()
	if len(gone) > 0 {
		c.b.logger.Warn("rocketmq: unlocking queues given up that the gateway did not commit within the grace; their next owner may repeat messages",
			"group", c.cfg.unwrap(c.group), "queues", len(gone), "grace", grace)
		c.unlock(gone)
	}
	return next
}

// forgetLocked lets go of rs and returns their queues that were still
// held. c.mu must be held.
func (c *consumer) forgetLocked(rs []*revocation) []ownedQueue {
	var gone []ownedQueue
	for _, r := range rs {
		for _, oq := range r.queues {
			if c.held[oq] == r {
				delete(c.held, oq)
				gone = append(gone, oq)
			}
		}
		r.letGo = true
	}
	return gone
}

// unlock unlocks queues let go, within a deadline of its own: the commit
// that released them may have used up the gateway's.
func (c *consumer) unlock(oqs []ownedQueue) {
	if len(oqs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
	defer cancel()
	c.unlockQueues(ctx, oqs)
}
