package admin

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestLagHistoryKeepsAnHourOfBoundedGroups(t *testing.T) {
	groups := []string{"a", "b", "c"}
	lag := map[string]int64{"a": 5, "b": 7}
	h := NewLagHistory(LagHistoryOptions{
		Groups: func() []string { return groups },
		Lag: func(_ context.Context, g string) (int64, error) {
			if n, ok := lag[g]; ok {
				return n, nil
			}
			return 0, errors.New("no stats")
		},
		Every: time.Minute, Keep: 3, MaxGroups: 2,
	})
	start := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	all := func(string) bool { return true }
	for i := range 5 {
		lag["a"] = int64(10 - i)
		h.Sample(context.Background(), start.Add(time.Duration(i)*time.Minute))
	}
	got := h.Groups(all)
	if len(got) != 2 || len(got["a"]) != 3 || len(got["b"]) != 3 || got["c"] != nil {
		t.Fatalf("after 5 samples: %+v; want a and b (c is past MaxGroups) with the last 3 each", got)
	}
	if p := got["a"]; p[0].Lag != 8 || p[2].Lag != 6 || p[2].AtMs != start.Add(4*time.Minute).UnixMilli() {
		t.Errorf("a's samples %+v; want 8, 7, 6 oldest first", p)
	}
	// A group gone from this gateway keeps its samples until they age out.
	groups = nil
	h.Sample(context.Background(), start.Add(6*time.Minute))
	if got := h.Groups(all); len(got["a"]) != 1 {
		t.Errorf("a minute after the group left: %+v; want its last sample", got["a"])
	}
	h.Sample(context.Background(), start.Add(8*time.Minute))
	if got := h.Groups(all); len(got) != 0 {
		t.Errorf("an hour (3 samples) after: %+v; want nothing", got)
	}
	if got := h.Groups(func(g string) bool { return g != "a" }); got["a"] != nil {
		t.Errorf("a filtered out, yet shown")
	}
}
