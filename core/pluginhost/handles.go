package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/mqgate/mqgate/sdk"
)

// call runs fn against the live process. The call ends when its own
// context does, when CallTimeout passes (for contexts without a deadline),
// or when the process is declared dead, whichever comes first; in the last
// case the error is code 17, so the caller may retry.
func (i *instance) call(ctx context.Context, method string, fn func(context.Context, *generation) error) error {
	return i.callWaiting(ctx, method, true, fn)
}

// callWaiting is call; waits is false for a long poll, which by design may
// get no answer for a while: its silence does not make the host check the
// process sooner (see Options.HealthInterval).
func (i *instance) callWaiting(ctx context.Context, method string, waits bool, fn func(context.Context, *generation) error) error {
	start := time.Now()
	gen, err := i.current()
	if err == nil {
		if waits {
			gen.startWait()
		}
		cctx, cancel := context.WithCancel(ctx)
		stop := context.AfterFunc(gen.ctx, cancel)
		if _, ok := cctx.Deadline(); !ok {
			var cancelT context.CancelFunc
			cctx, cancelT = context.WithTimeout(cctx, i.host.opts.CallTimeout)
			defer cancelT()
		}
		err = fn(cctx, gen)
		stop()
		cancel()
		if waits {
			gen.endWait()
		}
		if err == nil {
			gen.answered()
		}
		if err != nil && gen.ctx.Err() != nil && ctx.Err() == nil {
			err = &sdk.Error{Code: sdk.CodeUnavailable, Msg: "plugin " + i.spec.Plugin + " for " + i.spec.Name + " died during the call"}
		}
	}
	i.host.metrics.calls.WithLabelValues(i.spec.Name, method, strconv.Itoa(int(sdk.CodeOf(err)))).Inc()
	i.host.metrics.latency.WithLabelValues(i.spec.Name, method).Observe(time.Since(start).Seconds())
	return err
}

// backendHandle is the Backend the rest of the gateway holds: it always
// talks to the instance's live process.
type backendHandle struct{ inst *instance }

var _ sdk.Backend = (*backendHandle)(nil)

func backendOf(g *generation) sdk.Backend { return g.impl.(sdk.Backend) }

func (b *backendHandle) Configure(ctx context.Context, config []byte) error {
	return b.inst.call(ctx, "Configure", func(ctx context.Context, g *generation) error {
		return backendOf(g).Configure(ctx, config)
	})
}

func (b *backendHandle) EnsureTopics(ctx context.Context, topics []sdk.TopicSpec) error {
	return b.inst.call(ctx, "EnsureTopics", func(ctx context.Context, g *generation) error {
		return backendOf(g).EnsureTopics(ctx, topics)
	})
}

func (b *backendHandle) Produce(ctx context.Context, records []sdk.Record) (res []sdk.ProduceResult, err error) {
	err = b.inst.call(ctx, "Produce", func(ctx context.Context, g *generation) error {
		res, err = backendOf(g).Produce(ctx, records)
		return err
	})
	return res, err
}

func (b *backendHandle) Commit(ctx context.Context, group string, offsets []sdk.Offset) error {
	return b.inst.call(ctx, "Commit", func(ctx context.Context, g *generation) error {
		return backendOf(g).Commit(ctx, group, offsets)
	})
}

func (b *backendHandle) Fetch(ctx context.Context, req sdk.FetchRequest) (res []sdk.FetchResult, err error) {
	err = b.inst.callWaiting(ctx, "Fetch", req.MaxWait <= 0, func(ctx context.Context, g *generation) error {
		res, err = backendOf(g).Fetch(ctx, req)
		return err
	})
	return res, err
}

func (b *backendHandle) ListOffsets(ctx context.Context, topics []string, group string) (res []sdk.QidOffsets, err error) {
	err = b.inst.call(ctx, "ListOffsets", func(ctx context.Context, g *generation) error {
		res, err = backendOf(g).ListOffsets(ctx, topics, group)
		return err
	})
	return res, err
}

