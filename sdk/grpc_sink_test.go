package sdk_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"google.golang.org/grpc"

	"github.com/mqgate/mqgate/sdk"
)

// memSink stores what it is given; a record whose value is "bad" fails.
type memSink struct{ got []sdk.Record }

func (m *memSink) Configure(_ context.Context, cfg []byte) error {
	if bytes.Contains(cfg, []byte("addr")) {
		return &sdk.ConfigError{Key: "addr", Msg: "not a host:port"}
	}
	return nil
}

func (m *memSink) Write(_ context.Context, rs []sdk.Record) ([]error, error) {
	errs := make([]error, len(rs))
	for i, r := range rs {
		if string(r.Value) == "bad" {
			errs[i] = sdk.Errorf(sdk.CodeIllegal, "record %d: value refused", i)
			continue
		}
		m.got = append(m.got, r)
	}
	return errs, nil
}

func (m *memSink) Close() error { return nil }

func dialSink(t *testing.T, impl sdk.Sink) sdk.Sink {
	t.Helper()
	conn := serveInMemory(t, func(srv *grpc.Server) error { return (&sdk.SinkPlugin{Impl: impl}).GRPCServer(nil, srv) })
	raw, err := (&sdk.SinkPlugin{}).GRPCClient(context.Background(), nil, conn)
	if err != nil {
		t.Fatal(err)
	}
	return raw.(sdk.Sink)
}

func TestSinkWriteHasAResultPerRecord(t *testing.T) {
	mem := &memSink{}
	s := dialSink(t, mem)
	errs, err := s.Write(context.Background(), []sdk.Record{
		{Topic: "t", Qid: "1", Offset: 7, Key: []byte("k"), Value: []byte("good"), Headers: []sdk.Header{{Key: "h", Value: []byte("v")}}},
		{Topic: "t", Value: []byte("bad")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(errs) != 2 || errs[0] != nil || sdk.CodeOf(errs[1]) != sdk.CodeIllegal {
		t.Fatalf("results = %v, want success then code 11", errs)
	}
	if len(mem.got) != 1 || mem.got[0].Offset != 7 || mem.got[0].Qid != "1" || string(mem.got[0].Headers[0].Value) != "v" {
		t.Fatalf("the sink received %+v", mem.got)
	}
	var ce *sdk.ConfigError
	if err := s.Configure(context.Background(), []byte(`{"addr": 5}`)); !errors.As(err, &ce) || ce.Key != "addr" {
		t.Fatalf("Configure = %v, want a ConfigError naming addr", err)
	}
}
