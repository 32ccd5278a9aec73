package delay

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/mqgate/mqgate/sdk"
)

// The bounds of a look at what waits in the tiers.
const (
	// MaxPendingShown is the most pending messages one look returns.
	MaxPendingShown = 100
	// DefaultPendingShown is how many it returns when not asked.
	DefaultPendingShown = 20
	// MaxPendingScan bounds the tier records one look reads: the tiers
	// hold every topic's delayed messages, so a look for one topic or id
	// reads at most this many and says whether it read them all.
	MaxPendingScan = 10000
	// pendingFetch is how many records one fetch of a tier asks for.
	pendingFetch = 500
	// maxPendingBytes bounds the keys, values and headers of one look's
	// messages, as a browse's page is bounded.
	maxPendingBytes = 4 << 20
)

// TierCount is what waits in one tier.
type TierCount struct {
	// Topic is the tier topic; Tier the longest hop it holds.
	Topic  string        `json:"topic"`
	Tier   time.Duration `json:"-"`
	TierMs int64         `json:"tier_ms"`
	// Pending counts its records not moved on yet, on every gateway.
	Pending int64 `json:"pending"`
}

// Tiers counts what waits in each tier, shortest tier first.
func (s *Service) Tiers(ctx context.Context) ([]TierCount, error) {
	if err := s.Ready(); err != nil {
		return nil, err
	}
	out := make([]TierCount, 0, len(s.plan.tiers))
	for _, tier := range s.plan.tiers {
		qids, err := s.pendingRanges(ctx, tier)
		if err != nil {
			return nil, err
		}
		c := TierCount{Topic: TierName(s.opts.TopicPrefix, tier), Tier: tier, TierMs: tier.Milliseconds()}
		for _, q := range qids {
			c.Pending += q.End - q.Start
		}
		out = append(out, c)
	}
	return out, nil
}

// pendingRanges lists a tier's qids with Start moved to the first record
// its workers have not moved on (their group's committed offset).
func (s *Service) pendingRanges(ctx context.Context, tier time.Duration) ([]sdk.QidOffsets, error) {
	topic := TierName(s.opts.TopicPrefix, tier)
	offs, err := s.opts.Backend.ListOffsets(ctx, []string{topic}, topic)
	if err != nil {
		return nil, fmt.Errorf("reading the offsets of delay tier %s: %w", topic, err)
	}
	for i := range offs {
		offs[i].Start = max(offs[i].Start, offs[i].Committed)
		offs[i].End = max(offs[i].End, offs[i].Start)
	}
	return offs, nil
}

// PendingQuery selects pending delayed messages.
type PendingQuery struct {
	// Topic is the target topic; required.
	Topic string
	// ID, when set, selects that delay id only.
	ID string
	// Limit bounds the messages returned: 0 is DefaultPendingShown, at
	// most MaxPendingShown.
	Limit int
}

// Pending is a delayed message waiting in a tier.
type Pending struct {
	ID    string
	Topic string
	// Due is when it fires (a loop's next firing); Hop when it leaves the
	// tier it is in.
	Due, Hop time.Time
	// TierTopic is the tier it waits in; Message's Qid and Offset where.
	TierTopic string
	// Loop is set for a loop, and Fired counts its firings so far.
	Loop  *Loop
	Fired int64
	// Cancelled is set when a cancel names it: it is dropped instead of
	// delivered.
	Cancelled bool
	// Message is what will be delivered: its key, value, tags and own
	// headers; its Qid, Offset and Timestamp are its record's in the tier.
	Message sdk.Record
}

// PendingPage is one look at the tiers.
type PendingPage struct {
	Messages []Pending
	// Scanned counts the tier records read; Complete is set when they
	// were every record waiting (else a narrower look, by id, finds more).
	Scanned  int
	Complete bool
}

