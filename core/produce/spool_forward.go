package produce

import (
	"context"
	"errors"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/mqgate/mqgate/sdk"
)

// Forwarding limits and backoff.
const (
	spoolForwardRecords = 1000
	spoolForwardBytes   = 4 << 20
	spoolBackoffMin     = 50 * time.Millisecond
	spoolBackoffMax     = 5 * time.Second
	// spoolSendTimeout bounds one send, retries inside it included, so a
	// long outage shows in the spool's log and backoff rather than in one
	// call that never returns.
	spoolSendTimeout = 30 * time.Second
	// spoolReclaimBytes of deleted records make the forwarder reclaim
	// their space; spoolReclaimIdleBytes when it is idle.
	spoolReclaimBytes     = 64 << 20
	spoolReclaimIdleBytes = 8 << 20
)

// errSpoolClosed is what reads of a closed spool's store return.
var errSpoolClosed = errors.New("spool is closed")

// spoolEntry is a stored record as the forwarder holds it.
type spoolEntry struct {
	seq      uint64
	key      []byte
	size     int64 // key and value bytes, as MaxBytes counts them
	appended time.Time
	rec      sdk.Record
	// corrupt is set, and rec holds the raw value, when the value could
	// not be decoded.
	corrupt error
}

// Run forwards stored records with send until ctx ends or the spool
// closes. Each cluster has its own forwarder, so one cluster's outage
// does not hold up another's records. A forwarder sends its cluster's
// records in append order, in batches, and deletes only those the broker
// acknowledged. Records refused with a code that cannot succeed
// (spoolRejectsRecord: illegal, not allowed, unknown topic, too large)
// are moved to rejected.jsonl in the spool's Dir, counted and logged;
// every other failure of a record, unknown ones (100) included, and whole
// sends that failed, are sent again after a backoff (50ms doubling to
// 5s), before anything newer of their cluster; a whole send refused with such a code is split until the record
// it is refused for is alone. Run returns at once if another Run is
// forwarding.
func (s *Spool) Run(ctx context.Context, send SendFunc) {
	s.mu.Lock()
	if s.closed || s.running {
		running := s.running
		s.mu.Unlock()
		if running {
			s.log.Error("spool: Run called while another Run is forwarding; ignoring")
		}
		return
	}
	s.running = true
	s.runs.Add(1)
	s.mu.Unlock()
	defer s.runs.Done()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.stop, cancel)
	defer stop()

	started := map[string]bool{}
	var forwarders []chan struct{}
	defer func() {
		for _, done := range forwarders {
			<-done
		}
		s.mu.Lock()
		s.running = false
		s.mu.Unlock()
	}()
	for {
		s.mu.Lock()
		for name, c := range s.clusters {
			if started[name] {
				continue
			}
			started[name] = true
			done := make(chan struct{})
			forwarders = append(forwarders, done)
			go func() {
				defer close(done)
				s.forward(ctx, c, send)
			}()
		}
		s.mu.Unlock()
		select {
		case <-s.clustersChanged:
		case <-ctx.Done():
			return
		}
	}
}

