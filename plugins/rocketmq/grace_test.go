package rocketmq

import (
	"context"
	"fmt"
	"maps"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqgate/mqgate/plugins/rocketmq/internal/remoting"
	"github.com/mqgate/mqgate/plugins/rocketmq/rmqfake"
	"github.com/mqgate/mqgate/sdk"
)

// startOffsets polls c until it has been assigned every qid of want and
// returns where it starts each; it fails t after 30 s.
func startOffsets(t *testing.T, c sdk.Consumer, want []string) map[string]int64 {
	t.Helper()
	got := map[string]int64{}
	pollUntil(t, c, func() bool {
		for _, q := range want {
			if _, ok := got[q]; !ok {
				return false
			}
		}
		return true
	}, func(ev sdk.ConsumeEvent) {
		for _, o := range ev.Assigned {
			got[o.Qid] = o.Offset
		}
	}, func() string { return fmt.Sprintf("assigned %v; want %v", got, want) })
	return got
}

// A member that gave queues up keeps them from their next owner until the
// gateway's release commit of them is stored, and no longer: a commit
// without Release (a periodic one that crossed the Revoked event) lets
// nothing go, the next owner starts where the release commit left each
// queue, named in it or not, and queues the gateway never answers for are
// let go when the grace runs out. The broker's locks last an hour here:
// only the member lets a queue go.
func TestGivenUpQueuesWaitForTheReleaseCommit(t *testing.T) {
	for _, tc := range []struct {
		name string
		// secondLeaves: the second member leaves once the first has given
		// queues up, which the first then takes back.
		secondLeaves bool
		grace        time.Duration // 0: the default, which the test never waits for
		// commits are what the first member commits of the two queues it
		// gave up, in order; the last is the release commit, unless none
		// is. Every commit before it must let nothing go.
		commits func(given []string) [][]sdk.Offset
		// want is where the next owner starts each given-up queue.
		want func(given []string) map[string]int64
	}{{
		name: "a stale commit, then the release commit",
		commits: func(g []string) [][]sdk.Offset {
			return [][]sdk.Offset{
				{{Topic: "given", Qid: g[0], Offset: 1}, {Topic: "given", Qid: g[1], Offset: 1}},
				{{Topic: "given", Qid: g[0], Offset: 3, Release: true}, {Topic: "given", Qid: g[1], Offset: 2, Release: true}},
			}
		},
		want: func(g []string) map[string]int64 { return map[string]int64{g[0]: 3, g[1]: 2} },
	}, {
		name:         "a stale commit, then the release commit, taken back by the same member",
		secondLeaves: true,
		commits: func(g []string) [][]sdk.Offset {
			return [][]sdk.Offset{
				{{Topic: "given", Qid: g[0], Offset: 1}},
				{{Topic: "given", Qid: g[0], Offset: 3, Release: true}, {Topic: "given", Qid: g[1], Offset: 2, Release: true}},
			}
		},
		want: func(g []string) map[string]int64 { return map[string]int64{g[0]: 3, g[1]: 2} },
	}, {
		name: "a release commit naming one of the queues",
		commits: func(g []string) [][]sdk.Offset {
			return [][]sdk.Offset{{{Topic: "given", Qid: g[0], Offset: 3, Release: true}}}
		},
		want: func(g []string) map[string]int64 { return map[string]int64{g[0]: 3, g[1]: 0} },
	}, {
		name:    "a release commit of no offsets",
		commits: func([]string) [][]sdk.Offset { return [][]sdk.Offset{{}} },
		want:    func(g []string) map[string]int64 { return map[string]int64{g[0]: 0, g[1]: 0} },
	}, {
		name:    "no commit, until the grace runs out",
		grace:   100 * time.Millisecond,
		commits: func([]string) [][]sdk.Offset { return nil },
		want:    func(g []string) map[string]int64 { return map[string]int64{g[0]: 0, g[1]: 0} },
	}} {
		t.Run(tc.name, func(t *testing.T) {
			var unlocks atomic.Int32
			f := startFake(t, rmqfake.Options{LockLifetime: time.Hour, Handled: func(code int16) {
				if code == remoting.UnlockBatchMQ {
					unlocks.Add(1)
				}
			}})
			b := newBackend(t, fmt.Sprintf(`{"nameservers": [%q]}`, f.Addr()))
			b.revokeGrace = tc.grace
			ctx := context.Background()
			if err := b.EnsureTopics(ctx, []sdk.TopicSpec{{Name: "given", Partitions: 4}}); err != nil {
				t.Fatal(err)
			}
			var recs []sdk.Record
			for p := range int32(4) {
				for range 4 {
					recs = append(recs, sdk.Record{Topic: "given", Partition: p, Value: []byte("v")})
				}
			}
			if _, err := b.Produce(ctx, recs); err != nil {
				t.Fatal(err)
			}
			first, second, _, given := twoMembers(t, b, sdk.Subscription{Group: "g", Topics: []string{"given"}})
			next := second
			if tc.secondLeaves {
				second.Close()
				next = first
			}

			commits := tc.commits(given)
			for i, offs := range commits {
				unlocks.Store(0)
				if err := first.Commit(ctx, offs); err != nil {
					t.Fatalf("commit %d %+v of the queues given up: %v", i, offs, err)
				}
				if n := unlocks.Load(); i < len(commits)-1 && n > 0 {
					t.Fatalf("commit %d %+v, not the release commit, unlocked queues", i, offs)
				}
			}
			got := startOffsets(t, next, given)
			if want := tc.want(given); !maps.Equal(got, want) {
				t.Errorf("the next owner starts the queues given up at %v; want %v", got, want)
			}
		})
	}
}
