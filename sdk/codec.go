package sdk

import (
	"cmp"
	"fmt"

	"github.com/mqgate/mqgate/internal/bufpool"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/mem"

	// Registers the "proto" codec, which codec falls back to.
	_ "google.golang.org/grpc/encoding/proto"
)

// vtMessage is a message with the marshalling code vtprotobuf generates
// (sdk/proto/plugin_vtproto.pb.go): no reflection, no per-field lookups.
type vtMessage interface {
	SizeVT() int
	MarshalToSizedBufferVT([]byte) (int, error)
	UnmarshalVT([]byte) error
}

// codec is the plugin protocol's gRPC codec, on both ends. It writes the
// bytes gRPC's own codec writes and reads what that codec reads, so either
// end may use the other's (a plugin built with an older sdk, say), but
// through the generated code, and into buffers from pool. It keeps the name
// "proto". The generated code differs only on input no conforming peer
// writes (FuzzCodec holds it to that): it does not check that strings are
// UTF-8 (a Thrift client's tags can be any bytes; Go plugins take them),
// refuses a known field with another wire type, and skips malformed
// unknown fields that gRPC's codec refuses.
type codec struct {
	fallback encoding.CodecV2
	pool     mem.BufferPool
}

func (c codec) Name() string { return c.fallback.Name() }

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(vtMessage)
	if !ok {
		return c.fallback.Marshal(v)
	}
	size := m.SizeVT()
	if mem.IsBelowBufferPoolingThreshold(size) {
		buf := make([]byte, size)
		if n, err := m.MarshalToSizedBufferVT(buf); err != nil || n != size {
			return nil, cmp.Or(err, fmt.Errorf("proto: message of %d bytes marshalled to %d (changed concurrently?)", size, n))
		}
		return mem.BufferSlice{mem.SliceBuffer(buf)}, nil
	}
	buf := c.pool.Get(size)
	n, err := m.MarshalToSizedBufferVT((*buf)[:size])
	if err == nil && n != size {
		// Changed while being marshalled: the buffer, not zeroed, would
		// carry stale bytes.
		err = fmt.Errorf("proto: message of %d bytes marshalled to %d (changed concurrently?)", size, n)
	}
	if err != nil {
		c.pool.Put(buf)
		return nil, err
	}
	return mem.BufferSlice{mem.NewBuffer(buf, c.pool)}, nil
}

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(vtMessage)
	if !ok {
		return c.fallback.Unmarshal(data, v)
	}
	// UnmarshalVT copies bytes and strings out of buf, so it may go back
	// to the pool at once.
	buf := data.MaterializeToBuffer(c.pool)
	defer buf.Free()
	return m.UnmarshalVT(buf.ReadOnlyData())
}

// pool is the buffer pool of both ends of the plugin protocol.
//
// gRPC's default pool has five size classes (256 B to 1 MiB) and zeroes a
// buffer on every Get: a batch of 100 KiB took a 1 MiB buffer and cleared
// all of it, a fifth of the plugin hop's CPU. This one has a class per
// power of two and does not zero, since every user of a buffer (the
// codec above, gRPC's reads into it) writes all the bytes it then reads.
var pool = &bufpool.Pool{}

// theCodec is codec over gRPC's own proto codec and pool.
var theCodec = codec{fallback: encoding.GetCodecV2("proto"), pool: pool}

// codecDialOptions are what DialOptions adds for the codec.
func codecDialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(theCodec)),
		experimental.WithBufferPool(pool),
		grpc.WithInitialWindowSize(streamWindow),
		grpc.WithInitialConnWindowSize(connWindow),
	}
}

// codecServerOptions are what a plugin's server adds for the codec.
func codecServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.ForceServerCodecV2(theCodec), experimental.BufferPool(pool),
		grpc.InitialWindowSize(streamWindow), grpc.InitialConnWindowSize(connWindow)}
}

// Flow-control windows of the plugin connection. One ProduceStream and one
// Consume stream per subscription carry batches of up to megabytes; with
// gRPC's 64 KiB start each batch waits for window updates.
const (
	streamWindow = 8 << 20
	connWindow   = 32 << 20
)
