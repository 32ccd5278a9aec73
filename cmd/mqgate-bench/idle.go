package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"
)

// idleScenario is -scenario idle: not a gateway-against-direct comparison
// but the CPU the gateway and its plugin processes use with no traffic at
// all, delay service included (on by default), as ms of CPU per second of
// wall time per process. It runs alone, on a gateway nothing else has
// used.
const idleScenario = "idle"

// runIdle waits settle after the gateway is ready (the delay service's
// tier workers join their groups meanwhile), then reads each process's
// CPU time (utime+stime of /proc/PID/stat) at the start and the end of
// span.
func runIdle(e *env, settle, span time.Duration) error {
	time.Sleep(settle)
	type proc struct {
		name string
		pid  int
	}
	procs := []proc{{"gateway", e.cmd.Process.Pid}}
	plugins, err := pluginPIDs(e.httpAddr)
	if err != nil {
		return err
	}
	for _, p := range plugins {
		procs = append(procs, proc{"plugin " + p.Plugin + " (" + p.Name + ")", p.PID})
	}
	start := make([]time.Duration, len(procs))
	for i, p := range procs {
		start[i] = procCPU(p.pid)
	}
	t0 := time.Now()
	time.Sleep(span)
	wall := time.Since(t0)
	fmt.Printf("idle: CPU per second of wall time over %s, %s after /readyz\n\n", span, settle)
	fmt.Println("| process | pid | CPU ms/s |")
	fmt.Println("|---|---:|---:|")
	var total float64
	for i, p := range procs {
		ms := float64((procCPU(p.pid) - start[i]).Microseconds()) / 1000 / wall.Seconds()
		total += ms
		fmt.Printf("| %s | %d | %.2f |\n", p.name, p.pid, ms)
	}
	fmt.Printf("| together | | %.2f |\n", total)
	if e.rocketmq != nil {
		fmt.Println("\n(the RocketMQ fake runs in this bench process and is not counted)")
	}
	return nil
}

// pluginStatus is what the bench reads of GET /v1/plugins.
type pluginStatus struct {
	Name      string `json:"name"`
	Plugin    string `json:"plugin"`
	PID       int    `json:"pid"`
	InProcess bool   `json:"in_process"`
}

// pluginPIDs lists the gateway's plugin processes: not the plugins that
// run in the gateway's own process, whose CPU and memory are the
// gateway's.
func pluginPIDs(httpAddr string) ([]pluginStatus, error) {
	resp, err := http.Get("http://" + httpAddr + "/v1/plugins")
	if err != nil {
		return nil, fmt.Errorf("listing plugins: %w", err)
	}
	defer resp.Body.Close()
	var ps []pluginStatus
	if err := json.NewDecoder(resp.Body).Decode(&ps); err != nil {
		return nil, fmt.Errorf("listing plugins: %w", err)
	}
	return slices.DeleteFunc(ps, func(p pluginStatus) bool { return p.InProcess }), nil
}
