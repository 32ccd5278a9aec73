package sdk_test

import (
	"context"
	"slices"
	"testing"

	"google.golang.org/grpc"

	"github.com/mqgate/mqgate/sdk"
	pb "github.com/mqgate/mqgate/sdk/proto"
)

// cutOff is a backend whose brokers cannot be reached.
type cutOff struct{ memBackend }

var _ sdk.HealthChecker = (*cutOff)(nil)

func (*cutOff) Health(context.Context) error {
	return sdk.Errorf(sdk.CodeUnavailable, "brokers unreachable: dial tcp 127.0.0.1:1: connect: connection refused")
}

// cutOffSink is cutOff's sink twin.
type cutOffSink struct{ memSink }

func (*cutOffSink) Health(context.Context) error {
	return sdk.Errorf(sdk.CodeUnavailable, "store unreachable")
}

// withoutHealth registers the Backend service as a plugin built before
// Health existed serves it.
func withoutHealth(srv *grpc.Server) error {
	desc := pb.Backend_ServiceDesc
	desc.Methods = slices.DeleteFunc(slices.Clone(desc.Methods), func(m grpc.MethodDesc) bool { return m.MethodName == "Health" })
	srv.RegisterService(&desc, pb.UnimplementedBackendServer{})
	return nil
}

// Health crosses gRPC with its code and reason; a plugin that cannot tell,
// or was built before Health, is taken as healthy.
func TestHealthOverGRPC(t *testing.T) {
	for _, tc := range []struct {
		name   string
		plugin func(t *testing.T) any
		want   string // "" for healthy
	}{
		{"backend cut off", func(t *testing.T) any { return dial(t, &cutOff{}) }, "brokers unreachable: dial tcp 127.0.0.1:1: connect: connection refused"},
		{"sink cut off", func(t *testing.T) any { return dialSink(t, &cutOffSink{}) }, "store unreachable"},
		{"backend without HealthChecker", func(t *testing.T) any { return dial(t, &memBackend{}) }, ""},
		{"plugin built before Health", func(t *testing.T) any { return dialServer(t, withoutHealth) }, ""},
		{"implementation in this process", func(*testing.T) any { return &cutOff{} }, "brokers unreachable: dial tcp 127.0.0.1:1: connect: connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := sdk.Health(context.Background(), tc.plugin(t))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Health = %v, want nil", err)
			case tc.want != "" && (err == nil || err.Error() != tc.want || sdk.CodeOf(err) != sdk.CodeUnavailable):
				t.Fatalf("Health = %v (code %d), want %q with code 17", err, sdk.CodeOf(err), tc.want)
			}
		})
	}
}
