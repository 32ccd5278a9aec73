package kafka

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mqgate/mqgate/sdk"
)

// Fetch limits. A fetch returns at least one batch even when it is larger
// than the partition limit, so big records are never stuck.
const (
	fetchMaxBytes          = 64 << 20
	fetchPartitionMaxBytes = 4 << 20
)

// Fetch reads records at explicit positions without a group: one fetch
// request per partition leader, waiting up to req.MaxWait for at least one
// record. MaxRecords caps the records of each position (0 means no cap
// beyond the byte limits). Problems with one position are in its result's
// Err; the returned error is for failures of the whole call.
func (b *Backend) Fetch(ctx context.Context, req sdk.FetchRequest) ([]sdk.FetchResult, error) {
	c, err := b.clients()
	if err != nil {
		return nil, err
	}
	results := make([]sdk.FetchResult, len(req.Positions))
	parts := make([]int32, len(req.Positions))
	var topics []string
	for i, pos := range req.Positions {
		results[i] = sdk.FetchResult{Topic: pos.Topic, Qid: pos.Qid, NextOffset: pos.Offset}
		p, err := parseQid(pos.Topic, pos.Qid)
		switch {
		case err != nil:
			results[i].Err = err
		case pos.Offset < 0:
			results[i].Err = sdk.Errorf(sdk.CodeIllegal, "offset %d of %s qid %s is negative", pos.Offset, pos.Topic, pos.Qid)
		default:
			parts[i] = p
			topics = append(topics, pos.Topic)
		}
	}
	if len(topics) == 0 {
		return results, nil
	}
	// A cluster refusing the credentials ends the call at once.
	ctx, cancel := b.auth.guard(ctx)
	defer cancel()
	meta, err := c.adm.Metadata(ctx, topics...)
	if err != nil {
		return nil, b.sdkError(err, "loading metadata")
	}

	// Group positions by leader; each leader gets one request.
	byLeader := make(map[int32][]fetchSlot)
	for i, pos := range req.Positions {
		if results[i].Err != nil {
			continue
		}
		td, ok := meta.Topics[pos.Topic]
		if !ok || td.Err != nil {
			err := td.Err
			if err == nil {
				err = kerr.UnknownTopicOrPartition
			}
			results[i].Err = b.sdkError(err, "fetching %s", pos.Topic)
			continue
		}
		pd, ok := td.Partitions[parts[i]]
		if !ok {
			results[i].Err = sdk.Errorf(sdk.CodeIllegal, "partition %d out of range: topic %s has %d partitions", parts[i], pos.Topic, len(td.Partitions))
			continue
		}
		if pd.Leader < 0 {
			results[i].Err = sdk.Errorf(sdk.CodeUnavailable, "fetching %s partition %d: no leader", pos.Topic, parts[i])
			continue
		}
		byLeader[pd.Leader] = append(byLeader[pd.Leader], fetchSlot{i: i, topic: pos.Topic, topicID: td.ID, partition: parts[i]})
	}

	maxWait := max(req.MaxWait, 0)
	if dl, ok := ctx.Deadline(); ok {
		// Leave room for the response to come back before ctx ends.
		maxWait = max(min(maxWait, time.Until(dl)*9/10), 0)
	}
	// Leaders are asked in parallel, so MaxWait is spent once, not once
	// per broker. Each goroutine writes only its own positions' results.
	// The call's own client: its fetch waits behind no other.
	fc, release := c.fetches.get(c.admin)
	defer release()
	var wg sync.WaitGroup
	for leader, slots := range byLeader {
		wg.Go(func() { b.fetchFromLeader(ctx, c, fc, leader, slots, req, maxWait, results) })
	}
	wg.Wait()
	return results, nil
}

// fetchFromLeader reads slots from their leader and fills their results.
func (b *Backend) fetchFromLeader(ctx context.Context, c clients, fc *kgo.Client, leader int32, slots []fetchSlot, req sdk.FetchRequest, maxWait time.Duration, results []sdk.FetchResult) {
	for _, round := range fetchRounds(slots) {
		freq := kmsg.NewPtrFetchRequest()
		freq.MaxWaitMillis = int32(min(maxWait.Milliseconds(), math.MaxInt32))
		freq.MinBytes = 1
		freq.MaxBytes = fetchMaxBytes
		freq.IsolationLevel = 1 // read committed
		topicAt := make(map[string]int)
		for _, s := range round {
			ti, ok := topicAt[s.topic]
			if !ok {
				ti = len(freq.Topics)
				topicAt[s.topic] = ti
				ft := kmsg.NewFetchRequestTopic()
				ft.Topic = s.topic
				ft.TopicID = s.topicID
				freq.Topics = append(freq.Topics, ft)
			}
			fp := kmsg.NewFetchRequestTopicPartition()
			fp.Partition = s.partition
			fp.FetchOffset = req.Positions[s.i].Offset
			fp.PartitionMaxBytes = fetchPartitionMaxBytes
			freq.Topics[ti].Partitions = append(freq.Topics[ti].Partitions, fp)
		}
		kresp, err := fc.Broker(int(leader)).Request(ctx, freq)
		if err == nil {
			err = kerr.ErrorForCode(kresp.(*kmsg.FetchResponse).ErrorCode)
		}
		if err != nil {
			for _, s := range round {
				results[s.i].Err = b.sdkError(err, "fetching %s partition %d", s.topic, s.partition)
			}
			continue
		}
		resp := kresp.(*kmsg.FetchResponse)
		for _, s := range round {
			rp := findFetchPartition(resp, s.topic, s.topicID, s.partition)
			if rp == nil {
				results[s.i].Err = sdk.Errorf(sdk.CodeInternal, "fetching %s partition %d: broker did not answer for it", s.topic, s.partition)
				continue
			}
			b.fillFetchResult(ctx, c.adm, &results[s.i], req.Positions[s.i], s.partition, rp, req.MaxRecords)
		}
	}
}

