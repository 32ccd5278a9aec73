package main

import (
	"fmt"
	"io"
	"os"
	"runtime/trace"
	"time"
)

// traceEnv names a file for an execution trace of the process (go tool
// trace), for finding where a request waits when the process is not busy
// (docs/BENCHMARKS.md). A plugin process writes FILE.plugin-NAME.
const traceEnv = "MQGATE_TRACE"

// traceDelayEnv, a duration, starts the trace that long after the process
// does, so that a trace of a benchmark leaves out the gateway's start and
// the benchmark's fill.
const traceDelayEnv = "MQGATE_TRACE_DELAY"

// startTrace starts an execution trace when MQGATE_TRACE is set and
// returns the function that ends it.
func startTrace(suffix string, stderr io.Writer) func() {
	path := os.Getenv(traceEnv)
	if path == "" {
		return func() {}
	}
	var delay time.Duration
	if s := os.Getenv(traceDelayEnv); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", traceDelayEnv, err)
			return func() {}
		}
		delay = d
	}
	f, err := os.Create(path + suffix)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", traceEnv, err)
		return func() {}
	}
	return delayed(delay, func() error { return trace.Start(f) }, trace.Stop, f, traceEnv, stderr)
}
