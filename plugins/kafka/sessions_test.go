package kafka

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mqgate/mqgate/sdk"
)

// sessionFixture is an embedded backend with one topic of 4 partitions,
// holding backlog bytes of incompressible 4 KiB values. With the default
// backlog a consumer group that prefetches freely buffers megabytes: what a
// gateway's group sessions meet on any topic with a backlog.
type sessionFixture struct {
	b       *Backend
	topic   string
	backlog int
}

// sessionBacklog is the default backlog of a sessionFixture.
const sessionBacklog = 8 << 20

func newSessionFixture(t testing.TB, ctx context.Context, backlog int) sessionFixture {
	t.Helper()
	tt, ok := t.(*testing.T)
	if !ok {
		t.Fatal("newSessionFixture needs a *testing.T for its log")
	}
	f := sessionFixture{b: newEmbedded(tt, t.TempDir(), ""), topic: "backlog", backlog: backlog}
	t.Cleanup(func() { f.b.Close() })
	if err := f.b.EnsureTopics(ctx, []sdk.TopicSpec{{Name: f.topic, Partitions: 4}}); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const size, perCall = 4 << 10, 256
	for written := 0; written < backlog; written += size * perCall {
		recs := make([]sdk.Record, perCall)
		for i := range recs {
			v := make([]byte, size)
			for j := range v {
				v[j] = byte(rng.Uint32())
			}
			recs[i] = sdk.Record{Topic: f.topic, Partition: int32(i % 4), Value: v}
		}
		res, err := f.b.Produce(ctx, recs)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
		}
	}
	return f
}

// openGroups opens n consumers, each of its own group, and polls each
// until it has taken records (on an empty topic: until it has joined), as
// one pull of a new gateway session does.
func (f sessionFixture) openGroups(t testing.TB, ctx context.Context, n int) []sdk.Consumer {
	t.Helper()
	cs := make([]sdk.Consumer, 0, n)
	for i := range n {
		c, err := f.b.Consume(ctx, sdk.Subscription{Group: "g" + strconv.Itoa(i), Topics: []string{f.topic}})
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
		for {
			ev, err := c.Poll(ctx, 16)
			if err != nil {
				t.Fatalf("group %d: %v", i, err)
			}
			if len(ev.Records) > 0 || (f.backlog == 0 && len(ev.Assigned) > 0) {
				break
			}
		}
	}
	return cs
}

// settledHeap is HeapInuse after a GC, read until two readings a moment
// apart agree within 2% (clients finish the fetches they started), or
// after a few seconds.
func settledHeap() uint64 {
	read := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse
	}
	last := read()
	for range 20 {
		time.Sleep(250 * time.Millisecond) // what is measured is what is left once fetches stop
		now := read()
		if max(now, last)-min(now, last) < max(now, last)/50 {
			return now
		}
		last = now
	}
	return last
}

// sessionCount is how many groups the memory test opens:
// MQGATE_KAFKA_SESSIONS, or 40.
func sessionCount(t testing.TB) int {
	s := os.Getenv("MQGATE_KAFKA_SESSIONS")
	if s == "" {
		return 40
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("MQGATE_KAFKA_SESSIONS=%q: want a positive count", s)
	}
	return n
}

// maxSessionHeap bounds the heap one consumer group costs the plugin
// process, its client and the embedded broker's side together, with a
// backlog on the topic.
const maxSessionHeap = 1 << 20

