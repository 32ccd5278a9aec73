package consume

import (
	"cmp"
	"context"
	"slices"
	"time"
)

// MaxShownFlights bounds the messages out a SessionView lists per qid: the
// oldest first; the counts cover them all.
const MaxShownFlights = 100

// SessionView is what one session on this gateway holds: the admin API's
// view of a group's messages in flight, which only mqgate knows.
type SessionView struct {
	Cluster string `json:"cluster"`
	// Topics are the topics the session consumes: one, or a group
	// session's subscribed topics.
	Topics []string `json:"topics"`
	// Reader is true when the gateway itself consumes through the session
	// (a push subscription or a sink), false for client pulls.
	Reader bool `json:"reader"`
	// IdleMs is how long ago the session was last pulled or acked.
	IdleMs int64     `json:"idle_ms"`
	Qids   []QidView `json:"qids"`
}

// QidView is one qid a session owns.
type QidView struct {
	Topic string `json:"topic"`
	Qid   string `json:"qid"`
	// Committed is the offset last committed; CommitPoint the offset the
	// next commit stores (the oldest offset not acked).
	Committed   int64 `json:"committed"`
	CommitPoint int64 `json:"commit_point"`
	// Buffered counts the messages received and not handed out yet.
	Buffered int `json:"buffered"`
	// Delivered counts the messages handed out and waiting for their
	// ack; Retrying those failed or timed out and waiting to be handed
	// out again; DeadLettering those out of retries, waiting to be
	// written to the dead-letter topic.
	Delivered     int `json:"delivered"`
	Retrying      int `json:"retrying"`
	DeadLettering int `json:"dead_lettering"`
	// Revoking is set while the broker is moving the qid to another
	// member.
	Revoking bool `json:"revoking,omitempty"`
	// Flights are the messages out, oldest offset first, at most
	// MaxShownFlights.
	Flights []FlightView `json:"flights"`
}

// FlightView is one message out.
type FlightView struct {
	Offset int64 `json:"offset"`
	// State is delivered, retrying or dead-lettering.
	State   string `json:"state"`
	Attempt int    `json:"attempt"`
	// DeadlineMs is when an unacked delivery times out (ms since the
	// epoch; 0 while held), RedoAtMs when a failed one may be handed out
	// again.
	DeadlineMs int64  `json:"deadline_ms,omitempty"`
	RedoAtMs   int64  `json:"redo_at_ms,omitempty"`
	LastError  string `json:"last_error,omitempty"`
}

// DeadLetterTopic names the topic group's spent messages go to.
func (s *Service) DeadLetterTopic(group string) string {
	return s.settings(group).DeadLetterTopicOf(group)
}

// Sessions reports group's sessions on this gateway, by cluster and
// topics. Nothing is read from the broker.
func (s *Service) Sessions(group string) []SessionView {
	s.mu.Lock()
	var list []*session
	for k, ss := range s.sessions {
		if k.group == group {
			list = append(list, ss)
		}
	}
	s.mu.Unlock()
	out := make([]SessionView, 0, len(list))
	for _, ss := range list {
		out = append(out, ss.view(s.readerOf(ss) != nil))
	}
	slices.SortFunc(out, func(a, b SessionView) int {
		return cmp.Or(cmp.Compare(a.Cluster, b.Cluster), slices.Compare(a.Topics, b.Topics))
	})
	return out
}

// view is ss as SessionView shows it.
func (ss *session) view(reader bool) SessionView {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	now := ss.svc.opts.Now()
	v := SessionView{Cluster: ss.cluster, Topics: slices.Clone(ss.topics), Reader: reader,
		IdleMs: now.Sub(ss.lastUse).Milliseconds(), Qids: make([]QidView, 0, len(ss.qids))}
	for _, q := range ss.qids {
		qv := QidView{Topic: q.topic, Qid: q.qid, Committed: q.committed, CommitPoint: q.commitPoint(),
			Buffered: len(q.buf), Revoking: q.revoking, Flights: []FlightView{}}
		offs := make([]int64, 0, len(q.out))
		for off, f := range q.out {
			offs = append(offs, off)
			switch {
			case f.dead:
				qv.DeadLettering++
			case !f.redoAt.IsZero():
				qv.Retrying++
			default:
				qv.Delivered++
			}
		}
		slices.Sort(offs)
		for _, off := range offs[:min(len(offs), MaxShownFlights)] {
			f := q.out[off]
			fv := FlightView{Offset: off, State: "delivered", Attempt: f.attempt, DeadlineMs: msOrZero(f.deadline),
				RedoAtMs: msOrZero(f.redoAt), LastError: f.lastErr}
			switch {
			case f.dead:
				fv.State = "dead-lettering"
			case !f.redoAt.IsZero():
				fv.State = "retrying"
			}
			qv.Flights = append(qv.Flights, fv)
		}
		v.Qids = append(v.Qids, qv)
	}
	slices.SortFunc(v.Qids, func(a, b QidView) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(len(a.Qid), len(b.Qid)), cmp.Compare(a.Qid, b.Qid))
	})
	return v
}

// msOrZero is t in ms since the epoch, 0 for the zero time.
func msOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// Reading counts the sessions of views through which a group consumes
// topic: what an offset reset must wait for.
func Reading(views []SessionView, topic string) int {
	n := 0
	for _, v := range views {
		if slices.Contains(v.Topics, topic) {
			n++
		}
	}
	return n
}

// EndSessions closes group's sessions on this gateway that consume topic
// and that clients pull through, committing what was acked, and waits for
// them to leave the broker's group (the commit within ctx); messages they had out are handed out
// again to the group's next consumer. Sessions the gateway itself reads
// through (push subscriptions, sinks) are left alone: readers counts them.
// A client's next pull opens a session again.
func (s *Service) EndSessions(ctx context.Context, group, topic string) (ended, readers int) {
	s.mu.Lock()
	var list []*session
	for k, ss := range s.sessions {
		if k.group == group && slices.Contains(ss.topics, topic) {
			list = append(list, ss)
		}
	}
	s.mu.Unlock()
	for _, ss := range list {
		if s.readerOf(ss) != nil {
			readers++
			continue
		}
		ss.commit(ctx)
		s.closeSession(ss, "ended by an admin's offset reset")
		select {
		case <-ss.done:
		case <-ctx.Done():
			return ended, readers
		}
		ended++
	}
	return ended, readers
}

// SessionGroups lists, sorted, the groups with sessions on this gateway.
func (s *Service) SessionGroups() []string {
	s.mu.Lock()
	seen := map[string]bool{}
	for k := range s.sessions {
		seen[k.group] = true
	}
	s.mu.Unlock()
	out := make([]string, 0, len(seen))
	for g := range seen {
		out = append(out, g)
	}
	slices.Sort(out)
	return out
}
