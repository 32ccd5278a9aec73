// Command filesink serves the example file sink as an mqgate sink plugin.
// The gateway starts it from plugins.yaml; started by hand, without the
// gateway's handshake cookie, it refuses to run.
package main

import (
	"github.com/mqgate/mqgate/examples/filesink"
	"github.com/mqgate/mqgate/sdk"
)

func main() { sdk.ServeSink(filesink.New(sdk.Logger())) }
