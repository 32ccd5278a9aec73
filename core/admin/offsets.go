package admin

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mqgate/mqgate/sdk"
)

// Where ResetOffsets moves a group.
const (
	ToEarliest  = "earliest"
	ToLatest    = "latest"
	ToTimestamp = "timestamp"
	ToOffsets   = "offsets"
)

// ResetTarget says where ResetOffsets moves a group on a topic.
type ResetTarget struct {
	// To is ToEarliest (each qid's oldest retained message), ToLatest
	// (after its newest), ToTimestamp (its first message written at or
	// after Time) or ToOffsets (Offsets, by qid; qids not named are left
	// where they are).
	To      string
	Time    time.Time
	Offsets map[string]int64
}

// QidReset is one qid's move.
type QidReset struct {
	Qid       string `json:"qid"`
	Partition int32  `json:"partition"`
	// From is the group's committed offset before (-1: none); To the
	// offset its next consumer starts at.
	From int64 `json:"from"`
	To   int64 `json:"to"`
	// Start and End are the qid's retained range when it was read.
	Start int64 `json:"start"`
	End   int64 `json:"end"`
}

// Reset is what ResetOffsets did, or would do.
type Reset struct {
	Group   string     `json:"group"`
	Topic   string     `json:"topic"`
	Cluster string     `json:"cluster"`
	To      string     `json:"to"`
	Qids    []QidReset `json:"qids"`
	// DryRun is set when nothing was committed.
	DryRun bool `json:"dry_run"`
}

// ResetOffsets moves group's committed offsets on topic to target and
// reports every qid's move; with dryRun it only reports them. It is
// refused with code 13 while the group consumes topic through this
// gateway and, as Kafka refuses it, while the broker knows members of the
// group anywhere: a consumer would go on from where it is and overwrite
// the reset with its next commit. With force, the sessions clients pull
// through on this gateway are ended first (their next pull starts at the
// reset offsets); the gateway's own readers (push, sinks) still refuse it.
func (s *Service) ResetOffsets(ctx context.Context, group, topic string, target ResetTarget, dryRun, force bool) (Reset, error) {
	cluster, b, err := s.cluster(topic)
	if err != nil {
		return Reset{}, err
	}
	switch target.To {
	case ToEarliest, ToLatest, ToTimestamp:
	case ToOffsets:
		if len(target.Offsets) == 0 {
			return Reset{}, sdk.Errorf(sdk.CodeIllegal, "offsets: name at least one qid and its offset")
		}
	default:
		return Reset{}, sdk.Errorf(sdk.CodeIllegal, "to: must be %s, %s, %s or %s, got %q", ToEarliest, ToLatest, ToTimestamp, ToOffsets, target.To)
	}
	offs, err := b.ListOffsets(ctx, []string{topic}, group)
	if err != nil {
		return Reset{}, fmt.Errorf("reading the offsets of group %s on %s: %w", group, topic, err)
	}
	r := Reset{Group: group, Topic: topic, Cluster: cluster, To: target.To, Qids: []QidReset{}, DryRun: dryRun}
	known := make(map[string]bool, len(offs))
	for _, o := range offs {
		if o.Topic != topic {
			continue
		}
		known[o.Qid] = true
		q := QidReset{Qid: o.Qid, Partition: o.Partition, From: o.Committed, Start: o.Start, End: o.End}
		switch target.To {
		case ToEarliest:
			q.To = o.Start
		case ToLatest:
			q.To = o.End
		case ToTimestamp:
			q.To, err = offsetAt(ctx, b, topic, o, target.Time)
			if err != nil {
				return Reset{}, err
			}
		case ToOffsets:
			to, ok := target.Offsets[o.Qid]
			if !ok {
				continue
			}
			if to < o.Start || to > o.End {
				return Reset{}, sdk.Errorf(sdk.CodeIllegal, "offsets: %d for qid %s is outside what it retains, %d to %d", to, o.Qid, o.Start, o.End)
			}
			q.To = to
		}
		r.Qids = append(r.Qids, q)
	}
	for qid := range target.Offsets {
		if !known[qid] {
			names := make([]string, 0, len(known))
			for k := range known {
				names = append(names, k)
			}
			slices.Sort(names)
			return Reset{}, sdk.Errorf(sdk.CodeIllegal, "offsets: topic %s has no qid %q; its qids: %s", topic, qid, strings.Join(names, ", "))
		}
	}
	slices.SortFunc(r.Qids, func(a, b QidReset) int {
		if a.Partition != b.Partition {
			return int(a.Partition - b.Partition)
		}
		return strings.Compare(a.Qid, b.Qid)
	})
	if dryRun || len(r.Qids) == 0 {
		return r, nil
	}
	// Only a reset known to be valid ends sessions.
	if force && s.opts.End != nil {
		if n := s.opts.End(ctx, group, topic); n > 0 {
			return Reset{}, sdk.Errorf(sdk.CodeNotAllowed, "group %s reads topic %s for a push subscription or a sink on this gateway: remove it from the config (or the group's subscriptions) before resetting", group, topic)
		}
	}
	if s.opts.Active != nil {
		if n := s.opts.Active(group, topic); n > 0 {
			return Reset{}, sdk.Errorf(sdk.CodeNotAllowed, "group %s is consuming topic %s through this gateway (%d sessions): stop its consumers and reset once their sessions end (consume.session_idle after their last pull), or reset with force to end them now", group, topic, n)
		}
	}
	// Sessions a forced reset just ended leave the broker's group as
	// their consumers close, which takes a moment: wait for that (within
	// ctx, 10 s at most) before taking members for others'.
	err = membersElsewhere(ctx, b, group)
	for wait := time.Now().Add(10 * time.Second); err != nil && force && time.Now().Before(wait) && ctx.Err() == nil; {
		time.Sleep(200 * time.Millisecond)
		err = membersElsewhere(ctx, b, group)
	}
	if err != nil {
		return Reset{}, err
	}
	commit := make([]sdk.Offset, len(r.Qids))
	for i, q := range r.Qids {
		commit[i] = sdk.Offset{Topic: topic, Qid: q.Qid, Offset: q.To}
	}
	if err := b.Commit(ctx, group, commit); err != nil {
		return Reset{}, fmt.Errorf("committing group %s's offsets on %s: %w", group, topic, err)
	}
	return r, nil
}

