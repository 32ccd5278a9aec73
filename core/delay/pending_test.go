package delay_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mqgate/mqgate/core/delay"
	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/sdk"
)

// What waits in the tiers is counted per tier and listed for a topic, by
// due time, with what will be delivered and whether a cancel names it.
func TestPendingListsWhatWaits(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b sdk.Backend) {
		s := startService(t, b, nil)
		now := time.Now()
		add(t, s,
			delay.Message{Topic: "later", ID: "b", DueAt: now.Add(2 * time.Hour), Msg: produce.Message{Value: []byte("two"), Partition: sdk.PartitionHash,
				Headers: []sdk.Header{{Key: "trace", Value: []byte("x")}}}},
			delay.Message{Topic: "later", ID: "a", DueAt: now.Add(time.Hour), Msg: produce.Message{Key: []byte("k"), Value: []byte("one"), Partition: sdk.PartitionHash}},
			delay.Message{Topic: "elsewhere", ID: "c", DueAt: now.Add(time.Hour), Msg: produce.Message{Value: []byte("three"), Partition: sdk.PartitionHash}},
			// In a's tier: a look of limit 1 stops within one fetch.
			delay.Message{Topic: "later", ID: "a2", DueAt: now.Add(time.Hour + time.Second), Msg: produce.Message{Value: []byte("one too"), Partition: sdk.PartitionHash}},
		)
		ctx := context.Background()
		if err := s.Cancel(ctx, "later", "b"); err != nil {
			t.Fatal(err)
		}

		tiers, err := s.Tiers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var total int64
		for _, c := range tiers {
			total += c.Pending
		}
		if len(tiers) != len(testPlan(t).Tiers()) || total != 4 {
			t.Fatalf("Tiers = %+v; want every tier, 4 pending in all", tiers)
		}

		page, err := s.Pending(ctx, delay.PendingQuery{Topic: "later"})
		if err != nil {
			t.Fatal(err)
		}
		if !page.Complete || page.Scanned != 4 || len(page.Messages) != 3 {
			t.Fatalf("Pending = %+v; want the three of later's, all 4 records read", page)
		}
		a, bb := page.Messages[0], page.Messages[2]
		if a.ID != "a" || string(a.Message.Key) != "k" || string(a.Message.Value) != "one" || a.Cancelled || !strings.HasPrefix(a.TierTopic, "mqgate_delay_") {
			t.Errorf("first pending = %+v; want a, due first, not cancelled", a)
		}
		if bb.ID != "b" || !bb.Cancelled || len(bb.Message.Headers) != 1 || bb.Message.Headers[0].Key != "trace" || bb.Due.UnixMilli() != now.Add(2*time.Hour).UnixMilli() {
			t.Errorf("second pending = %+v; want b, cancelled, with only its own header", bb)
		}

		page, err = s.Pending(ctx, delay.PendingQuery{Topic: "later", ID: "b"})
		if err != nil || len(page.Messages) != 1 || page.Messages[0].ID != "b" {
			t.Fatalf("Pending of id b = %+v, %v", page, err)
		}
		page, err = s.Pending(ctx, delay.PendingQuery{Topic: "later", Limit: 1})
		if err != nil || len(page.Messages) != 1 || page.Complete {
			t.Fatalf("Pending with limit 1 = %+v, %v; want one and not complete", page, err)
		}
		for _, q := range []delay.PendingQuery{{Topic: "later", Limit: 101}, {Topic: "bad topic"}, {Topic: "mqgate_delay_cancel"}} {
			if _, err := s.Pending(ctx, q); err == nil {
				t.Errorf("Pending(%+v) passed", q)
			}
		}
	})
}
