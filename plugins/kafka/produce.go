package kafka

import (
	"context"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mqgate/mqgate/sdk"
)

// tagsHeader carries Record.Tags, which Kafka has no field for. Produce
// appends it when Tags is set; consume and Fetch remove the last header of
// this name and put its value in Record.Tags, so a round trip through mqgate
// is exact and plain Kafka clients still see the tags. The name is thereby
// reserved: a record produced with its own "tags" header and empty Tags
// comes back with that value in Tags and without the header.
const tagsHeader = "tags"

// placement is a record's partition choice, carried to the partitioner in
// kgo.Record.Context.
type placement struct {
	// Context is the record's context, which placement is: Value gives
	// the placement itself for placementKey, so a record costs no
	// context allocation of its own.
	context.Context
	partition int32  // >= 0, sdk.PartitionHash or sdk.PartitionRandom
	hash      uint64 // for sdk.PartitionHash
	index     int    // the record's place in its Produce call
	// partitions is set by the partitioner when an explicit partition is
	// out of range: the topic's partition count.
	partitions int
	outOfRange bool
}

type placementKey struct{}

func (p *placement) Value(key any) any {
	if key == (placementKey{}) {
		return p
	}
	return p.Context.Value(key)
}

// placementPartitioner places records as the core chose: an explicit
// partition as is, a hash by hash % partitions, otherwise at random.
type placementPartitioner struct{}

func (placementPartitioner) ForTopic(string) kgo.TopicPartitioner { return placementPartitioner{} }

// RequiresConsistency is true for explicit and hashed records: they must map
// over all partitions, not only the writable ones, or their qid would
// depend on broker health.
func (placementPartitioner) RequiresConsistency(r *kgo.Record) bool {
	p := placementOf(r)
	return p != nil && p.partition != sdk.PartitionRandom
}

func (placementPartitioner) Partition(r *kgo.Record, n int) int {
	p := placementOf(r)
	switch {
	case p == nil || p.partition == sdk.PartitionRandom:
		return rand.IntN(n)
	case p.partition == sdk.PartitionHash:
		return int(p.hash % uint64(n))
	case int(p.partition) >= n:
		// kgo fails the record; Produce turns that into CodeIllegal.
		// Only this record's placement is written, under kgo's
		// per-topic partitioner lock.
		p.partitions, p.outOfRange = n, true
		return -1
	default:
		return int(p.partition)
	}
}

func placementOf(r *kgo.Record) *placement {
	if r.Context == nil {
		return nil
	}
	p, _ := r.Context.Value(placementKey{}).(*placement)
	return p
}

// ReleasesProducedRecords says Produce reads nothing of its records once
// it has returned without an error (sdk.ProduceReleaser): it returns so
// only after every record's promise, after which franz-go reads nothing
// of the record either. Records it returns early on (its context ended)
// are franz-go's until their promises, which is why that return is an
// error.
func (b *Backend) ReleasesProducedRecords() bool { return true }

