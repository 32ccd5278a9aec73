package consume

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mqgate/mqgate/core/topicname"
	"github.com/mqgate/mqgate/sdk"
)

// minEmptyFetchWait is the least an answer without messages waits, whatever
// wait the client asked for: DDMQ's cproxy holds an empty pull at least
// MIN_LINGER_TIME, 20 ms (carrera-consumer ConsumerServiceImpl), and a
// client that loops on fetch without sleeping (DDMQ's Java
// LowLevelCarreraConsumer does, on an empty answer) then asks at most 50
// times a second.
const minEmptyFetchWait = 20 * time.Millisecond

// clusterOf returns the cluster a low-level call naming cluster reads or
// commits topic on: cluster when it is one of this gateway's, else the
// cluster topic is routed to. DDMQ's clients send DDMQ's cluster name
// (LowLevelCarreraConfig.clusterName), which means nothing here, and
// DDMQ's own cproxy does not use it either (AbstractLowlevelRequestChain
// finds the clusters from the group's topics).
func (s *Service) clusterOf(cluster, topic string) (string, error) {
	if _, ok := s.opts.Backends[cluster]; ok {
		return cluster, nil
	}
	return s.opts.Route(topic)
}

// Fetch reads explicit offsets, adding the group's subscribed topics the
// client left out at the group's committed offsets.
func (s *Service) Fetch(ctx context.Context, group, cluster string, offsets map[string]map[string]int64, maxPerQid int, wait time.Duration) ([]QidMessages, error) {
	start := time.Now()
	limit, err := s.capBatch(maxPerQid)
	if err != nil {
		return nil, err
	}
	for topic := range offsets {
		if err := topicname.Validate(topic); err != nil {
			return nil, err
		}
		if err := s.opts.Reserved.Topic(topic); err != nil {
			return nil, err
		}
	}
	positions, err := s.assign(ctx, group, cluster, offsets)
	if err != nil {
		return nil, err
	}
	byCluster := map[string][]sdk.FetchPosition{}
	for _, p := range positions {
		c, err := s.clusterOf(cluster, p.Topic)
		if err != nil {
			return nil, err
		}
		byCluster[c] = append(byCluster[c], p)
	}
	// The clusters are asked together, so wait is spent once.
	var (
		mu      sync.Mutex
		out     []QidMessages
		firstEr error
		wg      sync.WaitGroup
	)
	for c, ps := range byCluster {
		wg.Go(func() {
			qms, err := s.fetchFrom(ctx, c, ps, limit, wait)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstEr == nil {
					firstEr = err
				}
				return
			}
			out = append(out, qms...)
		})
	}
	wg.Wait()
	if firstEr != nil {
		return nil, firstEr
	}
	slices.SortFunc(out, func(a, b QidMessages) int {
		if c := strings.Compare(a.Topic, b.Topic); c != 0 {
			return c
		}
		return strings.Compare(a.Qid, b.Qid)
	})
	n := 0
	for _, q := range out {
		n += len(q.Messages)
	}
	if n == 0 {
		// Wait out the linger, as a long poll does: a broker may answer
		// an empty read early (a qid with no leader, say), and a client
		// that asks again at once must not spin the gateway.
		s.waitUntil(ctx, start.Add(max(wait, minEmptyFetchWait)))
	}
	return out, nil
}

// fetchFrom reads positions on cluster.
func (s *Service) fetchFrom(ctx context.Context, cluster string, positions []sdk.FetchPosition, max int, wait time.Duration) ([]QidMessages, error) {
	b, ok := s.opts.Backends[cluster]
	if !ok {
		return nil, sdk.Errorf(sdk.CodeIllegal, "cluster: no cluster %q", cluster)
	}
	res, err := b.Fetch(ctx, sdk.FetchRequest{Positions: positions, MaxRecords: int32(max), MaxWait: wait})
	if err != nil {
		return nil, err
	}
	out := make([]QidMessages, len(res))
	for i, r := range res {
		if r.Err != nil {
			return nil, r.Err
		}
		q := QidMessages{Topic: r.Topic, Qid: r.Qid, NextOffset: r.NextOffset}
		for _, rec := range r.Records {
			q.Messages = append(q.Messages, toMessage(rec, 1))
		}
		out[i] = q
	}
	return out, nil
}

// waitUntil returns at t, when ctx ends, or when StopWaiting is called.
func (s *Service) waitUntil(ctx context.Context, t time.Time) {
	d := time.Until(t)
	if d <= 0 {
		return
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	case <-s.stopWaiting:
	}
}

