package kafka

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mqgate/mqgate/sdk"
)

// consumerFetchMaxBytes bounds what one fetch of a group's client asks
// for, in all and per partition: a quarter of what a gateway session
// buffers of 1 KiB records, a two-hundredth of Kafka's default. Fetches
// are pipelined (the next is asked for as soon as the gateway has polled
// this one), so this bounds memory more than throughput.
const consumerFetchMaxBytes = 256 << 10

// consumer is one member of a Kafka consumer group, with its own kgo
// client. Offsets are committed only when asked.
type consumer struct {
	b     *Backend
	cl    *kgo.Client
	group string

	// mu guards events, polls, stopAF and closed. It is never held
	// together with Backend.mu, nor while calling into kgo.
	mu     sync.Mutex
	events []queuedEvent
	// polls holds the cancel functions of Polls waiting in kgo, so a new
	// assignment event wakes them.
	polls  map[*context.CancelFunc]struct{}
	stopAF func() bool // stops the ctx watcher started by Consume
	closed bool
	// handed holds the channels of Revoked events Poll returned. The next
	// Commit closes them: the gateway has committed what it finished of
	// the revoked partitions, and the rebalance waiting on them goes on.
	handed []chan struct{}
	done   chan struct{} // closed by Close

	closeOnce sync.Once
}

// Consume joins sub.Group and consumes sub.Topics. Assignment changes come
// out of Poll as events before any records polled after them; the offsets
// in those events are -1 (not known to the member).
func (b *Backend) Consume(ctx context.Context, sub sdk.Subscription) (sdk.Consumer, error) {
	shared, err := b.clients()
	if err != nil {
		return nil, err
	}
	if sub.Group == "" {
		return nil, sdk.Errorf(sdk.CodeIllegal, "group is empty")
	}
	if len(sub.Topics) == 0 || slices.Contains(sub.Topics, "") {
		return nil, sdk.Errorf(sdk.CodeIllegal, "topics must be a non-empty list of names")
	}
	start := kgo.NewOffset().AtStart()
	switch sub.Start {
	case sdk.StartEarliest:
	case sdk.StartLatest:
		start = kgo.NewOffset().AtEnd()
	default:
		return nil, sdk.Errorf(sdk.CodeIllegal, "start %d is neither earliest (0) nor latest (1)", sub.Start)
	}

	c := &consumer{b: b, group: sub.Group, polls: make(map[*context.CancelFunc]struct{}), done: make(chan struct{})}
	opts := b.clientOpts(shared.cfg, b.Addrs())
	opts = append(opts,
		kgo.FetchMaxWait(consumerFetchWait),
		// A group's client buffers one fetch per broker until the
		// gateway has polled all of it, and the embedded broker keeps
		// a write buffer as large as the largest response it sent on
		// the connection: with Kafka's 50 MiB fetches (16 MiB per
		// partition on the embedded broker) every session that pulled
		// once from a topic with a backlog held that backlog twice.
		// The gateway takes at most its session buffer (1024 records
		// by default) at a time, so a fetch larger than that only sits
		// in memory. A record larger than these limits still comes
		// back: the broker returns the first batch of a fetch whole,
		// and the client rotates which partition it asks for first.
		kgo.FetchMaxBytes(consumerFetchMaxBytes),
		kgo.FetchMaxPartitionBytes(consumerFetchMaxBytes),
		kgo.ConsumerGroup(sub.Group),
		kgo.ConsumeTopics(sub.Topics...),
		kgo.DisableAutoCommit(),
		kgo.HeartbeatInterval(shared.cfg.groupHeartbeat),
		// Start applies where the group has no commit. On data loss (a
		// commit below the log start) the client still resumes at the
		// oldest retained record, set by clientOpts: skipping is never
		// what a queue wants.
		kgo.ConsumeStartOffset(start),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			if ev := offsetsOf(m); len(ev) > 0 {
				c.push(sdk.ConsumeEvent{Assigned: ev})
			}
		}),
		kgo.OnPartitionsRevoked(func(ctx context.Context, _ *kgo.Client, m map[string][]int32) {
			if ev := offsetsOf(m); len(ev) > 0 {
				c.revoke(ctx, ev)
			}
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			if ev := offsetsOf(m); len(ev) > 0 {
				c.push(sdk.ConsumeEvent{Revoked: ev})
			}
		}),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, sdk.Errorf(sdk.CodeInternal, "creating consumer for group %s: %v", sub.Group, err)
	}
	c.cl = cl

	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		cl.Close()
		return nil, errNotConfigured
	}
	b.consumers[c] = struct{}{}
	b.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { _ = c.Close() }) // Close cannot fail
	c.mu.Lock()
	c.stopAF = stop
	c.mu.Unlock()
	return c, nil
}

