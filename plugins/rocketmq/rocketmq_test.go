package rocketmq

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqgate/mqgate/plugins/rocketmq/internal/remoting"
	"github.com/mqgate/mqgate/plugins/rocketmq/rmqfake"
	"github.com/mqgate/mqgate/sdk"
	"github.com/mqgate/mqgate/sdk/plugintest"
)

// startFake runs a RocketMQ protocol fake for the test.
func startFake(t *testing.T, opts rmqfake.Options) *rmqfake.Fake {
	t.Helper()
	f, err := rmqfake.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// newBackend returns a backend configured against nameserver; the test
// closes it.
func newBackend(t *testing.T, config string) *Backend {
	t.Helper()
	b := New(slog.New(slog.DiscardHandler))
	if err := b.Configure(context.Background(), []byte(config)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestConformance(t *testing.T) {
	f := startFake(t, rmqfake.Options{})
	plugintest.RunBackend(t, func(t *testing.T) sdk.Backend {
		b := New(slog.New(slog.DiscardHandler))
		if err := b.Configure(context.Background(), fmt.Appendf(nil, `{"nameservers": [%q]}`, f.Addr())); err != nil {
			t.Fatal(err)
		}
		return b
	}, plugintest.HeadersAsProperties())
}

// What mqgate check is told of a config is what Configure finds.
func TestConfigValidation(t *testing.T) {
	f := startFake(t, rmqfake.Options{})
	plugintest.RunConfigValidation(t, func(*testing.T) plugintest.Plugin { return New(slog.New(slog.DiscardHandler)) },
		fmt.Appendf(nil, `{"nameservers": [%q], "send_timeout": "3s", "namespace": "ns"}`, f.Addr()))
}

// collect polls c until it holds exactly want qids of topic, applying
// Assigned and Revoked events; it fails t after 30 s.
func collect(t *testing.T, c sdk.Consumer, owned map[string]bool, want int) {
	t.Helper()
	pollUntil(t, c, func() bool { return len(owned) == want }, func(ev sdk.ConsumeEvent) {
		for _, o := range ev.Assigned {
			owned[o.Qid] = true
		}
		for _, o := range ev.Revoked {
			delete(owned, o.Qid)
		}
	}, func() string { return fmt.Sprintf("member owns %v; want %d queues", owned, want) })
}

// pollUntil polls c, handing apply every event, until done; it fails t
// after 30 s with what has to say.
func pollUntil(t *testing.T, c sdk.Consumer, done func() bool, apply func(sdk.ConsumeEvent), what func() string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for !done() {
		ev, err := c.Poll(ctx, 100)
		if ctx.Err() != nil {
			t.Fatal(what())
		}
		if err != nil {
			t.Logf("poll: %v", err)
			continue
		}
		apply(ev)
	}
}

// twoMembers starts a member of sub's group, waits until it owns the four
// queues of sub's topic, starts a second and waits until the first has
// given two up. It returns the members, the queues the first owns, and
// those it gave up, sorted. The members close with the test.
func twoMembers(t *testing.T, b *Backend, sub sdk.Subscription) (first, second sdk.Consumer, owned map[string]bool, given []string) {
	t.Helper()
	ctx := context.Background()
	first, err := b.Consume(ctx, sub)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { first.Close() })
	owned = map[string]bool{}
	collect(t, first, owned, 4)
	before := maps.Clone(owned)
	second, err = b.Consume(ctx, sub)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { second.Close() })
	collect(t, first, owned, 2)
	for q := range before {
		if !owned[q] {
			given = append(given, q)
		}
	}
	slices.Sort(given)
	return first, second, owned, given
}

// Two members of one group split a topic's queues between them, as
// RocketMQ's default allocation does; a member refuses to commit a queue it
// gave up; when one leaves, the other takes everything back.
func TestGroupMembersSplitQueues(t *testing.T) {
	f := startFake(t, rmqfake.Options{})
	b := newBackend(t, fmt.Sprintf(`{"nameservers": [%q]}`, f.Addr()))
	ctx := context.Background()
	if err := b.EnsureTopics(ctx, []sdk.TopicSpec{{Name: "split", Partitions: 4}}); err != nil {
		t.Fatal(err)
	}
	first, second, owned1, qids := twoMembers(t, b, sdk.Subscription{Group: "g", Topics: []string{"split"}})
	// The member that gave queues up commits what it finished of them;
	// that releases them to their next owner, which waits until then.
	var given []sdk.Offset
	for _, q := range qids {
		given = append(given, sdk.Offset{Topic: "split", Qid: q, Offset: 0, Release: true})
	}
	if err := first.Commit(ctx, given); err != nil {
		t.Fatalf("committing the queues just given up: %v", err)
	}
	owned2 := map[string]bool{}
	collect(t, second, owned2, 2)
	for q := range owned1 {
		if owned2[q] {
			t.Fatalf("queue %s owned by both members: %v and %v", q, owned1, owned2)
		}
	}
	// Only once: a later commit for a queue given up is refused.
	err := first.Commit(ctx, given[:1])
	if sdk.CodeOf(err) != sdk.CodeNotFound || !strings.Contains(err.Error(), given[0].Qid) {
		t.Errorf("the first member committing %s again after giving it up: %v; want code %d naming it", given[0].Qid, err, sdk.CodeNotFound)
	}
	if err := second.Commit(ctx, given[:1]); err != nil {
		t.Errorf("the owner committing %s: %v", given[0].Qid, err)
	}

	second.Close()
	collect(t, first, owned1, 4)
}

// A member closed while its queue locks are on their way (the broker took
// them, the answer had not come back) leaves no lock behind: the next
// member takes every queue at once, not when the locks expire an hour
// later.
func TestCloseDuringLockLeavesNoLock(t *testing.T) {
	// The broker answers the first member's lock only once that member's
	// context has ended: its Close has begun.
	lockTaken, member := make(chan struct{}), make(chan context.Context, 1)
	var hold atomic.Bool
	hold.Store(true)
	f := startFake(t, rmqfake.Options{LockLifetime: time.Hour, Handled: func(code int16) {
		if code == remoting.LockBatchMQ && hold.CompareAndSwap(true, false) {
			close(lockTaken)
			<-(<-member).Done()
		}
	}})
	b := newBackend(t, fmt.Sprintf(`{"nameservers": [%q]}`, f.Addr()))
	ctx := context.Background()
	if err := b.EnsureTopics(ctx, []sdk.TopicSpec{{Name: "locked", Partitions: 4}}); err != nil {
		t.Fatal(err)
	}
	sub := sdk.Subscription{Group: "g", Topics: []string{"locked"}}
	first, err := b.Consume(ctx, sub)
	if err != nil {
		t.Fatal(err)
	}
	member <- first.(*consumer).ctx
	<-lockTaken
	first.Close()

	second, err := b.Consume(ctx, sub)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	collect(t, second, map[string]bool{}, 4)
}

// What RocketMQ cannot do is refused with the code and limit named, per
// record, leaving the rest of a batch alone.
func TestRocketMQLimits(t *testing.T) {
	f := startFake(t, rmqfake.Options{})
	b := newBackend(t, fmt.Sprintf(`{"nameservers": [%q]}`, f.Addr()))
	ctx := context.Background()
	err := b.EnsureTopics(ctx, []sdk.TopicSpec{{Name: "compacted", Configs: map[string]string{"cleanup.policy": "compact"}}})
	if sdk.CodeOf(err) != sdk.CodeIllegal || !strings.Contains(err.Error(), "take no configs") {
		t.Errorf("a topic with configs: %v; want code %d", err, sdk.CodeIllegal)
	}
	if err := b.EnsureTopics(ctx, []sdk.TopicSpec{{Name: "limits"}}); err != nil {
		t.Fatal(err)
	}
	offs, err := b.ListOffsets(ctx, []string{"limits"}, "")
	if err != nil || len(offs) != defaultQueues {
		t.Fatalf("a topic created without a count has %d queues (%v); want default_queues, %d", len(offs), err, defaultQueues)
	}
	res, err := b.Produce(ctx, []sdk.Record{
		{Topic: "limits", Partition: 0, Value: make([]byte, maxMessageBytes+1)},
		{Topic: "limits", Partition: 0, Value: []byte("small")},
		{Topic: "nowhere", Partition: 0, Value: []byte("x")},
		{Topic: "a.b", Partition: 0, Value: []byte("x")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if sdk.CodeOf(res[0].Err) != sdk.CodeTooLarge || !strings.Contains(res[0].Err.Error(), "4194304") {
		t.Errorf("a record over 4 MiB: %v; want code %d naming the limit", res[0].Err, sdk.CodeTooLarge)
	}
	if res[1].Err != nil || res[1].Qid != offs[0].Qid || res[1].MessageID == "" {
		t.Errorf("a small record in the same batch: %+v", res[1])
	}
	if sdk.CodeOf(res[3].Err) != sdk.CodeIllegal || !strings.Contains(res[3].Err.Error(), "'.' at byte 1") {
		t.Errorf("a topic with a dot: %v; want code %d naming the character", res[3].Err, sdk.CodeIllegal)
	}
	if sdk.CodeOf(res[2].Err) != sdk.CodeTopicNotExist {
		t.Errorf("a topic the cluster lacks (no auto-creation): %v; want code %d", res[2].Err, sdk.CodeTopicNotExist)
	}
}
