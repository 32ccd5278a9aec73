// Command membackend serves the in-memory example broker as an mqgate
// backend plugin. The gateway starts it from plugins.yaml; started by hand,
// without the gateway's handshake cookie, it refuses to run.
package main

import (
	"github.com/mqgate/mqgate/examples/membackend"
	"github.com/mqgate/mqgate/sdk"
)

func main() { sdk.ServeBackend(membackend.New(sdk.Logger())) }
