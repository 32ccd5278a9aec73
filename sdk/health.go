package sdk

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/mqgate/mqgate/sdk/proto"
)

// HealthChecker is implemented by a Backend or Sink that can tell whether
// it reaches what it serves: its brokers, or its sink's store. The gateway
// asks when /readyz is asked, so a plugin that is up but cut off from its
// brokers makes the gateway unready, naming why, rather than answering
// every request with a timeout. A plugin that does not implement it is
// taken as healthy while its process answers.
type HealthChecker interface {
	// Health returns nil when the plugin can reach its brokers, else an
	// error saying why, CodeUnavailable (17) for a broker that cannot be
	// reached. It answers within ctx's deadline, may answer from what
	// recent calls learned, and is called only on a configured plugin.
	Health(ctx context.Context) error
}

// Health asks plugin, a Backend or a Sink, whether it can reach its
// brokers: over gRPC for the gateway's end of a plugin process (a plugin
// built before the protocol had Health answers nil), directly for an
// implementation in this process. It returns nil for a plugin that does
// not implement HealthChecker.
func Health(ctx context.Context, plugin any) error {
	var resp *pb.HealthResponse
	var err error
	switch p := plugin.(type) {
	case *backendClient:
		resp, err = p.c.Health(ctx, &pb.HealthRequest{})
	case *sinkClient:
		resp, err = p.c.Health(ctx, &pb.HealthRequest{})
	case HealthChecker:
		return p.Health(ctx)
	default:
		return nil
	}
	if st, ok := status.FromError(err); ok && st.Code() == codes.Unimplemented {
		return nil
	}
	if err != nil {
		return fromStatus(err)
	}
	return errorFromPB(resp.Error)
}

// serveHealth is the plugin's end of Health for impl, a Backend or Sink.
func serveHealth(ctx context.Context, impl any) (*pb.HealthResponse, error) {
	h, ok := impl.(HealthChecker)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "the plugin does not report its health")
	}
	return &pb.HealthResponse{Error: errorToPB(h.Health(ctx))}, nil
}
