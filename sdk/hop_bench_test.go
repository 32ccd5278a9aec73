package sdk_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/mqgate/mqgate/sdk"
	pb "github.com/mqgate/mqgate/sdk/proto"
)

// discardBackend answers every record produced with success and keeps
// nothing, so a benchmark measures the plugin hop alone.
type discardBackend struct{ memBackend }

func (*discardBackend) Produce(_ context.Context, rs []sdk.Record) ([]sdk.ProduceResult, error) {
	out := make([]sdk.ProduceResult, len(rs))
	for i := range rs {
		out[i] = sdk.ProduceResult{Qid: "3", Partition: 3, Offset: int64(i)}
	}
	return out, nil
}

// BenchmarkProduceHop is the gateway-to-plugin produce call over a real
// Unix socket, as go-plugin connects them: batches of 100 records of 1 KiB
// with a key and a header, 8 callers, as unary calls, on ProduceStream and
// on the plugin connection. It reports the CPU both ends spend
// per record (both run in this process).
//
//	go test ./sdk -run '^$' -bench ProduceHop -benchtime 2000x
func BenchmarkProduceHop(b *testing.B) {
	for _, batch := range []int{1, 100} {
		for _, way := range []string{"unary", "stream", "conn"} {
			b.Run(fmt.Sprintf("batch=%d/%s", batch, way), func(b *testing.B) { benchmarkProduceHop(b, batch, way) })
		}
	}
}

func benchmarkProduceHop(b *testing.B, batch int, way string) {
	{
		{
			impl := &discardBackend{}
			be := serveUnix(b, &streamPlugin{BackendServer: sdk.NewBackendServer(impl), noStream: way == "unary"})
			if way == "conn" {
				gw, pl := socketPair(b)
				go func() { _ = sdk.ServePluginConn(context.Background(), pl, impl) }()
				sdk.AttachPluginConn(be, gw, slog.New(slog.DiscardHandler))
				waitFor(b, "the plugin connection", func() bool { return sdk.UsesPluginConn(be) })
			}
			records := make([]sdk.Record, batch)
			for i := range records {
				records[i] = sdk.Record{
					Topic: "orders", Partition: -1, Hash: uint64(i),
					Key:     []byte(fmt.Sprintf("key-%d", i)),
					Value:   make([]byte, 1024),
					Headers: []sdk.Header{{Key: "trace", Value: []byte("0af7651916cd43dd8448eb211c80319c")}},
				}
			}
			ctx := context.Background()
			cpu0 := cpuTime()
			b.ResetTimer()
			b.SetParallelism(4) // 8 callers on 2 cores
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := be.Produce(ctx, records); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N*batch), "cpu-µs/record")
		}
	}
}

// serveUnix serves impl over a Unix socket with the options the gateway
// and plugins use and returns the gateway's Backend over it.
func serveUnix(b *testing.B, impl pb.BackendServer) sdk.Backend {
	path := filepath.Join(b.TempDir(), "plugin.sock")
	lis, err := net.Listen("unix", path)
	if err != nil {
		b.Fatal(err)
	}
	srv := grpc.NewServer(sdk.ServerOptions()...)
	pb.RegisterBackendServer(srv, impl)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = srv.Serve(lis) }()
	opts := append(sdk.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	conn, err := grpc.NewClient("unix://"+path, opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close(); srv.Stop(); wg.Wait() })
	raw, err := (&sdk.BackendPlugin{}).GRPCClient(context.Background(), nil, conn)
	if err != nil {
		b.Fatal(err)
	}
	return raw.(sdk.Backend)
}

// cpuTime is the user and system CPU this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