// offsetsOf lists a kgo assignment map as sdk offsets with unknown (-1)
// positions, sorted by topic and partition.
func offsetsOf(m map[string][]int32) []sdk.Offset {
	type tp struct {
		t string
		p int32
	}
	var tps []tp
	for t, ps := range m {
		for _, p := range ps {
			tps = append(tps, tp{t, p})
		}
	}
	slices.SortFunc(tps, func(a, b tp) int {
		if c := strings.Compare(a.t, b.t); c != 0 {
			return c
		}
		return cmp.Compare(a.p, b.p)
	})
	out := make([]sdk.Offset, len(tps))
	for i, x := range tps {
		out[i] = sdk.Offset{Topic: x.t, Qid: qidOf(x.p), Offset: -1}
	}
	return out
}

// queuedEvent is an assignment event waiting for Poll; ack, for a
// Revoked event, is what its rebalance callback waits on.
type queuedEvent struct {
	ev  sdk.ConsumeEvent
	ack chan struct{}
}

// push queues an assignment event and wakes waiting Polls.
func (c *consumer) push(ev sdk.ConsumeEvent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pushLocked(queuedEvent{ev: ev})
}

func (c *consumer) pushLocked(q queuedEvent) {
	if c.closed {
		return
	}
	c.events = append(c.events, q)
	for cancel := range c.polls {
		(*cancel)()
	}
}

// revokeWait bounds how long a rebalance waits for the gateway to commit
// after a Revoked event; a gateway that never does (an older one) only
// delays the rebalance by this much.
const revokeWait = 60 * time.Second

// revoke queues a Revoked event and holds kgo's rebalance until the
// gateway's next Commit after it has taken the event, so that what the
// gateway finished on those partitions is committed before their next
// owner starts from the committed offsets.
func (c *consumer) revoke(ctx context.Context, ev []sdk.Offset) {
	c.mu.Lock()
	if c.closed { // leaving the group on Close: nobody will commit
		c.mu.Unlock()
		return
	}
	ack := make(chan struct{})
	c.pushLocked(queuedEvent{ev: sdk.ConsumeEvent{Revoked: ev}, ack: ack})
	c.mu.Unlock()
	t := time.NewTimer(revokeWait)
	defer t.Stop()
	select {
	case <-ack:
	case <-t.C:
		c.b.logger.Warn("rebalance went on without a commit after the revoke", "group", c.group, "waited", revokeWait)
	case <-ctx.Done():
	case <-c.done:
	}
}

