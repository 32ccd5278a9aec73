package delay

import (
	"fmt"
	"testing"
	"time"
)

func TestPlanTiers(t *testing.T) {
	p, err := NewPlan(10, 4)
	if err != nil {
		t.Fatal(err)
	}
	tiers := p.Tiers()
	if len(tiers) != 36 || tiers[0] != time.Second || tiers[8] != 9*time.Second || tiers[9] != 10*time.Second || tiers[35] != 9000*time.Second {
		t.Fatalf("tiers %v; want 1s..9s, 10s..90s, 100s..900s, 1000s..9000s", tiers)
	}
	if got := TierName("mqgate_delay_", 100*time.Second); got != "mqgate_delay_100s" {
		t.Errorf("TierName = %q", got)
	}
	for _, bad := range [][2]int{{1, 4}, {10, 0}, {1000, 9}} {
		if _, err := NewPlan(bad[0], bad[1]); err == nil {
			t.Errorf("NewPlan(%d, %d) accepted", bad[0], bad[1])
		}
	}
}

func TestPlanHops(t *testing.T) {
	p, _ := NewPlan(10, 4)
	two, _ := NewPlan(2, 3) // tiers 1s, 2s, 4s
	for _, tc := range []struct {
		plan Plan
		d    time.Duration
		want string
	}{
		// Seed 002, example 1: 119 s goes 100 s, 10 s, 9 s.
		{p, 119 * time.Second, "[1m40s 10s 9s]"},
		// Seed 002, example 2: 20001 s cycles the 9000 s tier twice, then
		// 2001 s goes 2000 s and 1 s.
		{p, 20001 * time.Second, "[2h30m0s 2h30m0s 33m20s 1s]"},
		{p, 1500 * time.Millisecond, "[1s]"}, // the 0.5 s left is held in memory
		{p, 12 * time.Second, "[10s 2s]"},    //
		{p, 999 * time.Millisecond, "[]"},    // under a second: memory only
		{p, 9000 * time.Second, "[2h30m0s]"}, // exactly a tier
		{p, 9999 * time.Second, "[2h30m0s 15m0s 1m30s 9s]"},
		{two, 7 * time.Second, "[4s 2s 1s]"},
		{two, 9 * time.Second, "[4s 4s 1s]"},
	} {
		if got := fmt.Sprint(tc.plan.Hops(tc.d)); got != tc.want {
			t.Errorf("Hops(%s) = %s; want %s", tc.d, got, tc.want)
		}
	}
	if _, ok := p.Next(999 * time.Millisecond); ok {
		t.Error("Next(999ms) found a tier")
	}
	if tier, ok := p.Next(59 * time.Second); !ok || tier != 50*time.Second {
		t.Errorf("Next(59s) = %s, %v", tier, ok)
	}
}
