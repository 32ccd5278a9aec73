package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"sync"
	"time"
)

// profileEnv names a file for a CPU profile of the process, for finding where
// time goes (docs/BENCHMARKS.md). A plugin process writes FILE.plugin-NAME.
const profileEnv = "MQGATE_CPUPROFILE"

// profileDelayEnv, a duration, starts the profile that long after the
// process does, so that a profile of an idle gateway leaves out its start.
const profileDelayEnv = "MQGATE_CPUPROFILE_DELAY"

// heapProfileEnv names a file for a heap profile of what the process
// still holds when it exits (after a collection), for finding what keeps
// memory. A plugin process writes FILE.plugin-NAME.
const heapProfileEnv = "MQGATE_HEAPPROFILE"

// startProfile starts a CPU profile when MQGATE_CPUPROFILE is set and
// returns the function that ends it, which also writes the heap profile
// MQGATE_HEAPPROFILE asks for.
func startProfile(suffix string, stderr io.Writer) func() {
	stopCPU := startCPUProfile(suffix, stderr)
	return func() {
		stopCPU()
		if path := os.Getenv(heapProfileEnv); path != "" {
			writeHeapProfile(path+suffix, stderr)
		}
	}
}

func writeHeapProfile(path string, stderr io.Writer) {
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", heapProfileEnv, err)
		return
	}
	defer f.Close()
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", heapProfileEnv, err)
	}
}

func startCPUProfile(suffix string, stderr io.Writer) func() {
	path := os.Getenv(profileEnv)
	if path == "" {
		return func() {}
	}
	var delay time.Duration
	if s := os.Getenv(profileDelayEnv); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", profileDelayEnv, err)
			return func() {}
		}
		delay = d
	}
	f, err := os.Create(path + suffix)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", profileEnv, err)
		return func() {}
	}
	var (
		mu      sync.Mutex
		started bool
		stopped bool
	)
	// begin runs at once (delay 0) or from a timer; the returned function
	// may run before it, and then it does nothing.
	begin := func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", profileEnv, err)
			return
		}
		started = true
	}
	t := time.AfterFunc(delay, begin)
	return func() {
		t.Stop()
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		if started {
			pprof.StopCPUProfile()
		}
		f.Close()
	}
}
