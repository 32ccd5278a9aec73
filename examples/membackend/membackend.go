// Package membackend is an in-memory message broker served as an mqgate
// backend plugin: the example a plugin author reads first. It imports only
// github.com/mqgate/mqgate/sdk and the standard library.
//
// Every topic is a set of partitions, each an append-only log in memory;
// a record's qid is its partition number in decimal, as with Kafka. Records
// live as long as the process: there is no retention and nothing is saved,
// so this is a reference and a test double, not a broker to deploy.
package membackend

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/mqgate/mqgate/sdk"
)

const (
	// defaultPartitions is the `partitions` config key's default.
	defaultPartitions = 4
	// maxPartitions bounds the partitions of one topic.
	maxPartitions = 1024
	// maxAnswerBytes bounds the record bytes of one Poll or Fetch answer
	// beyond its first record, so the answer fits one gRPC message.
	maxAnswerBytes = sdk.MaxMessageBytes / 4
)

// errClosed answers every call made after Close. It is retriable: the
// gateway closes a plugin only to stop or replace it.
var errClosed = sdk.Errorf(sdk.CodeUnavailable, "membackend is closed")

// Backend is an in-memory broker. It is safe for concurrent use.
//
// It has no group coordination, the known limit of an example: every member
// of a group is given every partition of its topics. Run one member per
// group; a second member of the same group gets the same partitions and
// reads the same records.
//
// Records that Poll and Fetch return share their bytes with the log: treat
// them as read-only.
type Backend struct {
	log *slog.Logger

	// mu guards everything below, and the cursors of every consumer. It is
	// the only lock; waiting (Poll, Fetch) happens without it.
	mu         sync.Mutex
	partitions int32 // for topics created without a partition count
	topics     map[string]*topic
	committed  map[string]map[queue]int64 // group -> queue -> next offset
	// changed is closed and replaced whenever records are appended, and
	// closed for good by Close: waiters select on it instead of polling.
	changed chan struct{}
	closed  bool
}

var (
	_ sdk.Backend         = (*Backend)(nil)
	_ sdk.ConfigValidator = (*Backend)(nil)
)

// topic is one topic's partitions, each a log whose index is the offset.
type topic struct {
	name  string
	parts [][]sdk.Record
}

// queue names one partition of one topic.
type queue struct {
	topic     string
	partition int32
}

// New returns a Backend with the default config. A nil logger discards.
func New(logger *slog.Logger) *Backend {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Backend{
		log:        logger,
		partitions: defaultPartitions,
		topics:     make(map[string]*topic),
		committed:  make(map[string]map[queue]int64),
		changed:    make(chan struct{}),
	}
}

// rawConfig is the plugin's `config:` map as JSON carries it. partitions
// stays raw, so that a value of the wrong type and one out of range get the
// same message.
type rawConfig struct {
	Partitions json.RawMessage `json:"partitions"`
}

// parseConfig returns the partition count config asks for and every
// problem of config, each a *sdk.ConfigError naming its key. Configure and
// ValidateConfig share it, so `mqgate check` says what starting the plugin
// would. An empty config means the defaults.
func parseConfig(config []byte) (int32, sdk.ConfigErrors) {
	partitions := int32(defaultPartitions)
	if len(bytes.TrimSpace(config)) == 0 {
		return partitions, nil
	}
	var raw rawConfig
	var errs sdk.ConfigErrors
	// DecodeConfig reports every unknown key, naming the known one it is
	// likely a misspelling of.
	errs.Add(sdk.DecodeConfig(config, &raw))
	if raw.Partitions != nil {
		var n *int32 // nil for null
		if err := json.Unmarshal(raw.Partitions, &n); err != nil || n == nil || *n < 1 || *n > maxPartitions {
			errs.Addf("partitions", "want a whole number from 1 to %d, got %s", maxPartitions, raw.Partitions)
		} else {
			partitions = *n
		}
	}
	return partitions, errs
}

// ValidateConfig returns every problem of config without applying it; nil
// means Configure accepts it. `mqgate check` asks it, so that mistakes show
// before the gateway runs.
func (b *Backend) ValidateConfig(config []byte) sdk.ConfigErrors {
	_, errs := parseConfig(config)
	return errs
}

// Configure applies the config, a JSON object whose only key is
// `partitions` (default 4): the partition count of topics created without
// one. A config with problems is refused with sdk.ConfigErrors holding
// every one, each naming its key, and leaves the Backend as it was.
func (b *Backend) Configure(_ context.Context, config []byte) error {
	partitions, errs := parseConfig(config)
	if len(errs) > 0 {
		return errs
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errClosed
	}
	b.partitions = partitions
	b.log.Info("configured", "partitions", partitions)
	return nil
}

