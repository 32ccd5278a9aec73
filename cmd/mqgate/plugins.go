package main

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/mqgate/mqgate/core/config"
	"github.com/mqgate/mqgate/plugins/hbase"
	"github.com/mqgate/mqgate/plugins/hdfs"
	"github.com/mqgate/mqgate/plugins/kafka"
	"github.com/mqgate/mqgate/plugins/redis"
	"github.com/mqgate/mqgate/plugins/rocketmq"
	"github.com/mqgate/mqgate/sdk"
)

// builtins are the plugins compiled into this binary. They still run out of
// process: the plugin host executes `mqgate plugin NAME`.
var builtins = map[string]struct {
	kind  string
	serve func()
}{
	"kafka":    {sdk.KindBackend, func() { sdk.ServeBackend(kafka.New(sdk.Logger())) }},
	"rocketmq": {sdk.KindBackend, func() { sdk.ServeBackend(rocketmq.New(sdk.Logger())) }},
	"redis":    {sdk.KindSink, func() { sdk.ServeSink(redis.New(sdk.Logger())) }},
	"hbase":    {sdk.KindSink, func() { sdk.ServeSink(hbase.New(sdk.Logger())) }},
	"hdfs":     {sdk.KindSink, func() { sdk.ServeSink(hdfs.New(sdk.Logger())) }},
}

func init() {
	for name, b := range builtins {
		config.Builtins[name] = b.kind
	}
}

// servePlugin runs `mqgate plugin NAME`: the bundled plugin NAME as a
// go-plugin child of the gateway.
//
// A bundled plugin runs with Go's default GC target, not the gateway's
// defaultGCPercent: its heap is what its broker clients hold (a Kafka
// session's goroutines and fetch buffers, the embedded broker's state), not
// request bytes passing through, and nothing sets it a memory limit. With
// 1,000 consumer sessions open the Kafka plugin peaks at about 410 MiB with
// 100 against 800 MiB with 400, and holds 90 MiB rather than 320 MiB once
// they close (mqgate-bench -scenario abuse, docs/BENCHMARKS.md).
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
		debug.SetGCPercent(pluginGCPercent)
	}
	defer startProfile(".plugin-"+args[0], stderr)()
	defer startTrace(".plugin-"+args[0], stderr)()
	b.serve()
	return 0
}
