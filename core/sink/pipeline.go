package sink

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mqgate/mqgate/core/config"
	"github.com/mqgate/mqgate/core/consume"
	"github.com/mqgate/mqgate/core/transform"
	"github.com/mqgate/mqgate/sdk"
)

// A pipeline writes the messages of its topics through its sink plugin. A
// puller per topic takes messages from the topic's group session (a
// consume.Reader) into lanes; workers, Concurrency of them, each gather a
// batch from the ready lanes and write it. A lane is the unit of order
// (one per key, per qid or per message: config.Sink.Order): only its front
// is ever in a batch or waiting for a retry, so a failing message holds
// back its lane and nothing else.
type pipeline struct {
	svc       *Service
	cfg       *config.Sink
	logger    *slog.Logger
	plugin    sdk.Sink
	filter    *transform.Filter
	transform *transform.Transform
	readers   []*topicReader
	// maxHeld bounds the bytes of the messages held, with cfg.Buffer
	// bounding their number.
	maxHeld int

	written, failures, retried, deadLettered, filtered, batches atomic.Int64
	lastFailureLog                                              atomic.Int64 // unix ns

	mu        sync.Mutex
	lanes     map[string]*lane
	ready     []*lane
	changed   chan struct{} // closed and replaced when a lane gets ready or room frees up
	queued    int           // messages held, in flight or not
	held      int           // their bytes
	inFlight  int           // messages in Write calls
	retrying  int           // lanes waiting for a retry
	closing   bool
	state     string
	lastErr   string
	lastErrAt time.Time
}

// topicReader is the pipeline's reader of one topic.
type topicReader struct {
	topic string
	r     *consume.Reader
}

// item is one message held by the pipeline.
type item struct {
	tr   *topicReader
	rec  sdk.Record // as the plugin gets it: filtered and transformed
	size int
	// failed counts the Writes that failed the message for a reason of its
	// own; outages counts those failed by an outage of the store or the
	// plugin (a retriable code), which never dead-letter it.
	failed, outages int
	// revoked is set when its qid is given up while its lane is in a
	// Write: once the Write ends, what of it is left is released.
	revoked bool
	lastErr string // of its last failed write
}

type laneState int

const (
	laneIdle  laneState = iota // not in ready, nothing of it in flight
	laneReady                  // in ready
	laneBusy                   // its front is in a Write or waiting for a retry
)

type lane struct {
	key   string
	items []*item
	state laneState
	timer *time.Timer // the pending retry, if any
}

// States a pipeline reports.
const (
	StateStarting = "starting" // no topic pulled yet
	StateRunning  = "running"
	StateWaiting  = "waiting" // a topic cannot be consumed now; last_error says why
	StateStopped  = "stopped"
)

func newPipeline(svc *Service, cfg *config.Sink, plugin sdk.Sink) (*pipeline, error) {
	if plugin == nil {
		return nil, fmt.Errorf("sink %s: no plugin", cfg.Name)
	}
	p := &pipeline{svc: svc, cfg: cfg, logger: svc.logger.With("sink", cfg.Name), plugin: plugin,
		lanes: map[string]*lane{}, changed: make(chan struct{}), state: StateStarting,
		maxHeld: int(min(int64(cfg.Concurrency+2)*cfg.Batch.MaxBytes, 1<<30))}
	var err error
	if cfg.Filter != "" {
		if p.filter, err = transform.CompileFilter(cfg.Filter); err != nil {
			return nil, fmt.Errorf("sink %s: filter: %w", cfg.Name, err)
		}
	}
	if t := cfg.Transform; t != nil {
		if p.transform, err = transform.Compile(transform.Spec{Body: t.Body, Headers: t.Headers, Transit: t.Transit}); err != nil {
			return nil, fmt.Errorf("sink %s: transform.%w", cfg.Name, err)
		}
	}
	for _, topic := range cfg.Topics {
		tr := &topicReader{topic: topic}
		ropts := consume.ReaderOptions{Cluster: cfg.Cluster, OnRevoke: func(qids []string) { p.revoke(tr, qids) }}
		if tr.r, err = svc.opts.Consumer.OpenReader(cfg.Group, topic, ropts); err != nil {
			p.closeReaders()
			return nil, fmt.Errorf("sink %s: topic %s: %w", cfg.Name, topic, err)
		}
		p.readers = append(p.readers, tr)
	}
	return p, nil
}