// EnsureTopics creates the topics that do not exist, with the asked
// partitions (0 means the configured default). Topic configs are accepted
// and ignored: an in-memory log has no settings. Nothing is created unless
// every spec is valid.
func (b *Backend) EnsureTopics(_ context.Context, specs []sdk.TopicSpec) error {
	for _, s := range specs {
		if s.Name == "" {
			return sdk.Errorf(sdk.CodeIllegal, "topic name must not be empty")
		}
		if s.Partitions < 0 || s.Partitions > maxPartitions {
			return sdk.Errorf(sdk.CodeIllegal, "topic %s: partitions %d out of range: want 0 (the default) to %d", s.Name, s.Partitions, maxPartitions)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errClosed
	}
	for _, s := range specs {
		b.topicLocked(s.Name, s.Partitions)
	}
	return nil
}

// topicLocked returns the named topic, creating it with partitions (0: the
// default) when it does not exist. b.mu is held.
func (b *Backend) topicLocked(name string, partitions int32) *topic {
	if t, ok := b.topics[name]; ok {
		return t
	}
	if partitions == 0 {
		partitions = b.partitions
	}
	t := &topic{name: name, parts: make([][]sdk.Record, partitions)}
	b.topics[name] = t
	b.log.Info("created topic", "topic", name, "partitions", partitions)
	return t
}

// Produce appends each record to the partition its placement picks: an
// explicit index, sdk.PartitionHash (Hash % partitions) or
// sdk.PartitionRandom. A topic that does not exist is created with the
// default partitions. A bad placement fails only its own record.
func (b *Backend) Produce(_ context.Context, records []sdk.Record) ([]sdk.ProduceResult, error) {
	// The log keeps its own copies, made before taking the lock, so that a
	// caller reusing its buffers never changes stored records.
	stored := make([]sdk.Record, len(records))
	for i, r := range records {
		stored[i] = sdk.Record{Topic: r.Topic, Key: bytes.Clone(r.Key), Value: bytes.Clone(r.Value), Tags: r.Tags}
		for _, h := range r.Headers {
			stored[i].Headers = append(stored[i].Headers, sdk.Header{Key: h.Key, Value: bytes.Clone(h.Value)})
		}
	}
	results := make([]sdk.ProduceResult, len(records))
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errClosed
	}
	now := time.Now()
	for i, r := range records {
		if r.Topic == "" {
			results[i].Err = sdk.Errorf(sdk.CodeIllegal, "record %d: topic must not be empty", i)
			continue
		}
		t := b.topicLocked(r.Topic, 0)
		p, err := t.place(r)
		if err != nil {
			results[i].Err = err
			continue
		}
		rec := stored[i]
		rec.Qid, rec.Partition, rec.Offset, rec.Timestamp = qidOf(p), p, int64(len(t.parts[p])), now
		t.parts[p] = append(t.parts[p], rec)
		results[i] = sdk.ProduceResult{Qid: rec.Qid, Partition: p, Offset: rec.Offset}
	}
	close(b.changed) // wake every waiting Poll and Fetch
	b.changed = make(chan struct{})
	return results, nil
}

// place returns the partition r's placement picks in t.
func (t *topic) place(r sdk.Record) (int32, error) {
	n := int32(len(t.parts))
	switch {
	case r.Partition == sdk.PartitionHash:
		return int32(r.Hash % uint64(n)), nil
	case r.Partition == sdk.PartitionRandom:
		return rand.Int32N(n), nil
	case r.Partition < 0:
		return 0, sdk.Errorf(sdk.CodeIllegal, "partition %d: want an index, -1 (hash) or -2 (random)", r.Partition)
	case r.Partition >= n:
		return 0, sdk.Errorf(sdk.CodeIllegal, "partition %d out of range: topic %s has %d partitions", r.Partition, t.name, n)
	}
	return r.Partition, nil
}

// qidOf is the qid of partition p: the number in decimal.
func qidOf(p int32) string { return strconv.Itoa(int(p)) }

// positionLocked finds a queue by topic and qid and checks that offset
// lies within it; it returns the queue's log. b.mu is held.
func (b *Backend) positionLocked(topicName, qid string, offset int64) (queue, []sdk.Record, error) {
	t, ok := b.topics[topicName]
	if !ok {
		return queue{}, nil, sdk.Errorf(sdk.CodeTopicNotExist, "topic %s does not exist", topicName)
	}
	p, err := strconv.ParseInt(qid, 10, 32)
	if err != nil || qid != qidOf(int32(p)) || p < 0 || p >= int64(len(t.parts)) {
		return queue{}, nil, sdk.Errorf(sdk.CodeIllegal, "qid %q of topic %s: want a partition number from 0 to %d", qid, topicName, len(t.parts)-1)
	}
	log := t.parts[p]
	if offset < 0 || offset > int64(len(log)) {
		return queue{}, nil, sdk.Errorf(sdk.CodeIllegal, "offset %d of %s qid %s out of range: valid offsets are 0 to %d", offset, topicName, qid, len(log))
	}
	return queue{topicName, int32(p)}, log, nil
}

