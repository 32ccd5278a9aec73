package main

import (
	"fmt"
	"io"
	"os"
	"runtime/pprof"
)

// profileEnv names a file for a CPU profile of the process, for finding where
// time goes (docs/BENCHMARKS.md). A plugin process writes FILE.plugin-NAME.
const profileEnv = "MQGATE_CPUPROFILE"

// startProfile starts a CPU profile when MQGATE_CPUPROFILE is set and
// returns the function that ends it.
func startProfile(suffix string, stderr io.Writer) func() {
	path := os.Getenv(profileEnv)
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path + suffix)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", profileEnv, err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", profileEnv, err)
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