// membersElsewhere refuses, with code 13, a reset of a group the broker
// knows members of (other gateways, or clients of the broker itself): they
// would commit over it. A broker that cannot list groups is not asked;
// Kafka refuses the commit itself then.
func membersElsewhere(ctx context.Context, b sdk.Backend, group string) error {
	a, ok := b.(sdk.ClusterAdmin)
	if !ok {
		return nil
	}
	groups, err := a.ListGroups(ctx)
	if err != nil {
		return nil // the commit finds out what a list could not
	}
	for _, g := range groups {
		if g.Name == group && g.Members > 0 {
			return sdk.Errorf(sdk.CodeNotAllowed, "group %s has %d members on the broker (consumers on other gateways, or clients of the broker): stop them before resetting", group, g.Members)
		}
	}
	return nil
}

// offsetAt finds the first offset of q whose message was written at or
// after t, by a binary search of its retained range that reads one
// message a step (at most about 64): q.End when none is. It takes
// timestamps to grow with offsets, as they do for what the gateway
// writes and for Kafka's log-append time; where a producer set earlier
// times on later messages, it finds one of the offsets where time passes
// t, as Kafka's own search by time does.
func offsetAt(ctx context.Context, b sdk.Backend, topic string, q sdk.QidOffsets, t time.Time) (int64, error) {
	lo, hi := q.Start, q.End // the answer is in [lo, hi]
	for lo < hi {
		mid := lo + (hi-lo)/2
		r, err := firstFrom(ctx, b, topic, q.Qid, mid, hi)
		switch {
		case err != nil:
			return 0, err
		case r == nil || !r.Timestamp.Before(t):
			// Nothing from mid to hi, or the first message there is
			// at or after t: offsets from mid to it hold nothing
			// earlier, so the answer is at most mid.
			hi = mid
		default:
			lo = r.Offset + 1
		}
	}
	return lo, nil
}

// firstFrom reads the first message of qid at or after offset from and
// before end: nil when there is none (compacted away, or only
// transaction markers), reading past empty spans a few times at most.
func firstFrom(ctx context.Context, b sdk.Backend, topic, qid string, from, end int64) (*sdk.Record, error) {
	for range 16 {
		res, ok, err := fetchAt(ctx, b, topic, qid, from, 1)
		if err != nil || !ok {
			return nil, err
		}
		if len(res.Records) > 0 {
			if r := &res.Records[0]; r.Offset < end {
				return r, nil
			}
			return nil, nil
		}
		if res.NextOffset >= end {
			return nil, nil
		}
		from = res.NextOffset // a span of markers: read on
	}
	return nil, nil
}

// OffsetAt finds the first offset of topic's qid whose message was written
// at or after t (the qid's end when none is), for a browse from a time.
func (s *Service) OffsetAt(ctx context.Context, topic, qid string, t time.Time) (int64, error) {
	page, b, err := s.lookup(ctx, topic, qid)
	if err != nil {
		return 0, err
	}
	q := page.Qid
	return offsetAt(ctx, b, topic, sdk.QidOffsets{Topic: topic, Qid: q.Qid, Partition: q.Partition, Start: q.Start, End: q.End}, t)
}