// Commit stores the group's offsets, each between 0 and its queue's end.
// Either every offset is stored or, on error, none. Unlike Kafka, it is
// allowed while the group has members.
func (b *Backend) Commit(_ context.Context, group string, offsets []sdk.Offset) error {
	if group == "" {
		return sdk.Errorf(sdk.CodeIllegal, "group must not be empty")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errClosed
	}
	queues := make([]queue, len(offsets))
	for i, o := range offsets {
		q, _, err := b.positionLocked(o.Topic, o.Qid, o.Offset)
		if err != nil {
			return fmt.Errorf("committing for group %s: %w", group, err)
		}
		queues[i] = q
	}
	if b.committed[group] == nil {
		b.committed[group] = make(map[queue]int64)
	}
	for i, q := range queues {
		b.committed[group][q] = offsets[i].Offset
	}
	return nil
}

// ListOffsets gives every qid of the topics, in the asked order and by
// partition: Start is 0 (nothing is ever deleted), End the next offset, and
// Committed the group's offset or -1. An unknown topic fails the call with
// sdk.CodeTopicNotExist.
func (b *Backend) ListOffsets(_ context.Context, topics []string, group string) ([]sdk.QidOffsets, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errClosed
	}
	var out []sdk.QidOffsets
	for _, name := range topics {
		t, ok := b.topics[name]
		if !ok {
			return nil, sdk.Errorf(sdk.CodeTopicNotExist, "topic %s does not exist", name)
		}
		for p, log := range t.parts {
			committed, ok := b.committed[group][queue{name, int32(p)}]
			if !ok {
				committed = -1
			}
			out = append(out, sdk.QidOffsets{Topic: name, Qid: qidOf(int32(p)), Partition: int32(p),
				Start: 0, End: int64(len(log)), Committed: committed})
		}
	}
	return out, nil
}

// Fetch reads each position: at most req.MaxRecords records (0: no count
// limit), and NextOffset to continue from. An offset past the queue's end
// fails that position with sdk.CodeIllegal naming the valid range. When no
// position has records or an error, Fetch waits up to req.MaxWait for some.
func (b *Backend) Fetch(ctx context.Context, req sdk.FetchRequest) ([]sdk.FetchResult, error) {
	maxRecords := int(req.MaxRecords)
	if maxRecords <= 0 {
		maxRecords = math.MaxInt
	}
	var timeout <-chan time.Time
	if req.MaxWait > 0 {
		timer := time.NewTimer(req.MaxWait)
		defer timer.Stop()
		timeout = timer.C
	}
	for {
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return nil, errClosed
		}
		results := make([]sdk.FetchResult, len(req.Positions))
		ready := false
		budget := answerBudget{left: maxAnswerBytes}
		for i, pos := range req.Positions {
			res := sdk.FetchResult{Topic: pos.Topic, Qid: pos.Qid, NextOffset: pos.Offset}
			if _, log, err := b.positionLocked(pos.Topic, pos.Qid, pos.Offset); err != nil {
				res.Err = err
			} else {
				res.Records = budget.read(log, pos.Offset, maxRecords)
				res.NextOffset += int64(len(res.Records))
			}
			results[i] = res
			ready = ready || res.Err != nil || len(res.Records) > 0
		}
		changed := b.changed
		b.mu.Unlock()
		if ready || timeout == nil {
			return results, nil
		}
		select {
		case <-changed:
		case <-timeout:
			return results, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// answerBudget bounds the bytes of one Poll or Fetch answer. The first
// record is always taken, so a record larger than the budget is never stuck.
type answerBudget struct {
	left int
	took bool
}

// read returns up to maxRecords records of log from offset from that fit.
func (a *answerBudget) read(log []sdk.Record, from int64, maxRecords int) []sdk.Record {
	to := from
	for to < int64(len(log)) && to-from < int64(maxRecords) {
		r := log[to]
		size := len(r.Key) + len(r.Value) + len(r.Tags)
		for _, h := range r.Headers {
			size += len(h.Key) + len(h.Value)
		}
		if a.took && size > a.left {
			break
		}
		a.left -= size
		a.took = true
		to++
	}
	// The capacity limit keeps a caller's append from writing into the log.
	return log[from:to:to]
}

// Close releases every waiting Poll and Fetch; they, and every later call,
// fail with sdk.CodeUnavailable. The records are dropped.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.closed = true
		b.topics, b.committed = nil, nil
		close(b.changed)
	}
	return nil
}

