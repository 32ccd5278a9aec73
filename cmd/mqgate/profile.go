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
	return delayed(delay, func() error { return pprof.StartCPUProfile(f) }, pprof.StopCPUProfile, f, profileEnv, stderr)
}

// delayed runs begin after delay and returns the function that runs end
// (when begin ran) and closes f; a begin error is reported on stderr under
// env's name. The returned function may run before begin, which then
// does nothing.
func delayed(delay time.Duration, begin func() error, end func(), f *os.File, env string, stderr io.Writer) func() {
	var (
		mu      sync.Mutex
		started bool
		stopped bool
	)
	t := time.AfterFunc(delay, func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		if err := begin(); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", env, err)
			return
		}
		started = true
	})
	return func() {
		t.Stop()
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		if started {
			end()
		}
		f.Close()
	}
}