// forward delivers one cluster's records until ctx ends.
func (s *Spool) forward(ctx context.Context, c *spoolCluster, send SendFunc) {
	s.mu.Lock()
	next := c.low // the lowest seq not yet read
	s.mu.Unlock()
	var (
		// pending are records read and not yet acknowledged or
		// rejected, in seq order.
		pending []*spoolEntry
		// limit is how many of pending the next send carries: fewer than
		// all after a partial failure (only the failed ones go again) or
		// while isolating a record that makes a whole send fail.
		limit   int
		backoff time.Duration
		fails   int
	)
	wait := func() bool {
		backoff = min(max(2*backoff, spoolBackoffMin), spoolBackoffMax)
		t := time.NewTimer(backoff)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for ctx.Err() == nil {
		if len(pending) == 0 {
			entries, err := s.read(c.name, next)
			if err != nil {
				if errors.Is(err, errSpoolClosed) {
					return
				}
				s.log.Error("spool: reading records", "cluster", c.name, "err", err)
				if !wait() {
					return
				}
				continue
			}
			if len(entries) == 0 {
				s.reclaim(ctx, c, true)
				select {
				case <-c.notify:
				case <-ctx.Done():
					return
				}
				continue
			}
			next = entries[len(entries)-1].seq + 1
			pending = entries
			limit = len(pending)
		}

		batch := pending[:min(limit, len(pending))]
		var (
			recs     = make([]sdk.Record, 0, len(batch))
			sendable = batch[:0:0]
			rejected []*spoolEntry
			rejErrs  []error
		)
		for _, e := range batch {
			if e.corrupt != nil {
				rejected = append(rejected, e)
				rejErrs = append(rejErrs, sdk.Errorf(sdk.CodeInternal, "spool entry %d: %v", e.seq, e.corrupt))
				continue
			}
			sendable = append(sendable, e)
			recs = append(recs, e.rec)
		}
		var (
			results []sdk.ProduceResult
			err     error
		)
		if len(recs) > 0 {
			sendCtx, cancel := context.WithTimeout(ctx, spoolSendTimeout)
			results, err = send(sendCtx, c.name, recs)
			cancel()
			if err == nil && len(results) != len(recs) {
				err = sdk.Errorf(sdk.CodeInternal, "send returned %d results for %d records", len(results), len(recs))
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			code := sdk.CodeOf(err)
			if spoolRefusesRecord(code) {
				if len(batch) > 1 {
					// One record may make the whole send fail: halve
					// until it is alone, then reject it.
					limit = len(batch) / 2
					continue
				}
				rejected = append(rejected, batch[0])
				rejErrs = append(rejErrs, err)
				sendable = nil
			} else {
				fails++
				s.log.Warn("spool: forwarding failed; retrying", "cluster", c.name, "records", len(recs), "code", int(code), "attempt", fails, "err", err)
				if !wait() {
					return
				}
				continue
			}
		}

		var acked, retry []*spoolEntry
		var retryErr error
		for i, e := range sendable {
			rerr := results[i].Err
			switch {
			case rerr == nil:
				acked = append(acked, e)
			case spoolRejectsRecord(sdk.CodeOf(rerr)):
				rejected = append(rejected, e)
				rejErrs = append(rejErrs, rerr)
			default:
				retry = append(retry, e)
				retryErr = rerr
			}
		}
		if err := s.settle(c, acked, rejected, rejErrs); err != nil {
			// The rejected records could not be kept: they go again
			// with the retriable ones rather than being lost.
			s.log.Error("spool: keeping rejected records failed; will send them again", "cluster", c.name, "err", err)
			retry = mergeSpoolEntries(retry, rejected)
			retryErr = err
		}
		rest := pending[len(batch):]
		pending = append(retry[:len(retry):len(retry)], rest...)
		s.advanceLow(c, pending, next)
		s.reclaim(ctx, c, false)
		if len(retry) > 0 {
			fails++
			limit = len(retry)
			s.log.Warn("spool: records failed; retrying", "cluster", c.name, "records", len(retry), "code", int(sdk.CodeOf(retryErr)), "attempt", fails, "err", retryErr)
			if !wait() {
				return
			}
			continue
		}
		fails, backoff = 0, 0
		limit = len(pending)
	}
}

// spoolRejectsRecord reports whether a record whose own result failed
// with c is moved to rejected.jsonl rather than sent again. An accepted
// record is only given up on when the broker refused that record for a
// reason sending the same bytes again cannot change:
//
//   - 11 illegal: the record itself is malformed for the broker (a bad
//     topic name, a null key on a compacted topic, ...).
//   - 16 too large: the record is over the broker's size limit.
//   - 14 topic does not exist: plugins answer it only when the cluster does
//     not create topics on produce. Someone may create the topic later, but
//     the forwarder keeps a cluster's order, so holding the record would
//     stop every newer record of the cluster until then; rejected.jsonl
//     keeps it to replay once the topic exists.
//   - 13 not allowed: the broker's ACL (or a RocketMQ topic without write
//     permission) refuses this topic; the same reasoning as 14.
//
// Everything else is sent again after a backoff: the retriable codes, a
// rate limit (it says later, not never), 18 (the gateway's credentials
// are the cluster's problem, not the record's), and any code whose
// meaning for this record is unknown (100, 19, codes a third-party plugin
// makes up): a plugin may answer 100 for a failure that passes (a
// third-party one, or a broker out of some resource the bundled plugins
// do not recognize), and an accepted record is never dropped for a
// failure that may pass.
func spoolRejectsRecord(c sdk.Code) bool {
	switch c {
	case sdk.CodeIllegal, sdk.CodeTooLarge, sdk.CodeTopicNotExist, sdk.CodeNotAllowed:
		return true
	}
	return false
}

// spoolRefusesRecord reports whether a whole send that failed with c was
// refused for a record it carried (illegal, unknown topic, too large), so
// that the record, once isolated, is rejected. Any other failure of a
// whole send (the backend down, an unknown cluster, a transport error) is
// the cluster's, and the send is retried.
func spoolRefusesRecord(c sdk.Code) bool {
	return c == sdk.CodeIllegal || c == sdk.CodeTopicNotExist || c == sdk.CodeTooLarge
}

// mergeSpoolEntries merges two seq-ordered lists.
func mergeSpoolEntries(a, b []*spoolEntry) []*spoolEntry {
	out := make([]*spoolEntry, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		if a[0].seq < b[0].seq {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	return append(append(out, a...), b...)
}

// read returns the cluster's durable records from seq from on, up to the
// forwarding batch limits.
func (s *Spool) read(cluster string, from uint64) ([]*spoolEntry, error) {
	durable := s.durable.Load()
	if from > durable {
		return nil, nil
	}
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.dbClosed {
		return nil, errSpoolClosed
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: spoolKey(cluster, from), UpperBound: spoolKey(cluster, durable+1)})
	if err != nil {
		return nil, err
	}
	var (
		out   []*spoolEntry
		bytes int
	)
	for ok := it.First(); ok && len(out) < spoolForwardRecords && bytes < spoolForwardBytes; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, errors.Join(err, it.Close())
		}
		_, seq, err := parseSpoolKey(it.Key())
		if err != nil {
			return nil, errors.Join(err, it.Close())
		}
		e := &spoolEntry{seq: seq, key: append([]byte(nil), it.Key()...), size: int64(len(it.Key()) + len(v))}
		e.rec, e.appended, e.corrupt = decodeSpoolEntry(v)
		if e.corrupt != nil {
			e.rec = sdk.Record{Value: append([]byte(nil), v...)}
		}
		out = append(out, e)
		bytes += len(v)
	}
	return out, it.Close()
}

// settle deletes acknowledged records and moves rejected ones (with the
// error each failed with) to the rejected file. Rejected records are in
// the file, fsynced, before they leave the store.
func (s *Spool) settle(c *spoolCluster, acked, rejected []*spoolEntry, errs []error) error {
	if len(acked) == 0 && len(rejected) == 0 {
		return nil
	}
	if len(rejected) > 0 {
		now := time.Now()
		rrs := make([]RejectedRecord, len(rejected))
		for i, e := range rejected {
			rrs[i] = rejectedRecord(c.name, e, errs[i], now)
		}
		if err := s.rejects.write(rrs); err != nil {
			// What was acknowledged is done all the same.
			s.remove(c, acked, nil)
			return err
		}
		s.logRejected(c.name, rrs)
	}
	s.remove(c, acked, rejected)
	return nil
}

// remove deletes acknowledged and rejected records from the store and
// counts them.
func (s *Spool) remove(c *spoolCluster, acked, rejected []*spoolEntry) {
	if err := s.delete(c, append(acked[:len(acked):len(acked)], rejected...)); err != nil {
		// The records were delivered or kept; if they are still in the
		// store after a restart, they go again: a duplicate, not a loss.
		s.log.Error("spool: deleting forwarded records failed", "cluster", c.name, "err", err)
	}
	s.metrics.forwarded.Add(float64(len(acked)))
	s.metrics.rejected.Add(float64(len(rejected)))
}

// delete removes entries from the store, fsynced (so a restart does not
// send them again), and uncounts them.
func (s *Spool) delete(c *spoolCluster, entries []*spoolEntry) error {
	if len(entries) == 0 {
		return nil
	}
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.dbClosed {
		return errSpoolClosed
	}
	b := s.db.NewBatch()
	var size int64
	for _, e := range entries {
		if err := b.Delete(e.key, nil); err != nil {
			return errors.Join(err, b.Close())
		}
		size += e.size
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return errors.Join(err, b.Close())
	}
	if err := b.Close(); err != nil {
		return err
	}
	s.bytes.Add(-size)
	s.depth.Add(-int64(len(entries)))
	s.mu.Lock()
	c.depth -= int64(len(entries))
	c.deletedBytes += size
	s.mu.Unlock()
	return nil
}

// advanceLow records the lowest seq of c that may still be stored: the
// first pending record's, else the next to read.
func (s *Spool) advanceLow(c *spoolCluster, pending []*spoolEntry, next uint64) {
	low := next
	if len(pending) > 0 {
		low = pending[0].seq
	}
	s.mu.Lock()
	c.low = max(c.low, low)
	s.mu.Unlock()
}

// reclaim lets the store drop the space of c's deleted records. Point
// deletes leave their records and tombstones on disk until compactions
// reach them; once enough were deleted, one range tombstone over all of
// c's resolved records (everything below low) lets pebble drop whole
// files without rewriting them, and when the forwarder is idle a
// compaction of that range returns the rest.
func (s *Spool) reclaim(ctx context.Context, c *spoolCluster, idle bool) {
	threshold := s.reclaimBytes
	if idle {
		threshold = s.reclaimIdleBytes
	}
	s.mu.Lock()
	low := c.low
	if c.deletedBytes < threshold {
		s.mu.Unlock()
		return
	}
	c.deletedBytes = 0
	s.mu.Unlock()
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.dbClosed {
		return
	}
	start, _ := spoolClusterBounds(c.name)
	end := spoolKey(c.name, low)
	if err := s.db.DeleteRange(start, end, pebble.NoSync); err != nil {
		s.log.Warn("spool: reclaiming space", "cluster", c.name, "err", err)
		return
	}
	if idle {
		if err := s.db.Compact(ctx, start, end, false); err != nil && ctx.Err() == nil {
			s.log.Warn("spool: compacting", "cluster", c.name, "err", err)
		}
	}
}

// logRejected logs rejected records, one line per topic and code.
func (s *Spool) logRejected(cluster string, rrs []RejectedRecord) {
	type topicCode struct {
		topic string
		code  sdk.Code
	}
	counts := map[topicCode]int{}
	var order []topicCode
	first := map[topicCode]string{}
	for _, rr := range rrs {
		k := topicCode{rr.Topic, rr.Code}
		if counts[k] == 0 {
			order = append(order, k)
			first[k] = rr.Error
		}
		counts[k]++
	}
	for _, k := range order {
		s.log.Error("spool: broker refused records; moved to "+spoolRejectedFile,
			"cluster", cluster, "topic", k.topic, "code", int(k.code), "records", counts[k], "err", first[k],
			"file", s.rejects.path)
	}
}
