package hdfs

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/mqgate/mqgate/internal/webhdfsfake"
	"github.com/mqgate/mqgate/sdk"
)

// BenchmarkWrite measures Write of 100 records of 1 KiB against the fake
// over loopback: each Write is one APPEND (a namenode request and a
// datanode request carrying the data). MB/s counts record values;
// ns/record is the time of a Write over its 100 records.
func BenchmarkWrite(b *testing.B) {
	for _, f := range []struct {
		name string
		over map[string]any
	}{
		{"text", map[string]any{"format": "text"}},
		{"avro-deflate", map[string]any{"format": "avro", "codec": "deflate"}},
		{"avro-snappy", map[string]any{"format": "avro", "codec": "snappy"}},
	} {
		b.Run(f.name, func(b *testing.B) {
			c := newClock()
			fake := startFake(b, webhdfsfake.Options{Now: c.Now})
			f.over["roll"] = map[string]any{"max_bytes": 16 << 20}
			s := newSink(b, c, testConfig(b, fake, "bench", "gw", f.over))
			b.Cleanup(func() { _ = s.Close() })
			rs := benchRecords(100, 1024)
			b.SetBytes(100 * 1024)
			ctx := context.Background()
			writes := 0
			for b.Loop() {
				res, err := s.Write(ctx, rs)
				if err != nil || res[0] != nil || res[99] != nil {
					b.Fatalf("Write: %v %v", err, res[0])
				}
				if writes++; writes%100 == 0 {
					b.StopTimer() // the fake keeps files in memory: drop the closed ones
					for _, fi := range fake.Files("/data") {
						if !strings.HasSuffix(fi.Path, inProgressSuffix) {
							_ = fake.Remove(fi.Path) // a file removed is a file removed
						}
					}
					b.StartTimer()
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(writes*100), "ns/record")
		})
	}
}

// benchRecords are n records of size bytes of log-like text: words and
// numbers, compressible as logs are, without line breaks.
func benchRecords(n, size int) []sdk.Record {
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"GET", "POST", "/api/v1/orders", "status=200", "user", "latency_ms", "region=eu-west", "ok", "trace", "{", "}", "\"id\":"}
	rs := make([]sdk.Record, n)
	for i := range rs {
		var v strings.Builder
		for v.Len() < size {
			if rng.IntN(3) == 0 {
				fmt.Fprintf(&v, "%d ", rng.IntN(1_000_000))
			} else {
				v.WriteString(words[rng.IntN(len(words))] + " ")
			}
		}
		r := record("bench", i, newClock().Now())
		r.Value = []byte(v.String()[:size])
		rs[i] = r
	}
	return rs
}
