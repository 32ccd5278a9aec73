package delay

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/mqgate/mqgate/core/tail"
	"github.com/mqgate/mqgate/sdk"
)

// cancels is every gateway's copy of the cancel topic: keyed records
// "topic/id" whose value is the time the cancel stops applying, epoch ms.
// Each gateway reads the whole topic and then follows it; before a batch
// of hops or deliveries the workers call sync, which returns once
// everything written to the topic before the call has been read. So a
// cancel that returned anywhere stops every delivery that starts after it.
//
// A record's time is capped at hold from when it is read: the cancel
// promise needs no more, and a record that says "the year 3000" must not
// hold its memory until then.
type cancels struct {
	b      sdk.Backend
	topic  string
	hold   time.Duration
	now    func() time.Time // the service's clock
	logger *slog.Logger

	tail *tail.Tail

	mu  sync.Mutex
	ids map[string]time.Time // "topic/id" -> until
}

func newCancels(b sdk.Backend, topic string, hold time.Duration, now func() time.Time, logger *slog.Logger) *cancels {
	return &cancels{b: b, topic: topic, hold: hold, now: now, logger: logger, ids: map[string]time.Time{}, tail: tail.New(b, topic, cancelsWait)}
}

// cancelKey is the key of a cancel of id on topic: a Chronos id by its
// identity, so that a cancel with the key of any firing of a loop stops
// the loop, as DDMQ's Chronos does (Batcher.putLoopTombstoneKey carries a
// loop's cancel on to its firings still to come).
func cancelKey(topic, id string) string { return topic + "/" + identityOf(id) }

// add records a cancel this gateway wrote, at once.
func (c *cancels) add(key string, until time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if until.After(c.ids[key]) {
		c.ids[key] = until
	}
}

// cancelled reports whether key is cancelled at now.
func (c *cancels) cancelled(key string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	until, ok := c.ids[key]
	return ok && now.Before(until)
}

// len is how many cancels are held.
func (c *cancels) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ids)
}

// follow reads the topic from its start and keeps reading until ctx ends.
// A failure is logged when reading starts to fail, not at every retry, and
// the return to reading once, with how often it failed.
func (c *cancels) follow(ctx context.Context) {
	expire := time.NewTicker(time.Minute)
	defer expire.Stop()
	failures := 0
	for ctx.Err() == nil {
		select {
		case <-expire.C:
			c.expire(c.now())
		default:
		}
		err := c.readOnce(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
			if failures > 1 {
				c.logger.Info("reading delay cancels again", "topic", c.topic, "failures", failures)
			}
			failures = 0
			continue
		}
		failures++
		if failures == 1 {
			c.logger.Warn("reading delay cancels; retrying every second", "topic", c.topic, "error", err)
		} else {
			c.logger.Debug("reading delay cancels", "topic", c.topic, "error", err, "failures", failures)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// cancelsWait is how long one read of the cancel topic waits at the broker
// for a new cancel. A cancel ends the wait at once, so this bounds only how
// often an idle gateway asks.
const cancelsWait = 5 * time.Second

// readOnce fetches from every qid once, waiting up to cancelsWait for news.
func (c *cancels) readOnce(ctx context.Context) error {
	return c.tail.ReadOnce(ctx, func(recs []sdk.Record) {
		now := c.now()
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, rec := range recs {
			ms, perr := strconv.ParseInt(string(rec.Value), 10, 64)
			if perr != nil || rec.Key == nil {
				continue // not a cancel; a tombstone, say
			}
			until := time.UnixMilli(ms)
			if longest := now.Add(c.hold); until.After(longest) {
				until = longest
			}
			if until.After(now) && until.After(c.ids[string(rec.Key)]) {
				c.ids[string(rec.Key)] = until
			}
		}
	})
}

// sync returns once every cancel written before the call has been read.
func (c *cancels) sync(ctx context.Context) error {
	err := c.tail.Sync(ctx)
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return sdk.Errorf(sdk.CodeTimeout, "waiting to read the delay cancels: %v", err)
	}
	return err
}

// expire forgets cancels that no longer apply.
func (c *cancels) expire(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, until := range c.ids {
		if !now.Before(until) {
			delete(c.ids, k)
		}
	}
}
