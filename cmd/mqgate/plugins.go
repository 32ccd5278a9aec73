package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/mqgate/mqgate/core/config"
	"github.com/mqgate/mqgate/core/pluginhost"
	"github.com/mqgate/mqgate/plugins/hbase"
	"github.com/mqgate/mqgate/plugins/hdfs"
	"github.com/mqgate/mqgate/plugins/kafka"
	"github.com/mqgate/mqgate/plugins/redis"
	"github.com/mqgate/mqgate/plugins/rocketmq"
	"github.com/mqgate/mqgate/sdk"
)

// builtins are the plugins compiled into this binary. They run out of
// process, the plugin host executing `mqgate plugin NAME`, unless
// plugins.yaml sets in_process: true for one whose inProcess is set.
//
// Only the Kafka backend may run in the gateway's process: its client has
// no global state, so several clusters' backends live side by side, and it
// honours every call's context. RocketMQ's Go client keeps process-wide
// state that starts racily, which is why even its tests run it in a process
// of its own; the sinks would save little, their time going to their
// stores.
var builtins = map[string]struct {
	kind      string
	serve     func()
	inProcess func(*slog.Logger) any
}{
	"kafka":    {sdk.KindBackend, func() { sdk.ServeBackend(kafka.New(sdk.Logger())) }, func(l *slog.Logger) any { return kafka.NewInProcess(l) }},
	"rocketmq": {sdk.KindBackend, func() { sdk.ServeBackend(rocketmq.New(sdk.Logger())) }, nil},
	"redis":    {sdk.KindSink, func() { sdk.ServeSink(redis.New(sdk.Logger())) }, nil},
	"hbase":    {sdk.KindSink, func() { sdk.ServeSink(hbase.New(sdk.Logger())) }, nil},
	"hdfs":     {sdk.KindSink, func() { sdk.ServeSink(hdfs.New(sdk.Logger())) }, nil},
}

func init() {
	clear(config.InProcessBuiltins)
	for name, b := range builtins {
		config.Builtins[name] = b.kind
		if b.inProcess != nil {
			config.InProcessBuiltins[name] = true
		}
	}
}

// inProcessBackends reports whether any cluster's backend runs in the
// gateway's process.
func inProcessBackends(cfg *config.Config) bool {
	for _, cl := range cfg.Clusters {
		if p := cfg.Plugins[cl.Plugin]; p != nil && p.InProcess {
			return true
		}
	}
	return false
}

// pluginSpec is how the plugin host starts an instance of p named name,
// configured with the JSON object config.
func pluginSpec(p *config.Plugin, name string, config []byte) pluginhost.Spec {
	spec := pluginhost.Spec{Name: name, Plugin: p.Name, Builtin: p.Builtin, Path: p.Path, SHA256: p.SHA256, Config: config}
	if p.InProcess {
		spec.InProcess = builtins[p.Builtin].inProcess // the config's check made sure there is one
	}
	return spec
}

// servePlugin runs `mqgate plugin NAME`: the bundled plugin NAME as a
// go-plugin child of the gateway.
//
// A bundled plugin's GC target follows its heap (tunePluginGC), unlike the
// gateway's fixed defaultGCPercent: its heap is what its broker clients
// hold (a Kafka session's goroutines and fetch buffers, the embedded
// broker's state), not request bytes passing through, and nothing sets it
// a memory limit. At the gateway's 400 throughout, 1,000 consumer sessions
// took the Kafka plugin to 800 MiB against 410 MiB at Go's default of 100
// (mqgate-bench -scenario abuse, docs/BENCHMARKS.md); at 100 throughout,
// collecting was a third of its CPU under load.
func servePlugin(args []string, _, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: mqgate plugin NAME (the gateway runs its bundled plugins this way)")
		return 2
	}
	b, ok := builtins[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "mqgate plugin: no bundled plugin named %q\n", args[0])
		return 2
	}
	if os.Getenv("GOGC") == "" {
		tunePluginGC()
	}
	defer startProfile(".plugin-"+args[0], stderr)()
	defer startTrace(".plugin-"+args[0], stderr)()
	b.serve()
	return 0
}
