package consume

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// maxRefreshBatch bounds the records one refresh writes; the rest wait
// for the next.
const maxRefreshBatch = 1000

// refreshLoop runs refreshOnce every eighth of Refresh (at least a minute,
// with a random share more, so that gateways do not all refresh at once)
// until ctx ends.
func (s *Subscriptions) refreshLoop(ctx context.Context) {
	every := max(s.opts.Refresh/8, time.Minute)
	for {
		sleep(ctx, every+rand.N(every/4+1))
		if ctx.Err() != nil {
			return
		}
		if err := s.refreshOnce(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("refreshing the subscriptions; trying again later", "topic", SubscriptionsTopic, "error", err)
		}
	}
}

// refreshOnce forgets removals older than 2 x Refresh and, when the broker
// does not compact the topic (RocketMQ keeps a topic's records only for
// its retention, fileReservedTime), writes again every change whose latest
// record is Refresh old, so the latest record of each subscription and
// recent removal is never the one retention takes. Another gateway that
// reads the rewrite does not write it too.
//
// A rewrite carries the change's own time and is marked a refresh: if a
// newer change was made meanwhile, through any gateway, the rewrite stands
// for nothing wherever it is read, however records are ordered; removals
// are rewritten for as long as such a stale rewrite may outlive them.
func (s *Subscriptions) refreshOnce(ctx context.Context) error {
	if err := s.sync(ctx); err != nil {
		return err
	}
	now := s.opts.Now()
	s.mu.Lock()
	var due []subRecord
	for k, e := range s.removed {
		if now.Sub(time.UnixMilli(e.rec.AtMs)) >= 2*s.opts.Refresh {
			delete(s.removed, k)
		} else if now.Sub(e.written) >= s.opts.Refresh {
			due = append(due, e.rec)
		}
	}
	for _, topics := range s.dynamic {
		for _, e := range topics {
			if now.Sub(e.written) >= s.opts.Refresh {
				due = append(due, e.rec)
			}
		}
	}
	compacted := s.compacted
	s.mu.Unlock()
	if compacted || len(due) == 0 {
		return nil
	}
	slices.SortFunc(due, func(a, b subRecord) int { return strings.Compare(string(a.key()), string(b.key())) })
	due = due[:min(len(due), maxRefreshBatch)]
	for i := range due {
		due[i].Refresh = true
	}
	return s.write(ctx, due)
}
