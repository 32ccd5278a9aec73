package sdk

import (
	"context"
	"errors"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/mqgate/mqgate/sdk/proto"
)

// ConfigValidator is implemented by a Backend or Sink that can check a
// config without applying it. `mqgate check` starts such a plugin only to
// ask it, so a config's mistakes show before the gateway runs, all at once
// and each at its line in plugins.yaml. A plugin that does not implement it
// still works; check then notes that its config is checked only when the
// gateway starts it.
//
// A plugin implementing it must accept every config its Configure accepts,
// and refuse an unknown key naming it (DecodeConfig does both for the
// shape of a config; ValidateConfig and Configure should share the rest).
type ConfigValidator interface {
	// ValidateConfig returns every problem of config, the JSON object
	// Configure would get, or nil when Configure would accept it as far as
	// can be told without connecting to anything. It connects to nothing,
	// starts nothing and changes no state: it is called on plugin processes
	// that are never configured, and may be called concurrently with any
	// other method.
	ValidateConfig(config []byte) ConfigErrors
}

// ErrConfigNotValidated is the error of ValidateConfig for a plugin that
// cannot check a config before it starts: one that does not implement
// ConfigValidator, or one built before the plugin protocol had
// ValidateConfig. Its config is checked only by Configure.
var ErrConfigNotValidated = errors.New("plugin does not validate its config before start")

// ValidateConfig asks plugin for every problem of config without
// configuring it. plugin is a Backend or a Sink: either the gateway's end
// of a plugin process (from BackendPlugin.GRPCClient or NewBackendClient,
// and their Sink twins), which asks over gRPC, or an implementation in this
// process. The problems are the plugin's answer, nil when it accepts
// config; the error is about asking: ErrConfigNotValidated, or the call
// failing.
func ValidateConfig(ctx context.Context, plugin any, config []byte) (ConfigErrors, error) {
	switch p := plugin.(type) {
	case *backendClient:
		resp, err := p.c.ValidateConfig(ctx, &pb.ConfigureRequest{ConfigJson: config})
		return validateResult(KindBackend, resp, err)
	case *sinkClient:
		resp, err := p.c.ValidateConfig(ctx, &pb.ConfigureRequest{ConfigJson: config})
		return validateResult(KindSink, resp, err)
	case ConfigValidator:
		return p.ValidateConfig(config), nil
	}
	return nil, ErrConfigNotValidated
}

// validateResult turns the gateway's end of a ValidateConfig call to a
// plugin of kind into its problems. UNIMPLEMENTED comes from the SDK for a
// plugin without ConfigValidator and from gRPC itself for a plugin built
// before the RPC, or for one that does not serve kind at all (a sink taken
// for a backend), which gRPC tells apart as an unknown service.
func validateResult(kind string, resp *pb.ValidateConfigResponse, err error) (ConfigErrors, error) {
	if st, ok := status.FromError(err); ok && st.Code() == codes.Unimplemented {
		if strings.HasPrefix(st.Message(), "unknown service") {
			return nil, Errorf(CodeInternal, "the plugin does not serve a %s (%s)", kind, st.Message())
		}
		return nil, ErrConfigNotValidated
	}
	if err != nil {
		return nil, fromStatus(err)
	}
	if len(resp.Errors) == 0 {
		return nil, nil
	}
	return configErrorsFromPB(resp.Errors), nil
}

// serveValidateConfig is the plugin's end of ValidateConfig for impl, a
// Backend or Sink.
func serveValidateConfig(impl any, config []byte) (*pb.ValidateConfigResponse, error) {
	v, ok := impl.(ConfigValidator)
	if !ok {
		return nil, status.Error(codes.Unimplemented, ErrConfigNotValidated.Error())
	}
	return &pb.ValidateConfigResponse{Errors: configErrorsToPB(v.ValidateConfig(config))}, nil
}
