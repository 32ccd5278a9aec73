package main

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
)

// A bundled plugin's GC target follows its heap, between these bounds,
// so that one cycle lets its heap grow by at most pluginGCHeadroom past
// what the last cycle found in use, or by as much as Go's default would,
// if that is more.
//
// With a small heap, a plugin's usual state (a broker client's buffers
// and sessions: under 32 MiB), the target is pluginGCPercentMax:
// collecting at Go's default of 100 cost the Kafka plugin a third of its
// CPU under load (docs/BENCHMARKS.md). As its heap grows (many consumer
// sessions, the embedded broker's data) the target falls, to Go's default
// once what it holds reaches the headroom, so a big heap is never
// collected later than Go's default would: 1,000 consumer sessions peak
// at about 430 MiB, where a fixed 400 took them to 800 MiB and 100 to
// 380-410 MiB.
const (
	pluginGCPercentMin = 100
	pluginGCPercentMax = 400
	pluginGCHeadroom   = 128 << 20
)

// gcPercentFor is the GC target that lets a heap whose collector found
// scannable bytes in use (live heap, goroutine stacks and globals: what
// Go's target multiplies) grow by at most headroom, within [min, max].
func gcPercentFor(scannable, headroom uint64, lo, hi int) int {
	if scannable == 0 {
		return hi
	}
	p := headroom * 100 / scannable
	switch {
	case p < uint64(lo):
		return lo
	case p > uint64(hi):
		return hi
	}
	return int(p)
}

// gcTuner sets the GC target after each collection from what it found in
// use. It runs in a cleanup of the runtime, once per cycle, and so costs
// nothing while the process is idle. Cleanups may run concurrently; the
// tuner's never do, since it has one sentinel armed at a time (arm).
type gcTuner struct {
	headroom uint64
	lo, hi   int
	set      func(int) int // debug.SetGCPercent
	read     func() uint64 // scannableInUse
	stopped  func() bool   // for tests: no more re-arming once true
	current  int
}

// The gateway's GC target follows its heap too, within these bounds: a
// collection lets a small heap grow by gatewayGCHeadroom, and a large one
// by defaultGCPercent, as before the tuner, whichever is more.
//
// A gateway's live heap is small (a few MB: buffers of the requests in
// flight) while it allocates every request's bytes, so at 400 alone it
// collected four times a second under a load of 17k Thrift calls, and the
// calls a collection caught were most of the slowest hundredth: the
// added p99 of produce-thrift-sync was 0.86-1.37 ms at 400, 0.59-0.85 ms
// with this tuner (a headroom of 128 MiB gave 0.56-0.68 ms for 60 MiB more
// of resident memory; docs/BENCHMARKS.md). From a live heap of 16 MiB on
// (many sessions, an embedded broker in process, large bodies in flight)
// the target is defaultGCPercent, as before, and the memory limit serve
// sets bounds it all.
const (
	gatewayGCHeadroom   = 64 << 20
	gatewayGCPercentMax = 6400
)

// tunePluginGC starts the tuner of a bundled plugin process and sets its
// first target, the maximum.
func tunePluginGC() {
	t := newGCTuner(pluginGCHeadroom, pluginGCPercentMin, pluginGCPercentMax, debug.SetGCPercent, scannableInUse())
	t.tune()
	t.arm()
}

// tuneGatewayGC starts the gateway's tuner. Its first target is the
// minimum, defaultGCPercent, set already: before the first collection
// nothing in use is known, and Go would take a heap of 4 MiB for it, so
// the maximum would let the heap reach 256 MiB first.
func tuneGatewayGC() {
	t := newGCTuner(gatewayGCHeadroom, defaultGCPercent, gatewayGCPercentMax, debug.SetGCPercent, scannableInUse())
	t.current = defaultGCPercent
	t.arm()
}

func newGCTuner(headroom uint64, lo, hi int, set func(int) int, read func() uint64) *gcTuner {
	return &gcTuner{headroom: headroom, lo: lo, hi: hi, set: set, read: read, stopped: func() bool { return false }}
}

// scannableInUse returns a function that reads what the last collection
// found in use that Go's GC target multiplies: live heap, goroutine stacks
// and globals.
func scannableInUse() func() uint64 {
	samples := []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/gc/scan/stack:bytes"},
		{Name: "/gc/scan/globals:bytes"},
	}
	return func() uint64 {
		metrics.Read(samples)
		var n uint64
		for _, s := range samples {
			if s.Value.Kind() == metrics.KindUint64 {
				n += s.Value.Uint64()
			}
		}
		return n
	}
}

// tune sets the target for what the last collection found in use, when
// it moved by a tenth or more (or to a bound).
func (t *gcTuner) tune() {
	p := gcPercentFor(t.read(), t.headroom, t.lo, t.hi)
	if p == t.current {
		return
	}
	if t.current == 0 || p == t.lo || p == t.hi || p*10 < t.current*9 || p*10 > t.current*11 {
		t.set(p)
		t.current = p
	}
}

// gcSentinel is garbage the moment it is made: its cleanup runs after
// the next collection and makes the next sentinel. It holds a pointer so
// that it is never a tiny allocation, whose cleanup may never run.
type gcSentinel struct{ _ *byte }

func (t *gcTuner) arm() {
	runtime.AddCleanup(new(gcSentinel), func(t *gcTuner) {
		if t.stopped() {
			return
		}
		t.tune()
		t.arm()
	}, t)
}
