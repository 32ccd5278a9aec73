package sdk

import (
	"context"
	"net"
	"time"

	pb "github.com/mqgate/mqgate/sdk/proto"
)

// SetMaxBatchMessageBytes lowers the batch split size for a test and returns
// the function that restores it.
func SetMaxBatchMessageBytes(n int) (restore func()) {
	old := maxBatchMessageBytes
	maxBatchMessageBytes = n
	return func() { maxBatchMessageBytes = old }
}

// NewBackendServer is the plugin side of the Backend service over impl,
// for tests that wrap it.
func NewBackendServer(impl Backend) pb.BackendServer { return &backendServer{impl: impl} }

// ServePluginConn serves a plugin's end of a plugin connection over impl
// until conn fails or ctx ends.
func ServePluginConn(ctx context.Context, conn net.Conn, impl Backend) error {
	return servePluginConn(ctx, conn, &backendServer{impl: impl})
}

// SetConnStallTimeout shortens how long a plugin connection waits for the
// rest of an abandoned frame, and returns the function that restores it.
func SetConnStallTimeout(d time.Duration) (restore func()) {
	old := connStallTimeout
	connStallTimeout = d
	return func() { connStallTimeout = old }
}
