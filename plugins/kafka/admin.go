package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mqgate/mqgate/sdk"
)

// EnsureTopics creates the topics that do not exist, in one request.
// Partitions 0 means default_partitions; the replication factor is the
// broker's default. Existing topics are left as they are.
func (b *Backend) EnsureTopics(ctx context.Context, topics []sdk.TopicSpec) error {
	c, err := b.clients()
	if err != nil {
		return err
	}
	for _, spec := range topics {
		if spec.Name == "" {
			return sdk.Errorf(sdk.CodeIllegal, "topic name is empty")
		}
		if spec.Partitions < 0 {
			return sdk.Errorf(sdk.CodeIllegal, "topic %s: partitions %d is negative", spec.Name, spec.Partitions)
		}
	}
	errs, err := b.createTopics(ctx, c, topics)
	if err != nil {
		return err
	}
	for _, spec := range topics {
		if err := errs[spec.Name]; err != nil {
			return err
		}
	}
	return nil
}

// createTopics asks for specs in one CreateTopics request and returns each
// topic's outcome: nil when it was created or already existed. Topics that
// exist are remembered, so Produce does not ask again. The returned error
// is for failures of the whole request.
//
// The embedded broker creates no topic past max_topics: a topic refused so
// is CodeTopicNotExist naming the limit.
func (b *Backend) createTopics(ctx context.Context, c clients, specs []sdk.TopicSpec) (map[string]error, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	errs := make(map[string]error, len(specs))
	if c.cfg.embedded {
		select {
		case b.creating <- struct{}{}:
		case <-ctx.Done():
			return nil, sdk.Errorf(sdk.CodeOf(ctx.Err()), "waiting for another call creating topics: %v", ctx.Err())
		}
		defer func() { <-b.creating }()
		var err error
		if specs, err = b.admitTopics(ctx, c, specs, errs); err != nil {
			return nil, err
		}
		if len(specs) == 0 {
			return errs, nil
		}
	}
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 30_000
	if dl, ok := ctx.Deadline(); ok {
		req.TimeoutMillis = int32(max(min(timeUntilMillis(dl), 30_000), 1))
	}
	for _, spec := range specs {
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic = spec.Name
		rt.NumPartitions = spec.Partitions
		if rt.NumPartitions == 0 {
			rt.NumPartitions = c.cfg.defaultPartitions
		}
		rt.ReplicationFactor = -1
		keys := make([]string, 0, len(spec.Configs))
		for k := range spec.Configs {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			tc := kmsg.NewCreateTopicsRequestTopicConfig()
			tc.Name = k
			tc.Value = kmsg.StringPtr(spec.Configs[k])
			rt.Configs = append(rt.Configs, tc)
		}
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, c.admin)
	if err != nil {
		return nil, b.sdkError(err, "creating topics")
	}
	// The admin client caches the metadata of its sharded requests
	// (ListOffsets) for its minimum age, a topic that did not exist
	// included: forget the topics just created, so that the next call
	// finds them. The admin client produces and consumes nothing, so
	// purging loses nothing.
	names := make([]string, len(specs))
	for i, spec := range specs {
		names[i] = spec.Name
	}
	c.admin.PurgeTopicsFromClient(names...)
	for _, spec := range specs {
		errs[spec.Name] = sdk.Errorf(sdk.CodeInternal, "creating topic %s: the broker did not answer for it", spec.Name)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, t := range resp.Topics {
		err := kerr.ErrorForCode(t.ErrorCode)
		if err == nil || err == kerr.TopicAlreadyExists {
			errs[t.Topic] = nil
			b.known[t.Topic] = true
			continue
		}
		if t.ErrorMessage != nil {
			err = fmt.Errorf("%w: %s", err, *t.ErrorMessage)
		}
		errs[t.Topic] = b.sdkError(err, "creating topic %s", t.Topic)
	}
	return errs, nil
}

// admitTopics returns the specs the embedded broker may create under
// max_topics, counting the topics it has with one metadata request. Specs
// of topics that exist are left out and remembered, with a nil outcome in
// errs; those past the limit are left out with a CodeTopicNotExist
// outcome naming it. b.creating is held, so no other call creates topics
// between the count and the creation.
func (b *Backend) admitTopics(ctx context.Context, c clients, specs []sdk.TopicSpec, errs map[string]error) ([]sdk.TopicSpec, error) {
	req := kmsg.NewPtrMetadataRequest() // no topics: all of them
	resp, err := req.RequestWith(ctx, c.admin)
	if err != nil {
		return nil, b.sdkError(err, "counting topics")
	}
	have := make(map[string]bool, len(resp.Topics))
	for _, t := range resp.Topics {
		if t.Topic != nil && t.ErrorCode == 0 {
			have[*t.Topic] = true
		}
	}
	var admitted []sdk.TopicSpec
	admitting := make(map[string]bool)
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, spec := range specs {
		switch {
		case have[spec.Name]:
			errs[spec.Name] = nil
			b.known[spec.Name] = true
		case admitting[spec.Name]:
			// Asked for twice: created once, by the first.
		case len(have)+len(admitted) < c.cfg.maxTopics:
			admitting[spec.Name] = true
			admitted = append(admitted, spec)
		default:
			errs[spec.Name] = sdk.Errorf(sdk.CodeTopicNotExist,
				"topic %s does not exist, and the embedded broker creates no more topics: it has %d and max_topics (Kafka plugin config) is %d; each topic keeps %d file descriptors per partition written open; delete topics no longer used, or raise max_topics with the descriptor limit",
				spec.Name, len(have)+len(admitted), c.cfg.maxTopics, fdsPerPartition)
		}
	}
	return admitted, nil
}

// lookupTopics asks an external cluster's brokers about specs in one
// metadata request that allows auto-creation, as producing would, and
// returns each topic's outcome: nil when it exists or the broker is
// creating it, CodeTopicNotExist when the broker has no such topic and
// creates none. Existing topics are remembered. Without this, the producer
// would retry an unknown topic's metadata for seconds before failing it.
func (b *Backend) lookupTopics(ctx context.Context, c clients, specs []sdk.TopicSpec) (map[string]error, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	req := kmsg.NewPtrMetadataRequest()
	req.AllowAutoTopicCreation = true
	for _, spec := range specs {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(spec.Name)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, c.producer)
	if err != nil {
		return nil, err
	}
	errs := make(map[string]error, len(specs))
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, t := range resp.Topics {
		if t.Topic == nil {
			continue
		}
		switch err := kerr.ErrorForCode(t.ErrorCode); {
		case err == nil:
			b.known[*t.Topic] = true
		case errors.Is(err, kerr.UnknownTopicOrPartition):
			errs[*t.Topic] = sdk.Errorf(sdk.CodeTopicNotExist, "topic %s does not exist, and the Kafka cluster does not create topics on produce (auto.create.topics.enable)", *t.Topic)
		}
		// Anything else (LEADER_NOT_AVAILABLE while an auto-created
		// topic gets its leaders, say) is the producer's to wait out.
	}
	return errs, nil
}

// unknownTopics returns the distinct topics of records this backend has not
// yet seen exist.
func (b *Backend) unknownTopics(records []sdk.Record) []sdk.TopicSpec {
	b.mu.Lock()
	defer b.mu.Unlock()
	var specs []sdk.TopicSpec
	seen := make(map[string]bool)
	for i := range records {
		t := records[i].Topic
		if t == "" || b.known[t] || seen[t] {
			continue
		}
		seen[t] = true
		specs = append(specs, sdk.TopicSpec{Name: t})
	}
	return specs
}

// Commit stores a group's offsets without joining the group. Kafka accepts
// this only while the group has no active members; while it has some, the
// commit is refused with CodeNotAllowed, which retrying does not mend.
func (b *Backend) Commit(ctx context.Context, group string, offsets []sdk.Offset) error {
	c, err := b.clients()
	if err != nil {
		return err
	}
	if group == "" {
		return sdk.Errorf(sdk.CodeIllegal, "group is empty")
	}
	// A cluster refusing the credentials ends the call at once.
	ctx, cancel := b.auth.guard(ctx)
	defer cancel()
	os := make(kadm.Offsets)
	for _, o := range offsets {
		p, err := commitPartition(o)
		if err != nil {
			return err
		}
		os.Add(kadm.Offset{Topic: o.Topic, Partition: p, At: o.Offset, LeaderEpoch: -1})
	}
	if len(os) == 0 {
		return nil
	}
	resps, err := c.adm.CommitOffsets(ctx, group, os)
	if err == nil {
		err = resps.Error()
	}
	if err == nil {
		return nil
	}
	if errors.Is(err, kerr.UnknownMemberID) || errors.Is(err, kerr.IllegalGeneration) || errors.Is(err, kerr.StaleMemberEpoch) {
		// Kafka takes a commit from outside the group only while the
		// group has no members; it answers as if the committer were a
		// stale member. Retrying does not help while the members stay.
		return sdk.Errorf(sdk.CodeNotAllowed, "committing offsets of group %s: the group has active members, and Kafka takes a commit from outside a group only while it has none (%v); stop the group's consumers (other Kafka clients, and pulls and push subscriptions of this group on every gateway, whose sessions close after consume.session_idle), then commit again", group, err)
	}
	// Without a broker to ask, franz-go reports each partition as unknown:
	// say that the brokers are unreachable, not that the topic is missing.
	return b.callError(ctx, err, "committing offsets of group %s", group)
}

// ListOffsets gives every partition's retained range and, when group is
// not empty, the group's committed offset (-1 when it has none), ordered by
// the topics as asked and then by partition. An unknown topic fails the
// call with CodeTopicNotExist.
func (b *Backend) ListOffsets(ctx context.Context, topics []string, group string) ([]sdk.QidOffsets, error) {
	c, err := b.clients()
	if err != nil {
		return nil, err
	}
	adm := c.adm
	if len(topics) == 0 {
		return nil, nil
	}
	// kadm lists all topics for an empty argument list; an empty name
	// would do the same by accident.
	if slices.Contains(topics, "") {
		return nil, sdk.Errorf(sdk.CodeIllegal, "topic name is empty")
	}
	// A cluster refusing the credentials ends the call at once.
	ctx, cancel := b.auth.guard(ctx)
	defer cancel()
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		return nil, b.sdkError(err, "listing start offsets")
	}
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, b.sdkError(err, "listing end offsets")
	}
	var committed kadm.OffsetResponses
	if group != "" {
		committed, err = adm.FetchOffsets(ctx, group)
		if err == nil {
			err = committed.Error()
		}
		if errors.Is(err, kerr.GroupIDNotFound) {
			// A group that never committed has nothing to show.
			committed, err = nil, nil
		}
		if err != nil {
			return nil, b.sdkError(err, "fetching offsets of group %s", group)
		}
	}

	var out []sdk.QidOffsets
	seen := make(map[string]bool, len(topics))
	for _, t := range topics {
		if seen[t] {
			continue
		}
		seen[t] = true
		ps, ok := ends[t]
		if !ok {
			return nil, sdk.Errorf(sdk.CodeTopicNotExist, "topic %s does not exist", t)
		}
		parts := make([]int32, 0, len(ps))
		for p, lo := range ps {
			if lo.Err != nil {
				return nil, b.sdkError(lo.Err, "listing offsets of %s", t)
			}
			parts = append(parts, p)
		}
		slices.Sort(parts)
		for _, p := range parts {
			q := sdk.QidOffsets{Topic: t, Qid: qidOf(p), Partition: p, End: ps[p].Offset, Committed: -1}
			s, ok := starts.Lookup(t, p)
			if !ok || s.Err != nil {
				err := s.Err
				if err == nil {
					err = kerr.UnknownTopicOrPartition
				}
				return nil, b.sdkError(err, "listing start offsets of %s", t)
			}
			q.Start = s.Offset
			if c, ok := committed.Lookup(t, p); ok && c.Err == nil && c.At >= 0 {
				q.Committed = c.At
			}
			out = append(out, q)
		}
	}
	return out, nil
}

// timeUntilMillis is the time left until t in milliseconds, as Kafka
// request timeouts want it.
func timeUntilMillis(t time.Time) int64 { return time.Until(t).Milliseconds() }

var _ sdk.HealthChecker = (*Backend)(nil)

// Health reports whether a broker answers. A process out of file
// descriptors, or that was in the last ten seconds, is code 17 naming the
// shortage: the embedded broker then fails every write to a partition new
// to it and refuses new connections. Otherwise the embedded broker, in
// this process, always answers; an external cluster is asked with one ApiVersions
// request, on a connection the clients keep open, and a cluster none of
// whose brokers can be dialed is code 17 naming the dial error.
func (b *Backend) Health(ctx context.Context) error {
	c, err := b.clients()
	if err != nil {
		return err
	}
	if err := b.fds.shortage(); err != nil {
		return err
	}
	if c.cfg.embedded {
		return nil
	}
	ctx, cancel := b.callContext(ctx)
	defer cancel()
	if err := c.admin.Ping(ctx); err != nil {
		return b.callError(ctx, err, "reaching the kafka brokers")
	}
	return nil
}
