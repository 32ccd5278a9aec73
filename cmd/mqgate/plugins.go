package main

import (
	"fmt"
	"io"

	"github.com/mqgate/mqgate/core/config"
	"github.com/mqgate/mqgate/plugins/kafka"
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
}

func init() {
	for name, b := range builtins {
		config.Builtins[name] = b.kind
	}
}

// servePlugin runs `mqgate plugin NAME`: the bundled plugin NAME as a
// go-plugin child of the gateway.
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
	defer startProfile(".plugin-"+args[0], stderr)()
	b.serve()
	return 0
}
