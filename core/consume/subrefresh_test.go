package consume

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/internal/brokertest"
	"github.com/mqgate/mqgate/sdk"
)

// On a broker without compaction (RocketMQ) a refresh writes the latest
// change of each subscription and recent removal again, so retention
// never takes it; a stale rewrite of an older change, read after a newer
// one, stands for nothing, on a gateway that follows the topic and on one
// that reads it from the start. A compacting broker (Kafka) gets no
// rewrites.
func TestSubscriptionRefresh(t *testing.T) {
	t.Parallel()
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		// The gateways' clock, which the test moves ahead.
		var ahead atomic.Int64
		now := func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
		p := produce.NewProducer(map[string]sdk.Backend{"local": b}, produce.Options{Logger: slog.New(slog.DiscardHandler)})
		open := func() *Subscriptions {
			s := NewSubscriptions(SubscriptionOptions{Backend: b, Cluster: "local", Send: p.SendRecords,
				MaxTopicsPerGroup: 10, MaxGroups: 10, MaxRecordBytes: 4096, Refresh: time.Hour, Now: now,
				Logger: slog.New(slog.DiscardHandler)})
			s.Start()
			t.Cleanup(s.Close)
			return s
		}
		s := open()
		if _, _, err := s.Subscribe(ctx, "g", "kept", "a"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Subscribe(ctx, "g", "dropped", "a"); err != nil {
			t.Fatal(err)
		}
		added := s.dynamic["g"]["dropped"].rec
		if _, err := s.Unsubscribe(ctx, "g", "dropped", "a"); err != nil {
			t.Fatal(err)
		}
		// A stale rewrite of the add, as a gateway that read it before
		// the removal would write.
		stale := added
		stale.Refresh = true
		if err := s.write(ctx, []subRecord{stale}); err != nil {
			t.Fatal(err)
		}
		end := func() int64 {
			offs, err := b.ListOffsets(ctx, []string{SubscriptionsTopic}, "")
			if err != nil {
				t.Fatal(err)
			}
			var n int64
			for _, o := range offs {
				n += o.End
			}
			return n
		}
		s.mu.Lock()
		compacted := s.compacted
		s.mu.Unlock()
		refresh := func(want int64) {
			t.Helper()
			before := end()
			if err := s.refreshOnce(ctx); err != nil {
				t.Fatal(err)
			}
			if compacted {
				want = 0
			}
			if got := end() - before; got != want {
				t.Fatalf("a refresh wrote %d records; want %d", got, want)
			}
		}
		ahead.Add(int64(90 * time.Minute))
		refresh(2) // the subscription and the removal, 90 minutes old
		ahead.Add(int64(90 * time.Minute))
		refresh(1) // the subscription; the removal is past 2 x Refresh and forgotten
		for name, st := range map[string]*Subscriptions{"following": s, "reading from the start": open()} {
			subs, err := st.Topics(ctx, "g")
			if err != nil || len(subs) != 1 || subs[0].Topic != "kept" {
				t.Fatalf("a gateway %s reads %+v, %v; want only kept", name, subs, err)
			}
		}
	})
}