// ListTopics, ListGroups and DeleteGroup reach the live process's
// sdk.ClusterAdmin; a plugin without it answers sdk.ErrNoClusterAdmin.
var _ sdk.ClusterAdmin = (*backendHandle)(nil)

func (b *backendHandle) ListTopics(ctx context.Context) (res []sdk.TopicListing, err error) {
	err = b.inst.call(ctx, "ListTopics", func(ctx context.Context, g *generation) error {
		res, err = sdk.ListTopics(ctx, g.impl)
		return err
	})
	return res, err
}

func (b *backendHandle) ListGroups(ctx context.Context) (res []sdk.GroupListing, err error) {
	err = b.inst.call(ctx, "ListGroups", func(ctx context.Context, g *generation) error {
		res, err = sdk.ListGroups(ctx, g.impl)
		return err
	})
	return res, err
}

func (b *backendHandle) DescribeGroup(ctx context.Context, group string) (res sdk.GroupDescription, err error) {
	err = b.inst.call(ctx, "DescribeGroup", func(ctx context.Context, g *generation) error {
		res, err = sdk.DescribeGroup(ctx, g.impl, group)
		return err
	})
	return res, err
}

func (b *backendHandle) DeleteGroup(ctx context.Context, group string) error {
	return b.inst.call(ctx, "DeleteGroup", func(ctx context.Context, g *generation) error {
		return sdk.DeleteGroup(ctx, g.impl, group)
	})
}

func (b *backendHandle) DeleteRecords(ctx context.Context, before []sdk.Offset) error {
	return b.inst.call(ctx, "DeleteRecords", func(ctx context.Context, g *generation) error {
		return sdk.DeleteRecords(ctx, g.impl, before)
	})
}

// Close does nothing: the host owns the process and stops it in Host.Close.
func (b *backendHandle) Close() error { return nil }

// Consume returns a Consumer that outlives plugin restarts: when its stream
// ends it reports every qid it held as revoked (their uncommitted progress
// is gone with the stream) and re-opens on the live process, unless its
// subscriber said otherwise (see consumer.ReopenIf). Like every other
// call, Consume itself fails at once with code 17 while the plugin is
// down.
func (b *backendHandle) Consume(ctx context.Context, sub sdk.Subscription) (sdk.Consumer, error) {
	c := &consumer{inst: b.inst, sub: sub, assigned: map[[2]string]sdk.Offset{}}
	c.ctx, c.cancel = context.WithCancel(ctx)
	gen, err := b.inst.current()
	if err == nil {
		err = c.open(gen)
	}
	if err != nil {
		c.cancel()
		return nil, err
	}
	return c, nil
}

type consumer struct {
	inst   *instance
	sub    sdk.Subscription
	ctx    context.Context // the subscription's life
	cancel context.CancelFunc

	mu      sync.Mutex
	inner   sdk.Consumer // nil between an ended stream and its re-open
	gen     *generation  // the process inner runs on
	release func()       // ends inner's context
	keep    func() bool  // see ReopenIf; nil: always re-open

	// Owned by the polling goroutine.
	assigned   map[[2]string]sdk.Offset
	pendingErr error // why the last stream ended, reported after its revocation
	// ended is why the last stream ended and the process it ran on,
	// until the stream is re-opened.
	ended *streamEnd
}

type streamEnd struct {
	gen *generation
	err error
}

// errNotReopened is what Poll answers when its stream ended and the
// subscriber's ReopenIf said not to re-open it: the subscription is over
// (sdk.ErrStreamEnded), and opening a new one may succeed (code 17).
var errNotReopened = fmt.Errorf("%w: %w", sdk.ErrStreamEnded, &sdk.Error{Code: sdk.CodeUnavailable, Msg: "consume stream ended and its subscriber was idle: not re-opened"})