// assign returns the positions a fetch reads: those of offsets, and, for
// each topic group is subscribed to that offsets leaves out, every qid at
// the group's committed offset. This is how DDMQ's fetch starts: its
// clients send an empty fetchOffset and the cproxy, whose low-level
// consumer joins the group (carrera-consumer LowLevelCarreraConsumer,
// KafkaFetcher, RmqFetcher), serves the group's queues from its committed
// offsets, each answer naming nextRequestOffset per qid for the next
// request. An empty offsets from a group subscribed to nothing is code 11.
func (s *Service) assign(ctx context.Context, group, cluster string, offsets map[string]map[string]int64) ([]sdk.FetchPosition, error) {
	var positions []sdk.FetchPosition
	for _, topic := range slices.Sorted(maps.Keys(offsets)) {
		for _, qid := range slices.Sorted(maps.Keys(offsets[topic])) {
			positions = append(positions, sdk.FetchPosition{Topic: topic, Qid: qid, Offset: offsets[topic][qid]})
		}
	}
	var topics []string
	if len(positions) == 0 {
		subscribed, err := s.subscribedTopics(ctx, group)
		if err != nil {
			return nil, err
		}
		topics = subscribed
	} else if s.opts.Subscriptions != nil && group != "" {
		// Topics subscribed since the client's first fetch: without
		// waiting for the subscriptions to be read, which an explicit
		// fetch does not need.
		now, cancel := context.WithCancel(ctx)
		cancel()
		subs, _ := s.opts.Subscriptions.Topics(now, group) // not read yet: the explicit offsets alone
		for _, sub := range subs {
			if _, ok := offsets[sub.Topic]; !ok {
				topics = append(topics, sub.Topic)
			}
		}
	}
	if len(topics) == 0 {
		return positions, nil
	}
	byCluster := map[string][]string{}
	for _, t := range topics {
		c, err := s.clusterOf(cluster, t)
		if err != nil {
			return nil, err
		}
		byCluster[c] = append(byCluster[c], t)
	}
	for _, c := range slices.Sorted(maps.Keys(byCluster)) {
		offs, err := s.opts.Backends[c].ListOffsets(ctx, byCluster[c], group)
		if err != nil {
			return nil, fmt.Errorf("reading the committed offsets of group %s: %w", group, err)
		}
		for _, o := range offs {
			positions = append(positions, sdk.FetchPosition{Topic: o.Topic, Qid: o.Qid, Offset: startOffset(o, s.opts.Start)})
		}
	}
	return positions, nil
}

// startOffset is where a group starts reading a qid: its committed offset,
// or, when it has none or it is out of the retained range, the start or
// end per start.
func startOffset(o sdk.QidOffsets, start sdk.StartPosition) int64 {
	switch {
	case o.Committed >= o.Start && o.Committed <= o.End:
		return o.Committed
	case o.Committed > o.End:
		return o.End
	case start == sdk.StartLatest:
		return o.End
	}
	return o.Start
}

// Commit stores offsets without a session, on each topic's cluster.
func (s *Service) Commit(ctx context.Context, cluster, group string, offsets map[string]map[string]int64) error {
	if err := topicname.ValidateGroup(group); err != nil {
		return err
	}
	if err := s.opts.Reserved.Group(group); err != nil {
		return err
	}
	byCluster := map[string][]sdk.Offset{}
	for _, topic := range slices.Sorted(maps.Keys(offsets)) {
		if err := topicname.Validate(topic); err != nil {
			return err
		}
		if err := s.opts.Reserved.Topic(topic); err != nil {
			return err
		}
		c, err := s.clusterOf(cluster, topic)
		if err != nil {
			return err
		}
		for _, qid := range slices.Sorted(maps.Keys(offsets[topic])) {
			byCluster[c] = append(byCluster[c], sdk.Offset{Topic: topic, Qid: qid, Offset: offsets[topic][qid]})
		}
	}
	for _, c := range slices.Sorted(maps.Keys(byCluster)) {
		b, ok := s.opts.Backends[c]
		if !ok {
			return sdk.Errorf(sdk.CodeIllegal, "cluster: no cluster %q", c)
		}
		offs := byCluster[c]
		var topics []string
		for _, o := range offs {
			if !slices.Contains(topics, o.Topic) {
				topics = append(topics, o.Topic)
			}
		}
		if err := checkCommitRange(ctx, b, topics, offs); err != nil {
			return err
		}
		if err := b.Commit(ctx, group, offs); err != nil {
			return err
		}
	}
	return nil
}

// checkCommitRange refuses, with code 11 naming the offset and the end, an
// offset beyond its qid's end offset or of a qid the topic does not have.
// The broker takes such a commit (Kafka does), and the group then counts
// as having consumed messages that do not exist yet: stats show no lag and
// the messages produced up to that offset are never delivered to it.
// Offsets below the start stay allowed: the broker resets them as the
// group's start setting says.
func checkCommitRange(ctx context.Context, b sdk.Backend, topics []string, offs []sdk.Offset) error {
	ranges, err := b.ListOffsets(ctx, topics, "")
	if err != nil {
		return fmt.Errorf("reading the end offsets to check the commit: %w", err)
	}
	end := map[[2]string]int64{}
	qids := map[string][]string{}
	for _, r := range ranges {
		end[[2]string{r.Topic, r.Qid}] = r.End
		qids[r.Topic] = append(qids[r.Topic], r.Qid)
	}
	for _, o := range offs {
		field := fmt.Sprintf("offsets[%q][%q]", o.Topic, o.Qid)
		e, ok := end[[2]string{o.Topic, o.Qid}]
		if !ok {
			return sdk.Errorf(sdk.CodeIllegal, "%s: topic %s has no qid %s (its qids: %s)", field, o.Topic, o.Qid, strings.Join(qids[o.Topic], ", "))
		}
		if o.Offset > e {
			return sdk.Errorf(sdk.CodeIllegal, "%s: %d is beyond the end offset %d of topic %s qid %s; commit at most %d (the offset the next message will get)", field, o.Offset, e, o.Topic, o.Qid, e)
		}
	}
	return nil
}