// Consume starts a member of sub.Group on sub.Topics, which must exist. Its
// first Poll returns every partition of those topics as one Assigned
// event; later Polls return records from the group's committed offset, or
// from sub.Start on a queue the group never committed. There is no group
// coordination: see Backend.
func (b *Backend) Consume(ctx context.Context, sub sdk.Subscription) (sdk.Consumer, error) {
	if sub.Group == "" || len(sub.Topics) == 0 {
		return nil, sdk.Errorf(sdk.CodeIllegal, "a subscription needs a group and at least one topic")
	}
	if sub.Start != sdk.StartEarliest && sub.Start != sdk.StartLatest {
		return nil, sdk.Errorf(sdk.CodeIllegal, "start position %d: want 0 (earliest) or 1 (latest)", sub.Start)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errClosed
	}
	c := &consumer{b: b, ctx: ctx, group: sub.Group, done: make(chan struct{})}
	for i, name := range sub.Topics {
		t, ok := b.topics[name]
		if !ok {
			return nil, sdk.Errorf(sdk.CodeTopicNotExist, "topic %s does not exist", name)
		}
		if slices.Contains(sub.Topics[:i], name) {
			continue
		}
		for p, log := range t.parts {
			q := queue{name, int32(p)}
			next, ok := b.committed[sub.Group][q]
			if !ok && sub.Start == sdk.StartLatest {
				next = int64(len(log))
			}
			c.cursors = append(c.cursors, &cursor{queue: q, topic: t, next: next})
		}
	}
	return c, nil
}

// consumer is one member of a group. Its state is guarded by b.mu, so Poll,
// Commit and Close may be called from any goroutine.
type consumer struct {
	b     *Backend
	ctx   context.Context // Consume's: the consumer ends with it
	group string
	done  chan struct{} // closed by Close
	once  sync.Once

	assigned bool      // the Assigned event was returned
	cursors  []*cursor // every partition of the subscribed topics
	first    int       // the cursor the next Poll reads first, for fairness
}

// cursor is where a consumer reads one queue next.
type cursor struct {
	queue
	topic *topic
	next  int64
}

// Poll returns the assignment first, then up to maxRecords records,
// waiting until some are produced or ctx ends.
func (c *consumer) Poll(ctx context.Context, maxRecords int) (sdk.ConsumeEvent, error) {
	maxRecords = max(maxRecords, 1)
	for {
		c.b.mu.Lock()
		if err := c.usableLocked(); err != nil {
			c.b.mu.Unlock()
			return sdk.ConsumeEvent{}, err
		}
		if !c.assigned {
			c.assigned = true
			ev := sdk.ConsumeEvent{Assigned: make([]sdk.Offset, len(c.cursors))}
			for i, cur := range c.cursors {
				ev.Assigned[i] = sdk.Offset{Topic: cur.queue.topic, Qid: qidOf(cur.partition), Offset: cur.next}
			}
			c.b.mu.Unlock()
			return ev, nil
		}
		// Start at a different queue each time, so a busy one cannot
		// starve the others.
		var records []sdk.Record
		budget := answerBudget{left: maxAnswerBytes}
		for i := range c.cursors {
			cur := c.cursors[(c.first+i)%len(c.cursors)]
			got := budget.read(cur.topic.parts[cur.partition], cur.next, maxRecords-len(records))
			cur.next += int64(len(got))
			records = append(records, got...)
		}
		c.first = (c.first + 1) % len(c.cursors)
		changed := c.b.changed
		c.b.mu.Unlock()
		if len(records) > 0 {
			return sdk.ConsumeEvent{Records: records}, nil
		}
		select {
		case <-changed:
		case <-c.done:
		case <-c.ctx.Done():
		case <-ctx.Done():
			return sdk.ConsumeEvent{}, ctx.Err()
		}
	}
}

// usableLocked tells why the consumer cannot go on, if it cannot. b.mu is
// held.
func (c *consumer) usableLocked() error {
	select {
	case <-c.done:
		return sdk.Errorf(sdk.CodeUnavailable, "consumer of group %s is closed", c.group)
	default:
	}
	if c.b.closed {
		return errClosed
	}
	return c.ctx.Err()
}

// Commit stores offsets for the group, as Backend.Commit does. It does not
// move this consumer's own position.
func (c *consumer) Commit(ctx context.Context, offsets []sdk.Offset) error {
	return c.b.Commit(ctx, c.group, offsets)
}

// Close ends the consumer and releases a Poll waiting on it. The group
// keeps its committed offsets.
func (c *consumer) Close() error {
	c.once.Do(func() { close(c.done) })
	return nil
}
