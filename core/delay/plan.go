// Package delay schedules messages for later delivery through tier topics,
// a multi-level time wheel kept in the broker: with base b and l levels
// there is one topic for each delay of d*b^k seconds, d = 1..b-1,
// k = 0..l-1. A message waits in the largest tier no longer than its time
// left, then moves on; its absolute due time travels with it, so error
// never adds up across hops, and the last remainder under a second is held
// in memory. Tier workers in every gateway share the tiers through consumer
// groups; cancels are keyed records every gateway reads.
package delay

import (
	"fmt"
	"slices"
	"strconv"
	"time"
)

// Plan is the set of tiers.
type Plan struct {
	tiers []time.Duration // ascending
}

// NewPlan returns the plan of base and levels: base >= 2, levels >= 1,
// and a largest tier that fits a time.Duration.
func NewPlan(base, levels int) (Plan, error) {
	if base < 2 {
		return Plan{}, fmt.Errorf("delay.base must be at least 2, got %d", base)
	}
	if levels < 1 {
		return Plan{}, fmt.Errorf("delay.levels must be at least 1, got %d", levels)
	}
	var p Plan
	unit := time.Second
	for k := range levels {
		if k > 0 {
			if unit > time.Duration(1<<62)/time.Duration(base) {
				return Plan{}, fmt.Errorf("delay.base %d with %d levels gives tiers too long to represent", base, levels)
			}
			unit *= time.Duration(base)
		}
		for d := 1; d < base; d++ {
			p.tiers = append(p.tiers, time.Duration(d)*unit)
		}
	}
	return p, nil
}

// Tiers lists the tiers, shortest first.
func (p Plan) Tiers() []time.Duration { return slices.Clone(p.tiers) }

// Next is the tier a message with left to wait goes to: the largest tier
// not longer than left. It reports false when left is shorter than the
// shortest tier (one second): the rest is waited out in memory.
func (p Plan) Next(left time.Duration) (time.Duration, bool) {
	i, found := slices.BinarySearch(p.tiers, left)
	if found {
		return p.tiers[i], true
	}
	if i == 0 {
		return 0, false
	}
	return p.tiers[i-1], true
}

// Hops lists the tiers a message with delay d passes through, in order,
// when every hop is on time; what remains after the last one (under a
// second) is waited out in memory.
func (p Plan) Hops(d time.Duration) []time.Duration {
	var hops []time.Duration
	for {
		t, ok := p.Next(d)
		if !ok {
			return hops
		}
		hops = append(hops, t)
		d -= t
	}
}

// TierName names a tier's topic (and its consumer group): prefix, then the
// tier in whole seconds, then "s".
func TierName(prefix string, tier time.Duration) string {
	return prefix + strconv.FormatInt(int64(tier/time.Second), 10) + "s"
}