func (p *pipeline) closeReaders() {
	for _, tr := range p.readers {
		tr.r.Close()
	}
}

func (p *pipeline) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// run works the pipeline until ctx ends; work ends the workers, which
// Close cancels only after giving Writes in flight time to finish.
func (p *pipeline) run(ctx, work context.Context) {
	var wg sync.WaitGroup
	for _, tr := range p.readers {
		wg.Go(func() { p.pull(ctx, tr) })
	}
	var workers sync.WaitGroup
	for range p.cfg.Concurrency {
		workers.Go(func() { p.work(ctx, work) })
	}
	wg.Wait()
	p.mu.Lock()
	p.closing = true
	p.notifyLocked()
	p.mu.Unlock()
	workers.Wait()
}

// pull takes messages of one topic while there is room.
func (p *pipeline) pull(ctx context.Context, tr *topicReader) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		p.mu.Lock()
		free := min(p.cfg.Buffer-p.queued, p.cfg.Batch.MaxMessages)
		full := p.held >= p.maxHeld
		ch := p.changed
		p.mu.Unlock()
		// Pull a good share at a time: refilling one message per write
		// costs a pull per message.
		if full || free <= 0 || free < min(p.cfg.Buffer/4, p.cfg.Batch.MaxMessages) {
			select {
			case <-ch:
			case <-ctx.Done():
			}
			continue
		}
		b, err := tr.r.Pull(ctx, free, time.Second)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			p.setState(StateWaiting, fmt.Sprintf("consuming %s: %v", tr.topic, err))
			sleep(ctx, backoff)
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		p.setState(StateRunning, "")
		if len(b.Messages) > 0 {
			p.admit(tr, b)
		}
	}
}