// fetchSlot is one position of a Fetch on its way to its leader.
type fetchSlot struct {
	i         int // index in the request's positions
	topic     string
	topicID   [16]byte
	partition int32
}

// fetchRounds splits one leader's positions into requests in which every
// topic and partition appears once: a request cannot ask for one partition
// at two offsets. Nearly always there is a single round.
func fetchRounds(slots []fetchSlot) [][]fetchSlot {
	type tp struct {
		topic     string
		partition int32
	}
	var rounds [][]fetchSlot
	var seen []map[tp]bool
	for _, s := range slots {
		key := tp{s.topic, s.partition}
		r := 0
		for r < len(rounds) && seen[r][key] {
			r++
		}
		if r == len(rounds) {
			rounds = append(rounds, nil)
			seen = append(seen, make(map[tp]bool))
		}
		rounds[r] = append(rounds[r], s)
		seen[r][key] = true
	}
	return rounds
}

// findFetchPartition finds a partition's answer in a fetch response, by
// topic name or (fetch v13+) topic ID.
func findFetchPartition(resp *kmsg.FetchResponse, topic string, id [16]byte, partition int32) *kmsg.FetchResponseTopicPartition {
	for ti := range resp.Topics {
		rt := &resp.Topics[ti]
		if rt.Topic != topic && (rt.TopicID != id || id == [16]byte{}) {
			continue
		}
		for pi := range rt.Partitions {
			if rt.Partitions[pi].Partition == partition {
				return &rt.Partitions[pi]
			}
		}
	}
	return nil
}

// fillFetchResult decodes one partition's answer into res.
func (b *Backend) fillFetchResult(ctx context.Context, adm *kadm.Client, res *sdk.FetchResult, pos sdk.FetchPosition, partition int32, rp *kmsg.FetchResponseTopicPartition, maxRecords int32) {
	fp, next := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
		Offset:         pos.Offset,
		Topic:          pos.Topic,
		Partition:      partition,
		IsolationLevel: kgo.ReadCommitted(),
	}, rp, kgo.DefaultDecompressor(), nil)
	if fp.Err != nil && len(fp.Records) == 0 {
		if errors.Is(fp.Err, kerr.OffsetOutOfRange) {
			res.Err = b.outOfRange(ctx, adm, pos, partition)
		} else {
			res.Err = b.sdkError(fp.Err, "fetching %s partition %d", pos.Topic, partition)
		}
		return
	}
	recs := fp.Records
	if maxRecords > 0 && len(recs) > int(maxRecords) {
		recs = recs[:maxRecords]
		next = recs[len(recs)-1].Offset + 1
	}
	res.Records = make([]sdk.Record, len(recs))
	for i, kr := range recs {
		res.Records[i] = fromKgoRecord(kr)
	}
	res.NextOffset = max(next, pos.Offset)
}

// outOfRange is the error for a fetch outside the retained range, naming
// the range. Brokers differ in whether the fetch response carries it, so
// ask.
func (b *Backend) outOfRange(ctx context.Context, adm *kadm.Client, pos sdk.FetchPosition, partition int32) error {
	rng := "unknown"
	starts, serr := adm.ListStartOffsets(ctx, pos.Topic)
	ends, eerr := adm.ListEndOffsets(ctx, pos.Topic)
	if serr == nil && eerr == nil {
		s, sok := starts.Lookup(pos.Topic, partition)
		e, eok := ends.Lookup(pos.Topic, partition)
		if sok && eok && s.Err == nil && e.Err == nil {
			rng = fmt.Sprintf("[%d, %d]", s.Offset, e.Offset)
		}
	}
	return sdk.Errorf(sdk.CodeIllegal, "offset %d of %s qid %s is out of range: valid offsets are %s", pos.Offset, pos.Topic, pos.Qid, rng)
}
