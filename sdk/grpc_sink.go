package sdk

import (
	"context"

	pb "github.com/mqgate/mqgate/sdk/proto"
)

type sinkServer struct {
	pb.UnimplementedSinkServer
	impl Sink
}

func (s *sinkServer) Configure(ctx context.Context, req *pb.ConfigureRequest) (*pb.ConfigureResponse, error) {
	return &pb.ConfigureResponse{}, statusError(s.impl.Configure(ctx, req.ConfigJson))
}

func (s *sinkServer) ValidateConfig(_ context.Context, req *pb.ConfigureRequest) (*pb.ValidateConfigResponse, error) {
	return serveValidateConfig(s.impl, req.ConfigJson)
}

func (s *sinkServer) Health(ctx context.Context, _ *pb.HealthRequest) (*pb.HealthResponse, error) {
	return serveHealth(ctx, s.impl)
}

func (s *sinkServer) Write(ctx context.Context, req *pb.WriteRequest) (*pb.WriteResponse, error) {
	errs, err := s.impl.Write(ctx, recordsFromPB(req.Records))
	if err != nil {
		return nil, statusError(err)
	}
	if len(errs) != len(req.Records) {
		return nil, statusError(Errorf(CodeInternal, "sink returned %d results for %d records", len(errs), len(req.Records)))
	}
	out := make([]*pb.Error, len(errs))
	for i, e := range errs {
		out[i] = errorToPB(e)
		if out[i] == nil {
			out[i] = &pb.Error{} // a repeated field holds no nil: code 0 is success
		}
	}
	return &pb.WriteResponse{Errors: out}, nil
}

// NewSinkClient returns a Sink that calls a plugin over c.
func NewSinkClient(c pb.SinkClient) Sink { return &sinkClient{c: c} }

type sinkClient struct{ c pb.SinkClient }

var _ Sink = (*sinkClient)(nil)

func (s *sinkClient) Configure(ctx context.Context, config []byte) error {
	_, err := s.c.Configure(ctx, &pb.ConfigureRequest{ConfigJson: config})
	return fromStatus(err)
}

func (s *sinkClient) Write(ctx context.Context, records []Record) ([]error, error) {
	resp, err := s.c.Write(ctx, &pb.WriteRequest{Records: recordsToPB(records)})
	if err != nil {
		return nil, fromStatus(err)
	}
	if len(resp.Errors) != len(records) {
		return nil, Errorf(CodeInternal, "sink returned %d results for %d records", len(resp.Errors), len(records))
	}
	out := make([]error, len(resp.Errors))
	for i, e := range resp.Errors {
		out[i] = errorFromPB(e)
	}
	return out, nil
}

// Close does nothing: the process that serves the plugin owns its life.
func (s *sinkClient) Close() error { return nil }
