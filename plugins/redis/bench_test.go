package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/mqgate/mqgate/internal/testredis"
	"github.com/mqgate/mqgate/sdk"
)

// benchBatch is the batch size of the benchmarks.
const benchBatch = 100

// benchRecords are a batch of 1 KiB JSON orders.
func benchRecords() []sdk.Record {
	rs := make([]sdk.Record, benchBatch)
	for i := range rs {
		v, _ := json.Marshal(map[string]any{"id": i, "status": "paid", "total": 99.5, "customer": fmt.Sprint("c-", i),
			"items": []map[string]any{{"sku": "a-1", "qty": 2}, {"sku": "b-7", "qty": 1}},
			"note":  strings.Repeat("n", 910)})
		rs[i] = record(int64(i), string(v))
	}
	if n := len(rs[0].Value); n < 1000 || n > 1048 {
		panic(fmt.Sprintf("a benchmark record has %d bytes, not about 1 KiB", n))
	}
	return rs
}

// BenchmarkWrite writes batches of 100 1 KiB JSON orders into a hash per
// order, three fields each, through the sink. ns/record is the figure to
// compare with BenchmarkDirectPipeline.
func BenchmarkWrite(b *testing.B) {
	addr := testredis.Start(b)
	s := New(nopLogger())
	config := standalone(addr, `[{"cmd": "HSET", "key": "'order:' + string(json.id)",
		"fields": {"status": "json.status", "total": "json.total", "customer": "json.customer"}}]`)
	if err := s.Configure(context.Background(), []byte(config)); err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	rs := benchRecords()
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		res, err := s.Write(ctx, rs)
		if err != nil || res[0] != nil {
			b.Fatal(err, res[0])
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchBatch), "ns/record")
}

// BenchmarkDirectPipeline is what a program of its own would do for the
// same mapping: decode each order with encoding/json and send the HSETs
// as one go-redis pipeline.
func BenchmarkDirectPipeline(b *testing.B) {
	benchPipeline(b, func(ctx context.Context, pipe redis.Pipeliner, r sdk.Record) {
		var o struct {
			ID       int     `json:"id"`
			Status   string  `json:"status"`
			Total    float64 `json:"total"`
			Customer string  `json:"customer"`
		}
		if err := json.Unmarshal(r.Value, &o); err != nil {
			b.Fatal(err)
		}
		pipe.HSet(ctx, fmt.Sprint("order:", o.ID), "customer", o.Customer, "status", o.Status, "total", o.Total)
	})
}

// BenchmarkDirectPipelineNoJSON is the floor: the same HSETs as one
// go-redis pipeline, their fields taken from the record without reading
// its JSON.
func BenchmarkDirectPipelineNoJSON(b *testing.B) {
	benchPipeline(b, func(ctx context.Context, pipe redis.Pipeliner, r sdk.Record) {
		pipe.HSet(ctx, "order:"+string(r.Key), "customer", r.Topic, "status", r.Qid, "total", r.Offset)
	})
}

// benchPipeline sends the benchmark's batches as go-redis pipelines,
// queueing each record's commands with add.
func benchPipeline(b *testing.B, add func(ctx context.Context, pipe redis.Pipeliner, r sdk.Record)) {
	addr := testredis.Start(b)
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	rs := benchRecords()
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		pipe := rdb.Pipeline()
		for _, r := range rs {
			add(ctx, pipe, r)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchBatch), "ns/record")
}
