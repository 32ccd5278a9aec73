package hbase

import (
	"context"
	"fmt"
	"testing"

	"github.com/mqgate/mqgate/internal/hbasefake"
	"github.com/mqgate/mqgate/sdk"
)

// BenchmarkWrite writes batches of 100 JSON user events (the docs'
// example mapping: three columns, one table) into the fake gateway on
// loopback, and reports the cost per record. The fake's own decoding and
// storing is in the figure, as the gateway's would be.
func BenchmarkWrite(b *testing.B) {
	const batch = 100
	for _, enc := range []string{"protobuf", "json"} {
		b.Run(enc, func(b *testing.B) {
			f := startFake(b, hbasefake.Config{})
			s := newSink(b, userConfig([]string{f.URL()}, "encoding", enc))
			recs := make([]sdk.Record, batch)
			for i := range recs {
				recs[i] = record("user-events", int64(i), map[string]any{
					"user_id": fmt.Sprintf("user-%06d", i), "name": "Ann Example",
					"email": "ann@example.com", "event": "login",
				})
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				res, err := s.Write(ctx, recs)
				if err != nil {
					b.Fatal(err)
				}
				for _, e := range res {
					if e != nil {
						b.Fatal(e)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/record")
		})
	}
}
