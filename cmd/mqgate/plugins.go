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

func servePlugin(name string, stderr io.Writer) int {
	b, ok := builtins[name]
	if !ok {
		fmt.Fprintf(stderr, "mqgate plugin: no bundled plugin named %q\n", name)
		return 2
	}
	b.serve()
	return 0
}