// ReopenIf sets keep, which Poll asks when the stream has ended (its
// plugin process died, or the plugin ended it) before re-opening it: when
// keep answers false, the subscription ends instead, Poll answers an
// sdk.ErrStreamEnded error and the qids are not reported revoked. A plugin
// restart then costs the new process only the subscriptions still in use,
// not every one opened since the gateway started. keep runs on the polling
// goroutine.
func (c *consumer) ReopenIf(keep func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.keep = keep
}

// errConsumerClosed is what Poll answers once Close was called or the
// subscription's context ended: code 17, and sdk.ErrStreamEnded for
// callers that must stop polling.
var errConsumerClosed = fmt.Errorf("%w: %w", sdk.ErrStreamEnded, &sdk.Error{Code: sdk.CodeUnavailable, Msg: "consumer closed"})

// open starts a stream on gen.
func (c *consumer) open(gen *generation) error {
	sctx, cancel := context.WithCancel(c.ctx)
	stop := context.AfterFunc(gen.ctx, cancel)
	inner, err := backendOf(gen).Consume(sctx, c.sub)
	if err != nil {
		stop()
		cancel()
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx.Err() != nil { // closed meanwhile
		_ = inner.Close()
		stop()
		cancel()
		return errConsumerClosed
	}
	c.inner, c.gen = inner, gen
	gen.streams.Add(1)
	c.release = func() { stop(); cancel() }
	return nil
}

// drop forgets the current stream and closes it. closing is true when
// the subscription ends: the stream no longer counts among those of its
// process, which otherwise keeps counting it as one its death ended.
func (c *consumer) drop(closing bool) {
	c.mu.Lock()
	inner, gen, release := c.inner, c.gen, c.release
	c.inner, c.gen, c.release = nil, nil, nil
	c.mu.Unlock()
	if inner != nil {
		if gen.client == nil {
			// In the gateway's process Close itself leaves the group,
			// which takes a round of the broker's protocol. A plugin
			// process does that after its stream ends, without the
			// subscriber waiting; so does this.
			go func() { _ = inner.Close() }()
		} else {
			_ = inner.Close() // ending a stream that may already be broken; nothing to report
		}
		release()
		if closing {
			gen.streams.Add(-1)
		}
	}
}

func (c *consumer) current() (sdk.Consumer, *generation) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.inner, c.gen
}

func (c *consumer) Poll(ctx context.Context, maxRecords int) (sdk.ConsumeEvent, error) {
	backoff := 50 * time.Millisecond
	for {
		if c.ctx.Err() != nil {
			return sdk.ConsumeEvent{}, errConsumerClosed
		}
		if err := c.pendingErr; err != nil {
			c.pendingErr = nil
			return sdk.ConsumeEvent{}, err
		}
		inner, streamGen := c.current()
		if inner == nil {
			// Wait for the plugin, within this Poll's own deadline.
			gen, err := c.inst.waitUp(ctx)
			if err == nil && c.ended != nil && c.ended.gen == gen && gen.dying(ctx) {
				// The stream ended as its process died, which the host
				// has not taken in yet: it re-opens on the next process.
				err = &sdk.Error{Code: sdk.CodeUnavailable, Msg: "plugin process exited"}
			}
			if err == nil {
				err = c.open(gen)
			}
			if err == nil {
				c.reopened(gen)
			}
			if err != nil {
				if ctx.Err() != nil || sdk.CodeOf(err) != sdk.CodeUnavailable {
					return sdk.ConsumeEvent{}, err
				}
				select {
				case <-time.After(backoff):
				case <-ctx.Done():
					return sdk.ConsumeEvent{}, ctx.Err()
				}
				backoff = min(2*backoff, time.Second)
			}
			continue
		}
		ev, err := inner.Poll(ctx, maxRecords)
		if err == nil {
			streamGen.answered()
			c.track(ev)
			return ev, nil
		}
		if ctx.Err() != nil || !errors.Is(err, sdk.ErrStreamEnded) {
			return ev, err // the caller's deadline, or a failed poll on a live stream
		}
		c.ended = &streamEnd{gen: streamGen, err: err}
		c.drop(false)
		retriable := sdk.CodeOf(err) == sdk.CodeUnavailable
		if retriable && !c.reopenWanted() {
			if streamGen.ctx.Err() == nil {
				streamGen.streams.Add(-1) // the process outlived the stream
			}
			c.ended = nil
			clear(c.assigned)
			c.cancel() // later Polls answer errConsumerClosed
			return sdk.ConsumeEvent{}, errNotReopened
		}
		lost := c.revokeAll()
		switch {
		case len(lost.Revoked) > 0:
			if !retriable {
				c.pendingErr = err
			}
			return lost, nil
		case !retriable:
			return sdk.ConsumeEvent{}, err
		}
	}
}