// TestSessionHeapIsBounded: a group session that pulled once from a topic
// with a backlog costs the plugin a bounded heap, not a prefetch of the
// backlog, and closing the sessions gives it back. Measure with
//
//	MQGATE_KAFKA_SESSIONS=200 go test -run TestSessionHeapIsBounded -v ./plugins/kafka
//
// and see where the heap goes while the sessions are open with
// MQGATE_KAFKA_HEAPPROFILE=/tmp/sessions.mem (go tool pprof -sample_index=inuse_space).
func TestSessionHeapIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("opens many consumer groups")
	}
	for _, tc := range []struct {
		name    string
		backlog int
	}{
		{"empty topic", 0},
		{"8 MiB backlog", sessionBacklog},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			f := newSessionFixture(t, ctx, tc.backlog)
			n := sessionCount(t)
			base := settledHeap()
			cs := f.openGroups(t, ctx, n)
			open := settledHeap()
			per := (int64(open) - int64(base)) / int64(n)
			t.Logf("%d sessions: heap %s before, %s open: %s per session", n, mib(base), mib(open), mib(uint64(max(per, 0))))
			if path := os.Getenv("MQGATE_KAFKA_HEAPPROFILE"); path != "" && tc.backlog > 0 {
				writeHeapProfile(t, path) // while the sessions are open: -memprofile sees only the end
			}
			for _, c := range cs {
				c.Close()
			}
			closed := settledHeap()
			left := (int64(closed) - int64(base)) / int64(n)
			t.Logf("after closing them: heap %s, %s per closed session", mib(closed), mib(uint64(max(left, 0))))
			if per > maxSessionHeap {
				t.Errorf("one session costs %s of heap; want at most %s", mib(uint64(per)), mib(maxSessionHeap))
			}
			if left > maxSessionHeap/8 {
				t.Errorf("a closed session still holds %s of heap; want at most %s", mib(uint64(left)), mib(maxSessionHeap/8))
			}
		})
	}
}

// writeHeapProfile writes the heap profile (as of the last GC) to path.
func writeHeapProfile(t testing.TB, path string) {
	t.Helper()
	fh, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if err := pprof.Lookup("heap").WriteTo(fh, 0); err != nil {
		t.Fatal(err)
	}
}

func mib(n uint64) string { return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20)) }

// TestGroupReceivesRecordsLargerThanItsFetch: a group's fetch bound is not
// a record size limit: a record of several times the bound, behind a
// partition that also has records, still reaches the group.
func TestGroupReceivesRecordsLargerThanItsFetch(t *testing.T) {
	b := newEmbedded(t, t.TempDir(), "")
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const topic = "large"
	if err := b.EnsureTopics(ctx, []sdk.TopicSpec{{Name: topic, Partitions: 2}}); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 8*consumerFetchMaxBytes)
	recs := []sdk.Record{{Topic: topic, Partition: 1, Value: big}}
	for range 64 {
		recs = append(recs, sdk.Record{Topic: topic, Partition: 0, Value: make([]byte, consumerFetchMaxBytes/16)})
	}
	res, err := b.Produce(ctx, recs)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	c, err := b.Consume(ctx, sdk.Subscription{Group: "g", Topics: []string{topic}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := 0
	for got < len(recs) {
		ev, err := c.Poll(ctx, 0)
		if err != nil {
			t.Fatalf("after %d of %d records: %v", got, len(recs), err)
		}
		for _, r := range ev.Records {
			if r.Qid == "1" && len(r.Value) != len(big) {
				t.Fatalf("the large record came back with %d bytes; want %d", len(r.Value), len(big))
			}
		}
		got += len(ev.Records)
	}
}

// TestProduceWithManySessions: produce does not share a client, a lock or
// a goroutine with consumer groups: with many groups open and every one
// polling, records still go out. (The one thing they do share is the
// embedded broker, which serves requests one at a time.)
func TestProduceWithManySessions(t *testing.T) {
	if testing.Short() {
		t.Skip("opens many consumer groups")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	f := newSessionFixture(t, ctx, sessionBacklog)
	cs := f.openGroups(t, ctx, sessionCount(t))
	pollCtx, stopPolls := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopPolls()
	for _, c := range cs {
		wg.Go(func() {
			defer c.Close()
			for pollCtx.Err() == nil {
				if _, err := c.Poll(pollCtx, 64); err != nil && pollCtx.Err() == nil {
					t.Errorf("poll: %v", err)
					return
				}
			}
		})
	}
	recs := make([]sdk.Record, 16)
	for i := range recs {
		recs[i] = sdk.Record{Topic: "produced-meanwhile", Partition: sdk.PartitionRandom, Value: []byte(strconv.Itoa(i))}
	}
	res, err := f.b.Produce(ctx, recs)
	if err != nil {
		t.Fatalf("producing while %d groups poll: %v", len(cs), err)
	}
	for i, r := range res {
		if r.Err != nil || r.Offset < 0 {
			t.Errorf("record %d: offset %d, %v", i, r.Offset, r.Err)
		}
	}
}