// Pending reads what waits in the tiers for q's topic (and id), shortest
// tier first (what fires soonest), at most MaxPendingScan records, and
// returns the matches ordered by due time. A message moving between tiers
// at the moment of the look is shown once, where it is going: messages
// hop from longer tiers to shorter ones, and shorter ones are read first.
func (s *Service) Pending(ctx context.Context, q PendingQuery) (PendingPage, error) {
	switch {
	case q.Limit == 0:
		q.Limit = DefaultPendingShown
	case q.Limit < 0 || q.Limit > MaxPendingShown:
		return PendingPage{}, sdk.Errorf(sdk.CodeIllegal, "limit: must be 1 to %d, got %d", MaxPendingShown, q.Limit)
	}
	if err := s.CheckTopic(q.Topic); err != nil {
		return PendingPage{}, err
	}
	if q.ID != "" {
		if err := ValidateID(q.ID); err != nil {
			return PendingPage{}, err
		}
	}
	if err := s.Ready(); err != nil {
		return PendingPage{}, err
	}
	page := PendingPage{Complete: true}
	seen := map[string]bool{} // id and due
	size := 0                 // the keys, values and headers in page
	now := s.opts.Clock.Now()
	for _, tier := range s.plan.tiers {
		qids, err := s.pendingRanges(ctx, tier)
		if err != nil {
			return PendingPage{}, err
		}
		for _, r := range qids {
			for next := r.Start; next < r.End; {
				if page.Scanned >= MaxPendingScan || len(page.Messages) >= q.Limit {
					page.Complete = false
					return page.sorted(), nil
				}
				res, err := s.opts.Backend.Fetch(ctx, sdk.FetchRequest{
					Positions:  []sdk.FetchPosition{{Topic: r.Topic, Qid: r.Qid, Offset: next}},
					MaxRecords: int32(min(pendingFetch, MaxPendingScan-page.Scanned)),
					MaxWait:    time.Second,
				})
				if err == nil && len(res) == 1 {
					err = res[0].Err
				}
				if err != nil {
					return PendingPage{}, fmt.Errorf("reading delay tier %s qid %s at %d: %w", r.Topic, r.Qid, next, err)
				}
				if len(res) != 1 || res[0].NextOffset <= next {
					break // the range moved on meanwhile
				}
				for i := range res[0].Records {
					rec := &res[0].Records[i]
					if rec.Offset >= r.End {
						break
					}
					page.Scanned++
					e, err := parseEnvelope(rec)
					if err != nil || e.topic != q.Topic || (q.ID != "" && e.id != q.ID) {
						continue
					}
					n := len(e.msg.Key) + len(e.msg.Value)
					for _, h := range e.msg.Headers {
						n += len(h.Key) + len(h.Value)
					}
					if len(page.Messages) == q.Limit || (len(page.Messages) > 0 && size+n > maxPendingBytes) {
						page.Complete = false
						return page.sorted(), nil
					}
					p := Pending{ID: e.id, Topic: e.topic, Due: e.due, Hop: e.hop, TierTopic: rec.Topic, Loop: e.loop, Fired: e.fired,
						Cancelled: s.cancels.cancelled(cancelKey(e.topic, e.id), now),
						Message: sdk.Record{Key: e.msg.Key, Value: e.msg.Value, Tags: e.msg.Tags, Headers: e.msg.Headers,
							Qid: rec.Qid, Offset: rec.Offset, Timestamp: rec.Timestamp}}
					key := e.id + "\x00" + ms(e.due)
					if seen[key] {
						continue // also still in the longer tier it left
					}
					seen[key] = true
					size += n
					page.Messages = append(page.Messages, p)
				}
				next = res[0].NextOffset
			}
		}
	}
	return page.sorted(), nil
}

func (p PendingPage) sorted() PendingPage {
	slices.SortStableFunc(p.Messages, func(a, b Pending) int { return cmp.Compare(a.Due.UnixMilli(), b.Due.UnixMilli()) })
	if p.Messages == nil {
		p.Messages = []Pending{}
	}
	return p
}