// Produce writes records and returns one result per record, in order. The
// records are produced together and the call waits for all of them. If ctx
// ends first, Produce returns ctx's error: records already sent may still
// land (at-least-once), and the rest are failed by produce_timeout.
func (b *Backend) Produce(ctx context.Context, records []sdk.Record) ([]sdk.ProduceResult, error) {
	c, err := b.clients()
	if err != nil {
		return nil, err
	}
	// The answer must reach the gateway before ctx's deadline, which the
	// gateway's call shares: at that moment it stops listening.
	ctx, cancel := b.callContext(ctx)
	defer cancel()
	// On the embedded broker a new topic is made with CreateTopics, which
	// kfake persists at once; its auto-creation is off (see startEmbedded).
	// External brokers create topics by their own auto.create.topics.enable;
	// one metadata request tells which topics they have or make.
	var topicErrs map[string]error
	if unknown := b.unknownTopics(records); c.cfg.embedded {
		if topicErrs, err = b.createTopics(ctx, c, unknown); err != nil {
			return nil, err
		}
	} else if topicErrs, err = b.lookupTopics(ctx, c, unknown); err != nil {
		return nil, b.callError(ctx, err, "looking up %d topics", len(unknown))
	}
	results := make([]sdk.ProduceResult, len(records))
	// The records do not take ctx's cancellation: kgo cancels a whole
	// batch by its first record's context, and a batch in the shared client
	// holds other callers' records. The records' lifetime is bounded by
	// produce_timeout instead.
	base := context.WithoutCancel(ctx)
	// One allocation each for the batch's placements and kgo records.
	places := make([]placement, len(records))
	krs := make([]kgo.Record, len(records))
	send := make([]*kgo.Record, 0, len(records))
	for i := range records {
		r := &records[i]
		results[i] = sdk.ProduceResult{Partition: r.Partition, Offset: -1}
		if err := checkProduce(r); err != nil {
			results[i].Err = err
			continue
		}
		if err := topicErrs[r.Topic]; err != nil {
			results[i].Err = err
			continue
		}
		places[i] = placement{Context: base, partition: r.Partition, hash: r.Hash, index: i}
		fillKgoRecord(&places[i], &krs[i], r)
		send = append(send, &krs[i])
	}
	if len(send) == 0 {
		return results, nil
	}

	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, errNotConfigured
	}
	b.wg.Add(1)
	b.mu.Unlock()
	// Each record's promise writes its own result; the last one done
	// closes done.
	done := make(chan struct{})
	var left atomic.Int64
	left.Store(int64(len(send)))
	promise := func(kr *kgo.Record, err error) {
		p := placementOf(kr)
		res := &results[p.index]
		switch {
		case err == nil:
			res.Partition = kr.Partition
			res.Qid = qidOf(kr.Partition)
			res.Offset = kr.Offset
		case p.outOfRange:
			res.Err = sdk.Errorf(sdk.CodeIllegal, "partition %d out of range: topic %s has %d partitions", p.partition, kr.Topic, p.partitions)
		case codeOf(err) == sdk.CodeTooLarge:
			res.Err = sdk.Errorf(sdk.CodeTooLarge, "record of %d bytes is too large for %s: the limit is %d bytes per batch, less where the topic's max.message.bytes is lower (%v)",
				len(kr.Key)+len(kr.Value), kr.Topic, c.cfg.maxBatchBytes(), err)
		default:
			res.Err = b.sdkError(err, "producing to %s", kr.Topic)
		}
		if left.Add(-1) == 0 {
			b.wg.Done()
			close(done)
		}
	}
	// Produce blocks while the client holds its most buffered records
	// (until records are done), whatever ctx says: it runs in a goroutine
	// so this call still answers by its deadline, keeping order.
	go func() {
		for _, kr := range send {
			c.producer.Produce(base, kr, promise)
		}
	}()
	select {
	case <-done:
	case <-ctx.Done():
		// The promises still write into results, which is no longer read.
		return nil, b.callError(ctx, ctx.Err(), "producing %d records", len(send))
	}
	return results, nil
}

// maxAnswerReserve bounds the time kept back from a call's deadline for its
// answer to travel back, through gRPC and a busy gateway: a quarter of what
// is left, at most this much.
const maxAnswerReserve = time.Second

// answerContext returns ctx with its deadline brought forward by up to
// reserve (see maxAnswerReserve), so that a call that runs out of time can
// still say why.
func answerContext(ctx context.Context, reserve time.Duration) (context.Context, context.CancelFunc) {
	dl, ok := ctx.Deadline()
	if !ok || reserve <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithDeadline(ctx, dl.Add(-min(time.Until(dl)/4, reserve)))
}

// callContext is answerContext, ended also by the cluster refusing the
// SASL credentials while the call waits (see authWatch.guard).
func (b *Backend) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancelAnswer := answerContext(ctx, b.answerReserve)
	ctx, cancelGuard := b.auth.guard(ctx)
	return ctx, func() { cancelGuard(); cancelAnswer() }
}

