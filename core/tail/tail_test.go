package tail_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mqgate/mqgate/core/tail"
	"github.com/mqgate/mqgate/internal/brokertest"
	"github.com/mqgate/mqgate/sdk"
)

// A tail reads a topic from its start, then what is written after, and
// Sync lets a writer go only once its record has been handed to apply.
func TestTailFollowsAndSyncs(t *testing.T) {
	t.Parallel()
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		const topic = "followed"
		if err := b.EnsureTopics(ctx, []sdk.TopicSpec{{Name: topic, Partitions: 2}}); err != nil {
			t.Fatal(err)
		}
		produce := func(v string) {
			t.Helper()
			for {
				res, err := b.Produce(ctx, []sdk.Record{{Topic: topic, Partition: sdk.PartitionRandom, Key: []byte(v), Value: []byte(v)}})
				if err == nil {
					err = res[0].Err
				}
				if err == nil {
					return
				}
				if ctx.Err() != nil {
					t.Fatal(err)
				}
				time.Sleep(50 * time.Millisecond) // a topic just made may not be routable yet
			}
		}
		produce("before")
		var mu sync.Mutex
		seen := map[string]bool{}
		tl := tail.New(b, topic, 200*time.Millisecond)
		readCtx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Go(func() {
			for readCtx.Err() == nil {
				_ = tl.ReadOnce(readCtx, func(recs []sdk.Record) { // an error is retried by the loop
					mu.Lock()
					defer mu.Unlock()
					for _, r := range recs {
						seen[string(r.Value)] = true
					}
				})
			}
		})
		defer func() { stop(); wg.Wait() }()
		for _, v := range []string{"after-1", "after-2"} {
			produce(v)
			if err := tl.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			ok := seen["before"] && seen[v]
			mu.Unlock()
			if !ok {
				t.Fatalf("Sync returned before %s was applied: %v", v, seen)
			}
		}
		done, cancelDone := context.WithCancel(ctx)
		cancelDone()
		if err := tl.WaitRead(done, []sdk.QidOffsets{{Qid: "no-such-qid", End: 1}}); err == nil {
			t.Fatal("WaitRead of a position never reached returned no error on a done context")
		}
	})
}