// Poll returns the oldest queued assignment event, else waits for up to
// maxRecords records (all buffered ones when maxRecords <= 0). Retriable
// fetch errors are logged and waited out; others (authorization, a deleted
// topic) are returned, and the consumer stays usable.
func (c *consumer) Poll(ctx context.Context, maxRecords int) (sdk.ConsumeEvent, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return sdk.ConsumeEvent{}, sdk.Errorf(sdk.CodeUnavailable, "consumer of group %s is closed", c.group)
		}
		if len(c.events) > 0 {
			q := c.events[0]
			c.events = slices.Delete(c.events, 0, 1)
			if q.ack != nil {
				c.handed = append(c.handed, q.ack)
			}
			c.mu.Unlock()
			return q.ev, nil
		}
		pctx, cancel := context.WithCancel(ctx)
		c.polls[&cancel] = struct{}{}
		c.mu.Unlock()

		fetches := c.cl.PollRecords(pctx, maxRecords)

		c.mu.Lock()
		delete(c.polls, &cancel)
		c.mu.Unlock()
		cancel()

		recs := make([]sdk.Record, 0, fetches.NumRecords())
		fetches.EachRecord(func(kr *kgo.Record) {
			recs = append(recs, fromKgoRecord(kr))
		})
		if len(recs) > 0 {
			// Errors of other partitions come with the records; kgo
			// reports each once, so log them rather than lose them.
			for _, fe := range fetches.Errors() {
				if !errors.Is(fe.Err, context.Canceled) {
					c.b.logger.Warn("fetch error", "group", c.group, "topic", fe.Topic, "partition", fe.Partition, "err", fe.Err)
				}
			}
			return sdk.ConsumeEvent{Records: recs}, nil
		}
		if err := ctx.Err(); err != nil {
			return sdk.ConsumeEvent{}, c.b.sdkError(context.Cause(ctx), "polling group %s", c.group)
		}
		for _, fe := range fetches.Errors() {
			switch {
			case errors.Is(fe.Err, context.Canceled):
				// Our own wake-up for an assignment event.
			case errors.Is(fe.Err, kgo.ErrClientClosed):
				return sdk.ConsumeEvent{}, sdk.Errorf(sdk.CodeUnavailable, "consumer of group %s is closed", c.group)
			case isDataLoss(fe.Err) || codeOf(fe.Err) == sdk.CodeUnavailable:
				// kgo has already reset or will retry; worth a
				// log line, not an error for the caller.
				c.b.logger.Warn("fetch error", "group", c.group, "topic", fe.Topic, "partition", fe.Partition, "err", fe.Err)
			default:
				return sdk.ConsumeEvent{}, c.b.sdkError(fe.Err, "consuming %s partition %d for group %s", fe.Topic, fe.Partition, c.group)
			}
		}
	}
}

// isDataLoss reports kgo's notice that it reset a partition after the
// broker lost data.
func isDataLoss(err error) bool {
	_, ok := errors.AsType[*kgo.ErrDataLoss](err)
	return ok
}

// Commit commits exactly offsets for the group; Offset is the next offset
// to read.
func (c *consumer) Commit(ctx context.Context, offsets []sdk.Offset) error {
	c.mu.Lock()
	handed := c.handed
	c.handed = nil
	c.mu.Unlock()
	defer func() {
		for _, ack := range handed {
			close(ack)
		}
	}()
	m := make(map[string]map[int32]kgo.EpochOffset)
	for _, o := range offsets {
		p, err := commitPartition(o)
		if err != nil {
			return err
		}
		if m[o.Topic] == nil {
			m[o.Topic] = make(map[int32]kgo.EpochOffset)
		}
		m[o.Topic][p] = kgo.EpochOffset{Epoch: -1, Offset: o.Offset}
	}
	if len(m) == 0 {
		return nil
	}
	var cerr error
	c.cl.CommitOffsetsSync(ctx, m, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			cerr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil && cerr == nil {
					cerr = fmt.Errorf("%s partition %d: %w", t.Topic, p.Partition, err)
				}
			}
		}
	})
	return c.b.sdkError(cerr, "committing offsets of group %s", c.group)
}

// Close leaves the group and closes the consumer's client. Uncommitted
// progress is not committed. It is idempotent.
func (c *consumer) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.events = nil
		close(c.done)
		if c.stopAF != nil {
			c.stopAF()
		}
		c.mu.Unlock()
		// Close leaves the group (and wakes a Poll waiting in kgo).
		c.cl.Close()
		c.b.forget(c)
	})
	return nil
}

// commitPartition checks an offset to commit and returns its partition.
func commitPartition(o sdk.Offset) (int32, error) {
	p, err := parseQid(o.Topic, o.Qid)
	if err != nil {
		return 0, err
	}
	if o.Offset < 0 {
		return 0, sdk.Errorf(sdk.CodeIllegal, "offset %d of %s qid %s is negative", o.Offset, o.Topic, o.Qid)
	}
	return p, nil
}