// callError is the error of a call that failed whole: while the cluster
// refuses the SASL credentials, or no broker can be dialed, that is what
// it says (code 17, naming the cause), whatever the call ran into
// meanwhile.
func (b *Backend) callError(ctx context.Context, err error, format string, args ...any) error {
	if auth := b.auth.failure(); auth != nil {
		return auth
	}
	if reach := b.reach.unreachable(); reach != nil {
		return sdk.Errorf(sdk.CodeUnavailable, "kafka brokers unreachable: %v", reach)
	}
	if ctx.Err() != nil {
		return sdk.Errorf(sdk.CodeTimeout, "the kafka brokers did not answer in time: "+format, args...)
	}
	return b.sdkError(err, format, args...)
}

// checkProduce refuses records no broker could place.
func checkProduce(r *sdk.Record) error {
	switch {
	case r.Topic == "":
		return sdk.Errorf(sdk.CodeIllegal, "topic is empty")
	case r.Partition < 0 && r.Partition != sdk.PartitionHash && r.Partition != sdk.PartitionRandom:
		return sdk.Errorf(sdk.CodeIllegal, "partition %d is neither an index nor a partitioning choice", r.Partition)
	}
	return nil
}

// fillKgoRecord makes kr the kgo record of r, to produce with ctx. Tags travel as the tags header.
func fillKgoRecord(ctx context.Context, kr *kgo.Record, r *sdk.Record) {
	*kr = kgo.Record{
		Topic:   r.Topic,
		Key:     r.Key,
		Value:   nonNil(r.Value),
		Context: ctx,
	}
	if len(r.Headers) > 0 || r.Tags != "" {
		kr.Headers = make([]kgo.RecordHeader, 0, len(r.Headers)+1)
		for _, h := range r.Headers {
			kr.Headers = append(kr.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
		}
		if r.Tags != "" {
			kr.Headers = append(kr.Headers, kgo.RecordHeader{Key: tagsHeader, Value: []byte(r.Tags)})
		}
	}
}

// nonNil is v, or an empty value for nil: a record's value is never null
// (a Kafka tombstone), as the plugin protocol carries it. A tombstone
// consumed is an empty value, and one dead-lettered or re-produced stays
// an empty value rather than deleting its key from a compacted topic.
func nonNil(v []byte) []byte {
	if v == nil {
		return []byte{}
	}
	return v
}

// fromKgoRecord converts a consumed or fetched record. The last tags header
// becomes Record.Tags.
func fromKgoRecord(kr *kgo.Record) sdk.Record {
	r := sdk.Record{
		Topic:     kr.Topic,
		Qid:       qidOf(kr.Partition),
		Partition: kr.Partition,
		Offset:    kr.Offset,
		Key:       kr.Key,
		Value:     nonNil(kr.Value),
		Timestamp: kr.Timestamp,
	}
	tags := -1
	for i, h := range kr.Headers {
		if h.Key == tagsHeader {
			tags = i
		}
	}
	if tags >= 0 {
		r.Tags = string(kr.Headers[tags].Value)
	}
	if n := len(kr.Headers); n > 1 || (n == 1 && tags < 0) {
		r.Headers = make([]sdk.Header, 0, n)
		for i, h := range kr.Headers {
			if i != tags {
				r.Headers = append(r.Headers, sdk.Header{Key: h.Key, Value: h.Value})
			}
		}
	}
	return r
}

// qidOf is the qid of a partition.
func qidOf(partition int32) string { return strconv.FormatInt(int64(partition), 10) }

// parseQid returns the partition a qid names.
func parseQid(topic, qid string) (int32, error) {
	p, err := strconv.ParseInt(qid, 10, 32)
	if err != nil || p < 0 {
		return 0, sdk.Errorf(sdk.CodeIllegal, "qid %q of topic %s is not a Kafka partition number", qid, topic)
	}
	return int32(p), nil
}
