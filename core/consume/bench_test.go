package consume_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"log/slog"

	"github.com/mqgate/mqgate/core/consume"
	"github.com/mqgate/mqgate/core/pluginhost"
	"github.com/mqgate/mqgate/sdk"
)

// BenchmarkPullThroughPluginHost measures pull and ack through the service
// alone (no frontend), with the Kafka plugin as a real process behind the
// plugin host: 8 consumers, batches of 100, 1 KiB. It needs the mqgate
// binary: MQGATE_BIN=/tmp/mqgate go test ./core/consume -bench PluginHost.
func BenchmarkPullThroughPluginHost(b *testing.B) {
	t := b
	bin := os.Getenv("MQGATE_BIN")
	if bin == "" {
		t.Skip("MQGATE_BIN not set")
	}
	cfg := fmt.Sprintf(`{"brokers":"embedded","listen":"127.0.0.1:0","data_dir":%q}`, filepath.Join(t.TempDir(), "d"))
	var be sdk.Backend
	{
		host, err := pluginhost.New(pluginhost.Options{SelfPath: bin, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		defer host.Close()
		be, err = host.StartBackend(context.Background(), pluginhost.Spec{Name: "local", Plugin: "kafka", Builtin: "kafka", Config: []byte(cfg)})
		if err != nil {
			t.Fatal(err)
		}
	}
	e := newEnv(t, be, consume.DefaultSettings())
	n := max(b.N, 10000)
	e.produce("pb", 4, n, "b")
	var got atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	var empty atomic.Int64
	for range 8 {
		wg.Go(func() {
			for got.Load() < int64(n) {
				batch, err := e.svc.Pull(context.Background(), "g", "pb", 100, 200*time.Millisecond)
				if err != nil || len(batch.Messages) == 0 {
					empty.Add(1)
					continue
				}
				_ = e.svc.Ack(context.Background(), []consume.Ack{{Group: "g", Topic: "pb", Qid: batch.Qid, Success: offsets(batch)}})
				got.Add(int64(len(batch.Messages)))
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(got.Load())/time.Since(start).Seconds(), "msgs/s")
	b.ReportMetric(float64(empty.Load()), "empty-pulls")
}