// waitChange waits for ch to close or ctx to end, and at most d when d > 0.
func waitChange(ctx context.Context, ch <-chan struct{}, d time.Duration) {
	var timeout <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-ch:
	case <-timeout:
	case <-ctx.Done():
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func (p *pipeline) setState(state, lastErr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if state == StateRunning && p.state == StateWaiting {
		p.logger.Info("sink consuming again")
	}
	if state == StateWaiting && p.state != StateWaiting {
		p.logger.Warn("sink waiting", "error", lastErr)
	}
	p.state = state
	if lastErr != "" {
		p.lastErr, p.lastErrAt = lastErr, time.Now()
	}
}

// admit takes a pulled batch: what the filter rejects is acked at once,
// what the filter or transform cannot evaluate is dead-lettered (it never
// will be), and the rest goes into lanes as the records the plugin gets.
func (p *pipeline) admit(tr *topicReader, b consume.Batch) {
	var done []int64
	items := make([]*item, 0, len(b.Messages))
	for i := range b.Messages {
		m := &b.Messages[i]
		in := &transform.Input{Topic: m.Topic, Qid: m.Qid, Offset: m.Offset, Key: m.Key, Value: m.Value,
			Tags: m.Tags, Headers: m.Headers, Timestamp: m.Timestamp}
		if p.filter != nil {
			ok, err := p.filter.Match(in)
			if err != nil {
				p.deadLetter(tr, m.Qid, m.Offset, 0, "filter: "+err.Error())
				continue
			}
			if !ok {
				done = append(done, m.Offset)
				p.filtered.Add(1)
				continue
			}
		}
		rec := sdk.Record{Topic: m.Topic, Qid: m.Qid, Offset: m.Offset, Key: m.Key, Value: m.Value,
			Headers: m.Headers, Tags: m.Tags, Timestamp: m.Timestamp}
		if p.transform != nil {
			out, err := p.transform.Apply(in)
			if err != nil {
				p.deadLetter(tr, m.Qid, m.Offset, 0, "transform: "+err.Error())
				continue
			}
			applyTransform(&rec, out)
		}
		it := &item{tr: tr, rec: rec, size: recordSize(&rec)}
		items = append(items, it)
	}
	if len(done) > 0 {
		if err := tr.r.Ack(b.Qid, done...); err != nil {
			p.logger.Debug("acking filtered messages", "topic", tr.topic, "qid", b.Qid, "error", err)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, it := range items {
		key := p.laneKey(&it.rec)
		l := p.lanes[key]
		if l == nil {
			l = &lane{key: key}
			p.lanes[key] = l
		}
		l.items = append(l.items, it)
		p.queued++
		p.held += it.size
		if l.state == laneIdle {
			l.state = laneReady
			p.ready = append(p.ready, l)
		}
	}
	p.notifyLocked()
}

// applyTransform puts what a transform built into rec: the body replaces
// the value, and the headers it built replace headers of the same name.
func applyTransform(rec *sdk.Record, out transform.Output) {
	if out.HasBody {
		rec.Value = out.Body
	}
	if len(out.Headers) == 0 {
		return
	}
	hs := slices.DeleteFunc(slices.Clone(rec.Headers), func(h sdk.Header) bool {
		_, replaced := out.Headers[h.Key]
		return replaced
	})
	for _, name := range slices.Sorted(maps.Keys(out.Headers)) {
		hs = append(hs, sdk.Header{Key: name, Value: []byte(out.Headers[name])})
	}
	rec.Headers = hs
}

func recordSize(r *sdk.Record) int {
	n := len(r.Key) + len(r.Value) + len(r.Topic) + len(r.Qid) + len(r.Tags) + 32
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// laneKey names the lane a record waits in.
func (p *pipeline) laneKey(r *sdk.Record) string {
	switch {
	case p.cfg.Order == "qid":
		return r.Topic + "\x00" + r.Qid
	case p.cfg.Order == "key" && r.Key != nil:
		return r.Topic + "\x01" + string(r.Key)
	default: // none, or a message without a key: no order to keep
		return r.Topic + "\x02" + r.Qid + "\x00" + strconv.FormatInt(r.Offset, 10)
	}
}

// run is the part of one lane in a batch: its first n items, copied out
// under the lock (the lane grows behind them meanwhile).
type run struct {
	l     *lane
	n     int
	items []*item
}

// work writes batches until the pipeline closes.
func (p *pipeline) work(ctx, work context.Context) {
	for {
		runs, recs := p.take(ctx)
		if runs == nil {
			return
		}
		p.write(work, runs, recs)
	}
}

// take waits for ready lanes, lingers for more while the batch would be
// short, and returns the fronts of the ready lanes, now in flight, with
// their records in lane order; nil once the pipeline closes.
func (p *pipeline) take(ctx context.Context) ([]run, []sdk.Record) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var deadline time.Time // of the linger, once a short batch is ready
	for {
		if p.closing || ctx.Err() != nil {
			return nil, nil
		}
		var wait time.Duration
		if len(p.ready) > 0 {
			if p.cfg.Batch.Linger <= 0 || p.readyCountLocked() >= p.cfg.Batch.MaxMessages {
				break
			}
			now := time.Now()
			if deadline.IsZero() {
				deadline = now.Add(p.cfg.Batch.Linger)
			}
			if wait = deadline.Sub(now); wait <= 0 {
				break
			}
		} else {
			deadline = time.Time{} // taken by another worker: linger anew
		}
		ch := p.changed
		p.mu.Unlock()
		waitChange(ctx, ch, wait)
		p.mu.Lock()
	}
	var runs []run
	var recs []sdk.Record
	bytes := 0
	taken := 0
	for taken < len(p.ready) && len(recs) < p.cfg.Batch.MaxMessages {
		l := p.ready[taken]
		n := 0
		for n < len(l.items) && len(recs) < p.cfg.Batch.MaxMessages {
			it := l.items[n]
			if len(recs) > 0 && int64(bytes+it.size) > p.cfg.Batch.MaxBytes {
				break
			}
			recs = append(recs, it.rec)
			bytes += it.size
			n++
			if p.cfg.Order != "qid" {
				break // key and none: one message of a lane per Write
			}
		}
		if n == 0 {
			break // full by bytes
		}
		l.state = laneBusy
		runs = append(runs, run{l, n, slices.Clone(l.items[:n])})
		taken++
	}
	p.ready = slices.Delete(p.ready, 0, taken)
	p.inFlight += len(recs)
	return runs, recs
}

// readyCountLocked counts the messages a batch could take now.
func (p *pipeline) readyCountLocked() int {
	if p.cfg.Order != "qid" {
		return len(p.ready)
	}
	n := 0
	for _, l := range p.ready {
		n += len(l.items)
		if n >= p.cfg.Batch.MaxMessages {
			break
		}
	}
	return n
}

// write writes one batch and settles each message by its result.
func (p *pipeline) write(ctx context.Context, runs []run, recs []sdk.Record) {
	wctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	start := time.Now()
	res, err := p.plugin.Write(wctx, recs)
	cancel()
	p.svc.metrics.latency.WithLabelValues(p.cfg.Name).Observe(time.Since(start).Seconds())
	p.svc.metrics.records.WithLabelValues(p.cfg.Name).Observe(float64(len(recs)))
	p.batches.Add(1)
	if err == nil && len(res) != len(recs) {
		err = sdk.Errorf(sdk.CodeInternal, "sink plugin returned %d results for %d records", len(res), len(recs))
	}
	if err != nil && ctx.Err() != nil {
		// Shutting down: what the store has is unknown; the next owner
		// writes it again.
		p.releaseAll(runs)
		return
	}
	results := func(i int) error {
		if err != nil {
			return err
		}
		return res[i]
	}
	acks := map[*topicReader]map[string][]int64{}
	i := 0
	for _, r := range runs {
		failed := -1
		for j := range r.n {
			if e := results(i + j); e != nil && failed < 0 {
				failed = j
				p.failedWrite(r.items[j], e)
			}
		}
		i += r.n
		ok := r.n
		if failed >= 0 {
			ok = failed
		}
		for _, it := range r.items[:ok] {
			m := acks[it.tr]
			if m == nil {
				m = map[string][]int64{}
				acks[it.tr] = m
			}
			m[it.rec.Qid] = append(m[it.rec.Qid], it.rec.Offset)
		}
		p.written.Add(int64(ok))
		p.settleRun(r, ok, failed >= 0)
	}
	for tr, byQid := range acks {
		for qid, offs := range byQid {
			if err := tr.r.Ack(qid, offs...); err != nil {
				// The qid moved on (the session gave it up or restarted):
				// its next owner writes the messages again.
				p.logger.Debug("acking written messages", "topic", tr.topic, "qid", qid, "error", err)
			}
		}
	}
}

// failedWrite counts a failed write of it and logs it, at most once a
// second.
func (p *pipeline) failedWrite(it *item, err error) {
	p.failures.Add(1)
	if sdk.CodeOf(err).Retriable() {
		it.outages++
	} else {
		it.failed++
	}
	now := time.Now()
	msg := fmt.Sprintf("%v (code %d)", err, sdk.CodeOf(err))
	p.mu.Lock()
	p.lastErr, p.lastErrAt = msg, now
	p.mu.Unlock()
	last := p.lastFailureLog.Load()
	if now.UnixNano()-last >= int64(time.Second) && p.lastFailureLog.CompareAndSwap(last, now.UnixNano()) {
		p.logger.Warn("sink write failed", "topic", it.rec.Topic, "qid", it.rec.Qid, "offset", it.rec.Offset,
			"attempt", it.failed+it.outages, "error", msg)
	}
	it.lastErr = msg
}

// settleRun ends the Write of run r, whose first ok items were written:
// they leave the lane. When the next one failed it is retried after a
// backoff or dead-lettered, and the rest of the run stays behind it, to be
// written again after it. What is left of qids revoked meanwhile is
// released for their next owner.
func (p *pipeline) settleRun(r run, ok int, failed bool) {
	var dead *item
	p.mu.Lock()
	l := r.l
	p.inFlight -= r.n
	p.dropLocked(l.items[:ok])
	l.items = l.items[ok:]
	var wait time.Duration
	if failed && !l.items[0].revoked {
		head := l.items[0]
		if p.cfg.CanSkip && head.failed >= p.cfg.Retry.Max {
			dead = head
			l.items = l.items[1:]
			p.dropLocked([]*item{head})
		} else {
			wait = p.backoff(head.failed + head.outages)
		}
	}
	release := slices.DeleteFunc(slices.Clone(l.items), func(it *item) bool { return !it.revoked })
	if len(release) > 0 {
		l.items = slices.DeleteFunc(l.items, func(it *item) bool { return it.revoked })
		p.dropLocked(release)
	}
	switch {
	case len(l.items) == 0:
		delete(p.lanes, l.key)
		l.state = laneIdle
	case wait > 0: // the failed front stays: it was not revoked
		p.retried.Add(1)
		p.retrying++
		l.timer = time.AfterFunc(wait, func() { p.retryDue(l) })
	default:
		l.state = laneReady
		p.ready = append(p.ready, l)
	}
	p.notifyLocked()
	p.mu.Unlock()
	if dead != nil {
		attempts := dead.failed + dead.outages
		p.deadLetter(dead.tr, dead.rec.Qid, dead.rec.Offset, attempts, fmt.Sprintf("%s (after %d attempts)", dead.lastErr, attempts))
	}
	p.releaseItems(release)
}

// dropLocked counts items as no longer held.
func (p *pipeline) dropLocked(items []*item) {
	for _, it := range items {
		p.queued--
		p.held -= it.size
	}
}

// releaseAll gives the messages of runs back unwritten at shutdown.
func (p *pipeline) releaseAll(runs []run) {
	var gone []*item
	p.mu.Lock()
	for _, r := range runs {
		p.inFlight -= r.n
		gone = append(gone, r.l.items[:r.n]...)
		p.dropLocked(r.l.items[:r.n])
		r.l.items = r.l.items[r.n:]
		if len(r.l.items) == 0 {
			delete(p.lanes, r.l.key)
		}
		r.l.state = laneIdle // not ready: the pipeline is closing
	}
	p.notifyLocked()
	p.mu.Unlock()
	p.releaseItems(gone)
}

// releaseItems gives items back to their sessions unsettled.
func (p *pipeline) releaseItems(items []*item) {
	for _, it := range items {
		if err := it.tr.r.Release(it.rec.Qid, it.rec.Offset); err != nil {
			p.logger.Debug("releasing a message", "topic", it.rec.Topic, "qid", it.rec.Qid, "offset", it.rec.Offset, "error", err)
		}
	}
}

// backoff is the wait before the write after attempt n.
func (p *pipeline) backoff(n int) time.Duration {
	b := p.cfg.Retry.Backoff
	return b[max(1, min(n, len(b)))-1]
}

func (p *pipeline) retryDue(l *lane) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if l.timer == nil || p.lanes[l.key] != l {
		return // given up (revoked or closing) meanwhile
	}
	l.timer = nil
	p.retrying--
	l.state = laneReady
	p.ready = append(p.ready, l)
	p.notifyLocked()
}

func (p *pipeline) deadLetter(tr *topicReader, qid string, offset int64, attempts int, why string) {
	if err := tr.r.DeadLetter(qid, offset, attempts, why); err != nil {
		p.logger.Debug("dead-lettering a message", "topic", tr.topic, "qid", qid, "offset", offset, "error", err)
		return
	}
	p.deadLettered.Add(1)
	p.logger.Warn("sink message sent to the dead-letter topic", "topic", tr.topic, "qid", qid, "offset", offset, "attempts", attempts, "error", why)
}

// revoke gives up what is held of qids of tr's topic that is not in a
// Write (queued, or waiting for a retry), so the session can hand the qids
// over at once; what is in a Write finishes it.
func (p *pipeline) revoke(tr *topicReader, qids []string) {
	var gone []*item
	p.mu.Lock()
	for key, l := range p.lanes {
		inFlight := l.state == laneBusy && l.timer == nil
		kept := l.items[:0:0]
		for _, it := range l.items {
			if it.tr != tr || !slices.Contains(qids, it.rec.Qid) {
				kept = append(kept, it)
				continue
			}
			if inFlight {
				// The front of the lane is in a Write, and the rest waits
				// behind it: settleRun gives it back.
				it.revoked = true
				kept = append(kept, it)
				continue
			}
			gone = append(gone, it)
		}
		if len(kept) == len(l.items) {
			continue
		}
		p.dropLocked(slices.DeleteFunc(slices.Clone(l.items), func(it *item) bool { return slices.Contains(kept, it) }))
		headGone := len(kept) == 0 || kept[0] != l.items[0]
		l.items = kept
		if headGone && l.timer != nil {
			l.timer.Stop()
			l.timer = nil
			p.retrying--
			l.state = laneIdle
		}
		switch {
		case len(kept) == 0:
			delete(p.lanes, key)
			if l.state == laneReady {
				p.ready = slices.DeleteFunc(p.ready, func(x *lane) bool { return x == l })
			}
		case l.state == laneIdle:
			l.state = laneReady
			p.ready = append(p.ready, l)
		}
	}
	p.notifyLocked()
	p.mu.Unlock()
	p.releaseItems(gone)
}

// stopTimers cancels pending retries at shutdown.
func (p *pipeline) stopTimers() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.lanes {
		if l.timer != nil {
			l.timer.Stop()
			l.timer = nil
		}
	}
}

// Status is one pipeline's state in GET /v1/sinks.
type Status struct {
	Name    string   `json:"name"`
	Plugin  string   `json:"plugin"`
	Cluster string   `json:"cluster,omitempty"`
	Group   string   `json:"group"`
	Topics  []string `json:"topics"`
	// State is starting, running, waiting (a topic cannot be consumed
	// now; LastError says why) or stopped.
	State string `json:"state"`
	// PluginState is the state of the sink's plugin process: up,
	// starting, restarting, ...; PluginError its last error.
	PluginState string `json:"plugin_state,omitempty"`
	PluginError string `json:"plugin_error,omitempty"`
	// Queued counts the messages held (in a Write, waiting for a retry or
	// for their turn); InFlight those in Writes; Retrying the lanes whose
	// front waits for a retry.
	Queued   int `json:"queued"`
	InFlight int `json:"in_flight"`
	Retrying int `json:"retrying"`
	// Counters since the gateway started.
	Written      int64 `json:"written"`
	Failures     int64 `json:"failures"`
	Retried      int64 `json:"retried"`
	DeadLettered int64 `json:"dead_lettered"`
	Filtered     int64 `json:"filtered"`
	Batches      int64 `json:"batches"`
	// LastError is the last failed write or consume error.
	LastError     string `json:"last_error,omitempty"`
	LastErrorAtMs int64  `json:"last_error_at_ms,omitempty"`
}

func (p *pipeline) status() Status {
	p.mu.Lock()
	st := Status{Name: p.cfg.Name, Plugin: p.cfg.Plugin, Cluster: p.cfg.Cluster, Group: p.cfg.Group, Topics: p.cfg.Topics,
		State: p.state, Queued: p.queued, InFlight: p.inFlight, Retrying: p.retrying, LastError: p.lastErr}
	if !p.lastErrAt.IsZero() {
		st.LastErrorAtMs = p.lastErrAt.UnixMilli()
	}
	p.mu.Unlock()
	st.Written, st.Failures, st.Retried = p.written.Load(), p.failures.Load(), p.retried.Load()
	st.DeadLettered, st.Filtered, st.Batches = p.deadLettered.Load(), p.filtered.Load(), p.batches.Load()
	if f := p.svc.opts.PluginState; f != nil {
		st.PluginState, st.PluginError = f(p.cfg.Name)
	}
	return st
}
