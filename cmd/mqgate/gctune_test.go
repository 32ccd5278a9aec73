package main

import (
	"runtime"
	"slices"
	"sync/atomic"
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

// The gateway's target lets a small heap grow by 64 MiB between
// collections, and never falls below the fixed 400 it had before: a large
// heap collects as it did.
func TestGatewayGCTarget(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		scannable uint64
		want      int
	}{
		{1 * mib, 6400}, // capped
		{4 * mib, 1600}, // a gateway under load: a few MiB live, and its stacks and globals
		{8 * mib, 800},
		{16 * mib, 400},
		{4096 * mib, 400},
	} {
		if got := gcPercentFor(tc.scannable, gatewayGCHeadroom, defaultGCPercent, gatewayGCPercentMax); got != tc.want {
			t.Errorf("gcPercentFor(%d MiB) = %d, want %d", tc.scannable/mib, got, tc.want)
		}
	}
}

// TestGCTunerSetsTheTargetTheHeapCallsFor: the maximum for a small heap,
// less as it grows, the minimum from the headroom on; a move of under a
// tenth sets nothing.
func TestGCTunerSetsTheTargetTheHeapCallsFor(t *testing.T) {
	const mib = 1 << 20
	var inUse uint64
	var set []int
	tuner := newGCTuner(64*mib, 100, 400, func(p int) int { set = append(set, p); return 0 }, func() uint64 { return inUse })
	for _, step := range []struct {
		inUse uint64
		want  []int
	}{
		{2 * mib, []int{400}},
		{8 * mib, []int{400}},            // still the maximum: nothing to set
		{32 * mib, []int{400, 200}},      // the heap may grow by 64 MiB
		{34 * mib, []int{400, 200}},      // 188: under a tenth from 200
		{40 * mib, []int{400, 200, 160}}, // a tenth and more
		{100 * mib, []int{400, 200, 160, 100}},
		{1000 * mib, []int{400, 200, 160, 100}},
	} {
		inUse = step.inUse
		tuner.tune()
		if !slices.Equal(set, step.want) {
			t.Fatalf("after %d MiB in use: targets set %v, want %v", step.inUse/mib, set, step.want)
		}
	}
}

// TestGCTunerRunsAfterACollection: armed, the tuner reads the heap after
// a collection, and again after the next (it re-arms itself).
func TestGCTunerRunsAfterACollection(t *testing.T) {
	var reads, stop atomic.Int32
	tuner := newGCTuner(64<<20, 100, 400, func(int) int { return 0 }, func() uint64 { reads.Add(1); return 0 })
	tuner.stopped = func() bool { return stop.Load() != 0 }
	defer stop.Store(1)
	tuner.arm()
	for want := int32(1); want <= 2; want++ {
		deadline := time.Now().Add(10 * time.Second)
		for reads.Load() < want {
			if time.Now().After(deadline) {
				t.Fatalf("%d reads of the heap 10 s after collection %d; want %d", reads.Load(), want, want)
			}
			runtime.GC()
			time.Sleep(10 * time.Millisecond)
		}
	}
}
