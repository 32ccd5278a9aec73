package sdk

import (
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	pb "github.com/mqgate/mqgate/sdk/proto"
)

// fillPB sets the fields of p, a zero pb.Record, from r.
func fillPB(p *pb.Record, r *Record) {
	p.Topic = r.Topic
	p.Qid = r.Qid
	p.Partition = r.Partition
	p.Hash = r.Hash
	p.Offset = r.Offset
	p.HasKey = r.Key != nil
	p.Key = r.Key
	p.Value = r.Value
	p.Tags = r.Tags
	if !r.Timestamp.IsZero() {
		p.TimestampMs = r.Timestamp.UnixMilli()
	}
	if len(r.Headers) > 0 {
		p.Headers = make([]*pb.Header, len(r.Headers))
		for i, h := range r.Headers {
			p.Headers[i] = &pb.Header{Key: h.Key, Value: h.Value}
		}
	}
}

func recordFromPB(p *pb.Record) Record {
	r := Record{
		Topic:     p.Topic,
		Qid:       p.Qid,
		Partition: p.Partition,
		Hash:      p.Hash,
		Offset:    p.Offset,
		Value:     p.Value,
		Tags:      p.Tags,
	}
	if p.HasKey {
		r.Key = p.Key
		if r.Key == nil {
			r.Key = []byte{}
		}
	}
	if r.Value == nil {
		r.Value = []byte{}
	}
	if p.TimestampMs != 0 {
		r.Timestamp = time.UnixMilli(p.TimestampMs)
	}
	if len(p.Headers) > 0 {
		r.Headers = make([]Header, len(p.Headers))
		for i, h := range p.Headers {
			r.Headers[i] = Header{Key: h.Key, Value: h.Value}
		}
	}
	return r
}

// recordsToPB makes the messages of rs together, in one allocation, not
// one each (a record's headers take more of their own). They live as long
// as the call or frame that carries them.
func recordsToPB(rs []Record) []*pb.Record {
	out := make([]*pb.Record, len(rs))
	ps := make([]pb.Record, len(rs))
	for i := range rs {
		fillPB(&ps[i], &rs[i])
		out[i] = &ps[i]
	}
	return out
}

func recordsFromPB(ps []*pb.Record) []Record {
	out := make([]Record, len(ps))
	for i, p := range ps {
		out[i] = recordFromPB(p)
	}
	return out
}

func offsetsToPB(os []Offset) []*pb.Offset {
	out := make([]*pb.Offset, len(os))
	for i, o := range os {
		out[i] = &pb.Offset{Topic: o.Topic, Qid: o.Qid, Offset: o.Offset, Release: o.Release}
	}
	return out
}

func offsetsFromPB(ps []*pb.Offset) []Offset {
	out := make([]Offset, len(ps))
	for i, p := range ps {
		out[i] = Offset{Topic: p.Topic, Qid: p.Qid, Offset: p.Offset, Release: p.Release}
	}
	return out
}

// errorToPB carries err's code and message; nil stays nil.
func errorToPB(err error) *pb.Error {
	if err == nil {
		return nil
	}
	var ce *ConfigError
	if errors.As(err, &ce) {
		return &pb.Error{Code: int32(CodeIllegal), Message: ce.Msg, ConfigKey: ce.Key}
	}
	return &pb.Error{Code: int32(CodeOf(err)), Message: err.Error(), Lasting: errors.Is(err, ErrLasting)}
}

// errorFromPB is errorToPB's inverse. Code 0 is success: a repeated field
// of Error (WriteResponse.errors) cannot hold nil, so a success travels as
// an empty Error.
func errorFromPB(e *pb.Error) error {
	if e == nil || (e.Code == int32(CodeOK) && e.ConfigKey == "") {
		return nil
	}
	if e.ConfigKey != "" {
		return &ConfigError{Key: e.ConfigKey, Msg: e.Message}
	}
	if e.Lasting {
		return Lasting(&Error{Code: Code(e.Code), Msg: e.Message})
	}
	return &Error{Code: Code(e.Code), Msg: e.Message}
}

// statusError turns a call's error into a gRPC status that carries the
// mqgate error as a detail, so the other side gets the same code back. A
// config refused for several reasons carries one detail per problem.
func statusError(err error) error {
	if err == nil {
		return nil
	}
	grpcCode := codes.Unknown
	switch CodeOf(err) {
	case CodeTimeout:
		grpcCode = codes.DeadlineExceeded
	case CodeUnavailable:
		grpcCode = codes.Unavailable
	case CodeIllegal:
		grpcCode = codes.InvalidArgument
	}
	details := []protoadapt.MessageV1{protoadapt.MessageV1Of(errorToPB(err))}
	if ces := ConfigErrorsOf(err); len(ces) > 1 {
		details = details[:0]
		for _, e := range configErrorsToPB(ces) {
			details = append(details, protoadapt.MessageV1Of(e))
		}
	}
	st := status.New(grpcCode, err.Error())
	if withDetails, derr := st.WithDetails(details...); derr == nil {
		st = withDetails
	}
	return st.Err()
}

// fromStatus turns an error from a gRPC call into an mqgate error: the
// detail the plugin attached (ConfigErrors when it attached several, one
// per problem of a config), or a code derived from the gRPC status. A
// plugin that is gone or restarting gives CodeUnavailable, which callers may
// retry.
func fromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	var details []*pb.Error
	for _, d := range st.Details() {
		if e, ok := d.(*pb.Error); ok {
			details = append(details, e)
		}
	}
	switch {
	case len(details) == 1:
		return errorFromPB(details[0])
	case len(details) > 1:
		return configErrorsFromPB(details)
	}
	switch st.Code() {
	case codes.DeadlineExceeded:
		return &Error{Code: CodeTimeout, Msg: "plugin call timed out: " + st.Message()}
	case codes.Unavailable, codes.Canceled, codes.Aborted:
		return &Error{Code: CodeUnavailable, Msg: "backend unavailable: " + st.Message()}
	case codes.ResourceExhausted:
		return &Error{Code: CodeTooLarge, Msg: st.Message()}
	case codes.InvalidArgument:
		return &Error{Code: CodeIllegal, Msg: st.Message()}
	}
	return &Error{Code: CodeInternal, Msg: st.Message()}
}

// configErrorsToPB carries the problems of a config, one Error each.
func configErrorsToPB(es ConfigErrors) []*pb.Error {
	out := make([]*pb.Error, 0, len(es))
	for _, e := range es {
		if e != nil {
			out = append(out, &pb.Error{Code: int32(CodeIllegal), Message: e.Msg, ConfigKey: e.Key})
		}
	}
	return out
}

// configErrorsFromPB is configErrorsToPB's inverse: every Error is a
// problem of the config, the ones without a key included.
func configErrorsFromPB(ps []*pb.Error) ConfigErrors {
	out := make(ConfigErrors, len(ps))
	for i, p := range ps {
		out[i] = &ConfigError{Key: p.ConfigKey, Msg: p.Message}
	}
	return out
}
