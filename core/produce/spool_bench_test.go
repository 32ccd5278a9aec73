package produce

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqgate/mqgate/sdk"
)

// Reproduce the figures of docs/spool.md with
//
//	go test -run '^$' -bench 'Spool' -benchtime 100000x -count 3 ./core/produce/

const spoolBenchAppenders = 16

func spoolBenchRecords(n int) []sdk.Record {
	rs := make([]sdk.Record, n)
	for i := range rs {
		v := make([]byte, 1024)
		_, _ = rand.Read(v) // never fails
		rs[i] = sdk.Record{Topic: "bench", Partition: sdk.PartitionHash, Hash: uint64(i), Key: []byte(fmt.Sprintf("key-%08d", i)), Value: v}
	}
	return rs
}

func spoolAckAll(_ context.Context, _ string, rs []sdk.Record) ([]sdk.ProduceResult, error) {
	return make([]sdk.ProduceResult, len(rs)), nil
}

// BenchmarkSpoolAppend measures records durably accepted per second:
// 16 appenders, 1 KiB records, every Append fsynced before it returns;
// with forwarding, a forwarder to a broker that acknowledges at once reads
// and deletes them meanwhile. b.N counts records.
func BenchmarkSpoolAppend(b *testing.B) {
	for _, tc := range []struct {
		perAppend int
		forward   bool
	}{
		{1, false},
		{10, false},
		{1, true},
		{10, true},
	} {
		name := fmt.Sprintf("1KiB/%dappenders/%dperAppend", spoolBenchAppenders, tc.perAppend)
		if tc.forward {
			name += "/forwarding"
		}
		b.Run(name, func(b *testing.B) {
			s, reg := openTestSpool(b, b.TempDir(), 8<<30)
			if tc.forward {
				runSpool(b, s, spoolAckAll)
			}
			recs := spoolBenchRecords(tc.perAppend)
			fsyncs := spoolMetric(b, reg, "mqgate_spool_append_fsyncs_total")
			calls := (b.N + tc.perAppend - 1) / tc.perAppend
			var next atomic.Int64
			var wg sync.WaitGroup
			b.SetBytes(1024)
			b.ResetTimer()
			for range spoolBenchAppenders {
				wg.Go(func() {
					for next.Add(1) <= int64(calls) {
						if err := s.Append(context.Background(), "c", recs); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			n := calls * tc.perAppend
			fsyncs = spoolMetric(b, reg, "mqgate_spool_append_fsyncs_total") - fsyncs
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
			b.ReportMetric(float64(calls)/fsyncs, "appends/fsync")
			if tc.forward {
				b.ReportMetric(spoolMetric(b, reg, "mqgate_spool_forwarded_total")/b.Elapsed().Seconds(), "fwd-msgs/s")
			}
		})
	}
}

// BenchmarkSpoolForward measures draining a backlog: reading records,
// sending them to a broker that acknowledges at once, and deleting them.
// b.N counts records.
func BenchmarkSpoolForward(b *testing.B) {
	s, reg := openTestSpool(b, b.TempDir(), 8<<30)
	recs := spoolBenchRecords(100)
	for i := 0; i < b.N; i += len(recs) {
		if err := s.Append(context.Background(), "c", recs[:min(len(recs), b.N-i)]); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(1024)
	b.ResetTimer()
	runSpool(b, s, spoolAckAll)
	for spoolMetric(b, reg, "mqgate_spool_depth_messages") > 0 {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
