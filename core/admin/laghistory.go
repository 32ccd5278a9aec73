package admin

import (
	"context"
	"sync"
	"time"
)

// LagPoint is a group's total lag at a time.
type LagPoint struct {
	AtMs int64 `json:"at_ms"`
	Lag  int64 `json:"lag"`
}

// LagHistoryOptions wire a LagHistory to the gateway.
type LagHistoryOptions struct {
	// Groups lists the groups to sample: those consuming through this
	// gateway.
	Groups func() []string
	// Lag is a group's total lag over the topics it reads (the stats
	// routes' figure).
	Lag func(ctx context.Context, group string) (int64, error)
	// Every is the time between samples (default a minute); Keep how
	// many each group keeps (default 60: an hour).
	Every time.Duration
	Keep  int
	// MaxGroups bounds the groups sampled (default 100), the first by
	// name.
	MaxGroups int
}

// LagHistory samples the total lag of the groups consuming through this
// gateway, for the console's chart of the last hour: bounded in groups
// and in samples, kept in memory only.
type LagHistory struct {
	opts LagHistoryOptions
	mu   sync.Mutex
	lag  map[string][]LagPoint
}

// NewLagHistory returns a LagHistory; Run samples.
func NewLagHistory(opts LagHistoryOptions) *LagHistory {
	if opts.Every <= 0 {
		opts.Every = time.Minute
	}
	if opts.Keep <= 0 {
		opts.Keep = 60
	}
	if opts.MaxGroups <= 0 {
		opts.MaxGroups = 100
	}
	return &LagHistory{opts: opts, lag: map[string][]LagPoint{}}
}

// Every is the time between samples.
func (h *LagHistory) Every() time.Duration { return h.opts.Every }

// Run samples every Every until ctx ends.
func (h *LagHistory) Run(ctx context.Context) {
	t := time.NewTicker(h.opts.Every)
	defer t.Stop()
	for {
		h.Sample(ctx, time.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sample takes one sample of every group at now. A group no longer
// consuming here keeps its samples until they are an hour (Keep samples)
// old; one whose lag cannot be read is skipped this time.
func (h *LagHistory) Sample(ctx context.Context, now time.Time) {
	groups := h.opts.Groups()
	if len(groups) > h.opts.MaxGroups {
		groups = groups[:h.opts.MaxGroups]
	}
	got := make(map[string]int64, len(groups))
	for _, g := range groups {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		lag, err := h.opts.Lag(sctx, g)
		cancel()
		if err == nil {
			got[g] = lag
		}
	}
	oldest := now.Add(-time.Duration(h.opts.Keep) * h.opts.Every).UnixMilli()
	h.mu.Lock()
	defer h.mu.Unlock()
	for g, lag := range got {
		if _, kept := h.lag[g]; !kept && len(h.lag) >= 2*h.opts.MaxGroups {
			continue // groups come and go: at most twice MaxGroups kept
		}
		h.lag[g] = append(h.lag[g], LagPoint{AtMs: now.UnixMilli(), Lag: lag})
	}
	for g, pts := range h.lag {
		i := 0
		for i < len(pts) && (pts[i].AtMs <= oldest || len(pts)-i > h.opts.Keep) {
			i++
		}
		switch {
		case i == len(pts):
			delete(h.lag, g)
		case i > 0:
			h.lag[g] = append([]LagPoint(nil), pts[i:]...)
		}
	}
}

// Groups returns the samples of every group keep allows, oldest first.
func (h *LagHistory) Groups(keep func(group string) bool) map[string][]LagPoint {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string][]LagPoint{}
	for g, pts := range h.lag {
		if keep(g) {
			out[g] = append([]LagPoint(nil), pts...)
		}
	}
	return out
}
