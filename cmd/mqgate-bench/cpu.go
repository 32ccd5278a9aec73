package main

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// serverCPU is what each process of the run used while one side of a
// scenario ran: the gateway, its backend plugin (on Kafka the broker runs
// in the plugin's process) and the bench itself (the load, the direct
// client, and on RocketMQ the broker fake).
type serverCPU struct {
	names []string
	used  []time.Duration
}

// meterSide starts metering the main gateway's processes for one side of
// a scenario; a scenario's untimed fill restarts it (env.fill and its
// kin), so only the timed part counts.
func (e *env) meterSide() {
	plugin := "kafka"
	if e.backend == "rocketmq" {
		plugin = "rocketmq"
	}
	if e.inProcess { // the backend and its broker are the gateway's CPU
		e.cpu = newCPUMeter("gateway with backend and broker", e.cmd.Process.Pid, "bench", os.Getpid())
	} else {
		e.cpu = newCPUMeter("gateway", e.cmd.Process.Pid, plugin+" plugin", pluginPID(e.httpAddr, plugin), "bench", os.Getpid())
	}
	e.cpu.begin()
}

// restartMeter starts the side's metering again, after an untimed fill.
func (e *env) restartMeter() {
	if e.cpu != nil {
		e.cpu.begin()
	}
}

// sideCPU ends the side's metering.
func (e *env) sideCPU() serverCPU {
	return serverCPU{names: e.cpu.names, used: e.cpu.used()}
}

// perMessage is each process's CPU in µs per message.
func (c serverCPU) perMessage(n int) string {
	if n == 0 {
		return ""
	}
	parts := make([]string, len(c.names))
	for i, name := range c.names {
		parts[i] = fmt.Sprintf("%s %.1f", name, float64(c.used[i].Microseconds())/float64(n))
	}
	return strings.Join(parts, ", ")
}

// server is the CPU of the gateway and its plugin, the server side of the
// run (the bench process is the client side).
func (c serverCPU) server() time.Duration {
	var d time.Duration
	for i, name := range c.names {
		if name != "bench" {
			d += c.used[i]
		}
	}
	return d
}

// reportCPU prints CPU µs per message of each process for both sides, and
// the server CPU per message of each: the gateway and its plugin (with the
// broker) for mqgate, the broker alone for direct.
func reportCPU(name string, g, d result) {
	if g.cpu.names == nil || d.cpu.names == nil {
		return
	}
	fmt.Printf("%s: CPU µs per message, mqgate side: %s\n", name, g.cpu.perMessage(g.msgs))
	fmt.Printf("%s: CPU µs per message, direct side: %s\n", name, d.cpu.perMessage(d.msgs))
	gs := float64(g.cpu.server().Microseconds()) / float64(g.msgs)
	ds := float64(d.cpu.server().Microseconds()) / float64(d.msgs)
	fmt.Printf("%s: server CPU µs per message: mqgate %.1f (gateway + plugin + broker), direct %.1f (broker): the gateway adds %.1f\n", name, gs, ds, gs-ds)
}
