package main

import (
	"runtime"
	"testing"
	"time"
)

func TestGCPercentFollowsTheHeap(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		scannable uint64
		want      int
	}{
		{0, 400},         // nothing known yet
		{16 * mib, 400},  // a plugin's usual heap: the high target
		{64 * mib, 400},  // 4 x 64 MiB is the headroom
		{128 * mib, 200}, // the heap may still grow by 256 MiB
		{200 * mib, 128},
		{256 * mib, 100}, // Go's default from here on
		{4096 * mib, 100},
	} {
		if got := gcPercentFor(tc.scannable, 256*mib, 100, 400); got != tc.want {
			t.Errorf("gcPercentFor(%d MiB) = %d, want %d", tc.scannable/mib, got, tc.want)
		}
	}
}

// TestGCTunerSetsTheTargetAfterEachCollection: the tuner hears of every
// collection, and sets the target the heap it found calls for: the
// maximum for a small heap, less as it grows, the minimum past a quarter
// of the headroom.
func TestGCTunerSetsTheTargetAfterEachCollection(t *testing.T) {
	const mib = 1 << 20
	set := make(chan int, 100)
	tuner := newGCTuner(64*mib, 100, 400, func(p int) int { set <- p; return 0 })
	tuner.arm()
	var live [][]byte
	next := func(what string) int {
		t.Helper()
		runtime.GC()
		select {
		case p := <-set:
			return p
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no target set 10 s after a collection", what)
			return 0
		}
	}
	if p := next("a small heap"); p != 400 {
		t.Fatalf("a small heap: target %d, want 400", p)
	}
	live = append(live, make([]byte, 32*mib))
	if p := next("32 MiB more"); p <= 100 || p >= 200 {
		t.Fatalf("about 34 MiB in use, 64 MiB of headroom: target %d, want about 190", p)
	}
	live = append(live, make([]byte, 64*mib))
	if p := next("64 MiB more"); p != 100 {
		t.Fatalf("about 100 MiB in use, 64 MiB of headroom: target %d, want 100", p)
	}
	runtime.KeepAlive(live)
}