// reopenWanted asks the subscriber's keep whether to re-open an ended
// stream.
func (c *consumer) reopenWanted() bool {
	c.mu.Lock()
	keep := c.keep
	c.mu.Unlock()
	return keep == nil || keep()
}

// reopened logs that a stream ended and was re-opened on gen, when the
// stream ended on the same process: a stream lost with its process is
// already told by the host's line about the process, once for all.
func (c *consumer) reopened(gen *generation) {
	end := c.ended
	c.ended = nil
	switch {
	case end == nil:
	case end.gen == gen:
		gen.streams.Add(-1) // the process outlived the stream
		c.inst.log.Warn("consume stream ended; re-opened it", "group", c.sub.Group, "error", end.err)
	default:
		c.inst.log.Debug("consume stream re-opened on the new plugin process", "group", c.sub.Group, "pid", gen.pid, "ended_with", end.err)
	}
}

func (c *consumer) track(ev sdk.ConsumeEvent) {
	for _, o := range ev.Assigned {
		c.assigned[[2]string{o.Topic, o.Qid}] = o
	}
	for _, o := range ev.Revoked {
		delete(c.assigned, [2]string{o.Topic, o.Qid})
	}
}

func (c *consumer) revokeAll() sdk.ConsumeEvent {
	var ev sdk.ConsumeEvent
	for k, o := range c.assigned {
		ev.Revoked = append(ev.Revoked, o)
		delete(c.assigned, k)
	}
	return ev
}

// errReopening is what Commit answers between a stream's end and its
// re-open: the stream those offsets came from is gone, so they cannot be
// committed on it (sdk.ErrStreamEnded), and the caller may try again on
// the new stream (code 17).
var errReopening = fmt.Errorf("%w: %w", sdk.ErrStreamEnded, &sdk.Error{Code: sdk.CodeUnavailable, Msg: "consume stream is re-opening after it ended"})

func (c *consumer) Commit(ctx context.Context, offsets []sdk.Offset) error {
	inner, _ := c.current()
	if inner == nil {
		return errReopening
	}
	return c.inst.call(ctx, "Consume.Commit", func(ctx context.Context, _ *generation) error {
		return inner.Commit(ctx, offsets)
	})
}

// Close ends the subscription; a Poll running meanwhile returns.
func (c *consumer) Close() error {
	c.cancel()
	c.drop(true)
	return nil
}

// sinkHandle is the Sink the gateway holds, as backendHandle is for
// backends.
type sinkHandle struct{ inst *instance }

var _ sdk.Sink = (*sinkHandle)(nil)

func (s *sinkHandle) Configure(ctx context.Context, config []byte) error {
	return s.inst.call(ctx, "Configure", func(ctx context.Context, g *generation) error {
		return g.impl.(sdk.Sink).Configure(ctx, config)
	})
}

func (s *sinkHandle) Write(ctx context.Context, records []sdk.Record) (res []error, err error) {
	err = s.inst.call(ctx, "Write", func(ctx context.Context, g *generation) error {
		res, err = g.impl.(sdk.Sink).Write(ctx, records)
		return err
	})
	return res, err
}

// Close does nothing: the host owns the process.
func (s *sinkHandle) Close() error { return nil }
