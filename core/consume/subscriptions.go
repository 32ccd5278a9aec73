package consume

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mqgate/mqgate/core/tail"
	"github.com/mqgate/mqgate/core/topicname"
	"github.com/mqgate/mqgate/sdk"
)

// Subscription is one topic a group is subscribed to.
type Subscription struct {
	Group string `json:"group"`
	Topic string `json:"topic"`
	// Source is "config" for groups.<g>.topics in plugins.yaml, "admin"
	// for one added at run time.
	Source string `json:"source"`
	// AddedAtMs and AddedBy say when and by whom an admin subscription
	// was added; zero and empty for config ones.
	AddedAtMs int64  `json:"added_at_ms,omitempty"`
	AddedBy   string `json:"added_by,omitempty"`
}

// Sources of a Subscription.
const (
	SourceConfig = "config"
	SourceAdmin  = "admin"
)

// SubscriptionOptions configure a Subscriptions store.
type SubscriptionOptions struct {
	// Backend and Cluster hold SubscriptionsTopic: the default cluster.
	Backend sdk.Backend
	Cluster string
	// Send produces records to a cluster (produce.Producer.SendRecords).
	Send func(ctx context.Context, cluster string, recs []sdk.Record) ([]sdk.ProduceResult, error)
	// Static are the topics of groups.<g>.topics, by group.
	Static map[string][]string
	// MaxTopicsPerGroup, MaxGroups and MaxRecordBytes are the
	// subscriptions: keys of plugins.yaml.
	MaxTopicsPerGroup, MaxGroups, MaxRecordBytes int
	// Refresh is how often, on a broker that does not compact the topic
	// (RocketMQ), each change is written again, so that the broker's
	// retention never takes the latest one (subscriptions.refresh).
	Refresh time.Duration
	// Reserved is the rule of the names clients may not use; a
	// subscription is a client's consumption.
	Reserved *topicname.Reserved
	// DeadLetter names a group's own dead-letter topic, which it may not
	// subscribe to.
	DeadLetter func(group string) string
	Logger     *slog.Logger
	// Now is the clock of the records' times; nil is time.Now.
	Now func() time.Time
}

// Subscriptions is every gateway's copy of the groups' server-side
// subscriptions, as DDMQ keeps a group's topics in its server-side config
// (carrera-consumer ConsumerServiceImpl.doGetConsumeStats and
// AbstractLowlevelRequestChain.getConsumers read them from there) and its
// SDKs pull without naming a topic. Those of plugins.yaml are fixed; those
// added at run time live in SubscriptionsTopic on the default cluster,
// which every gateway reads from its start and then follows, so a change
// made through any gateway reaches all of them without a restart and
// nothing is kept on the gateway's disk.
type Subscriptions struct {
	opts SubscriptionOptions
	log  *slog.Logger

	tail *tail.Tail

	mu      sync.Mutex
	dynamic map[string]map[string]subEntry // group -> topic -> its latest subscribing record
	// removed holds the latest removals by record key, for 2 x Refresh:
	// an older change written again after them must not bring the
	// subscription back.
	removed   map[string]subEntry
	ready     chan struct{} // closed once the topic has been read to its end once
	ensured   bool          // the topic exists
	compacted bool          // and the broker compacts it

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewSubscriptions returns a store; Start reads the topic.
func NewSubscriptions(opts SubscriptionOptions) *Subscriptions {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.DeadLetter == nil {
		opts.DeadLetter = func(string) string { return "" }
	}
	if opts.Refresh <= 0 {
		opts.Refresh = 24 * time.Hour
	}
	return &Subscriptions{opts: opts, log: opts.Logger, dynamic: map[string]map[string]subEntry{}, removed: map[string]subEntry{},
		tail: tail.New(opts.Backend, SubscriptionsTopic, subscriptionsWait), ready: make(chan struct{})}
}

// subscriptionsWait is how long one read of SubscriptionsTopic waits at
// the broker for news. A new record ends the wait at once, so this bounds
// only how often an idle gateway asks.
const subscriptionsWait = 5 * time.Second

// Start creates SubscriptionsTopic when it does not exist (retrying while
// the cluster is down), reads it whole, and follows it until Close.
func (s *Subscriptions) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Go(func() {
		failures := 0
		for ctx.Err() == nil {
			err := s.ensureTopic(ctx)
			if err == nil {
				err = s.tail.ReadOnce(ctx, s.apply)
			}
			switch {
			case ctx.Err() != nil:
				return
			case err == nil:
				if failures > 1 {
					s.log.Info("reading the subscriptions again", "topic", SubscriptionsTopic, "failures", failures)
				}
				failures = 0
				continue
			}
			failures++
			level := slog.LevelDebug
			if failures == 1 {
				level = slog.LevelWarn
			}
			s.log.Log(ctx, level, "reading the subscriptions; retrying every second", "topic", SubscriptionsTopic, "cluster", s.opts.Cluster, "error", err, "failures", failures)
			sleep(ctx, time.Second)
		}
	})
}

// Close stops following the topic.
func (s *Subscriptions) Close() {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
}

// ensureTopic creates the topic once: compacted, so that the latest record
// of each group and topic is kept however old (retention.ms -1 keeps an
// embedded Kafka broker's time retention off it too). A broker without
// compaction (RocketMQ) refuses the configs; the topic is made without.
func (s *Subscriptions) ensureTopic(ctx context.Context) error {
	s.mu.Lock()
	done := s.ensured
	s.mu.Unlock()
	if done {
		return nil
	}
	spec := sdk.TopicSpec{Name: SubscriptionsTopic, Partitions: 1, Configs: map[string]string{"cleanup.policy": "compact", "retention.ms": "-1"}}
	err := s.opts.Backend.EnsureTopics(ctx, []sdk.TopicSpec{spec})
	compacted := err == nil
	if sdk.CodeOf(err) == sdk.CodeIllegal {
		spec.Configs = nil
		err = s.opts.Backend.EnsureTopics(ctx, []sdk.TopicSpec{spec})
	}
	if err != nil {
		return fmt.Errorf("creating %s on cluster %s: %w", SubscriptionsTopic, s.opts.Cluster, err)
	}
	s.mu.Lock()
	s.ensured, s.compacted = true, compacted
	s.mu.Unlock()
	s.wg.Go(func() { s.refreshLoop(ctx) })
	// Ready once what the topic holds now has been read.
	s.wg.Go(func() {
		for ctx.Err() == nil {
			if err := s.tail.Sync(ctx); err == nil {
				close(s.ready)
				return
			}
			sleep(ctx, time.Second) // the reader logs what fails
		}
	})
	return nil
}

// apply applies records read from the topic.
func (s *Subscriptions) apply(recs []sdk.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rec := range recs {
		s.applyLocked(rec)
	}
}

// applyLocked applies one record read from the topic; s.mu is held. A
// record that does not decode is skipped with a warning: the topic is the
// gateway's, and what else wrote to it is not a subscription. The latest
// record of a key stands, except that a refresh (a change written again)
// of an older change than the one read stands for nothing.
func (s *Subscriptions) applyLocked(rec sdk.Record) {
	r, err := decodeSubRecord(rec.Key, rec.Value, s.opts.MaxRecordBytes)
	if err != nil {
		s.log.Warn("skipping a record of the subscriptions topic", "topic", SubscriptionsTopic, "qid", rec.Qid, "offset", rec.Offset, "error", err)
		return
	}
	key := string(r.key())
	written := rec.Timestamp
	if written.IsZero() {
		written = s.opts.Now()
	}
	topics := s.dynamic[r.Group]
	cur, have := topics[r.Topic]
	if !have {
		cur, have = s.removed[key]
	}
	if r.Refresh && have && r.AtMs < cur.rec.AtMs {
		return
	}
	if !r.Subscribed {
		delete(topics, r.Topic)
		if len(topics) == 0 {
			delete(s.dynamic, r.Group)
		}
		s.removed[key] = subEntry{r, written}
		return
	}
	delete(s.removed, key)
	if _, ok := topics[r.Topic]; !ok {
		// Bounds hold on what is read too: a gateway with larger bounds
		// may have written more than this one holds.
		if topics == nil && len(s.groupsLocked()) >= s.opts.MaxGroups {
			s.log.Warn("skipping a subscription: over subscriptions.max_groups", "group", r.Group, "topic", r.Topic, "max_groups", s.opts.MaxGroups)
			return
		}
		if len(s.topicsLocked(r.Group)) >= s.opts.MaxTopicsPerGroup {
			s.log.Warn("skipping a subscription: over subscriptions.max_topics_per_group", "group", r.Group, "topic", r.Topic, "max_topics_per_group", s.opts.MaxTopicsPerGroup)
			return
		}
	}
	if topics == nil {
		topics = map[string]subEntry{}
		s.dynamic[r.Group] = topics
	}
	topics[r.Topic] = subEntry{r, written}
}

// subEntry is the latest record read of a group and topic, and when the
// broker took it.
type subEntry struct {
	rec     subRecord
	written time.Time
}

// groupsLocked is the set of groups with a subscription, static or not.
func (s *Subscriptions) groupsLocked() map[string]bool {
	out := make(map[string]bool, len(s.opts.Static)+len(s.dynamic))
	for g, ts := range s.opts.Static {
		if len(ts) > 0 {
			out[g] = true
		}
	}
	for g := range s.dynamic {
		out[g] = true
	}
	return out
}

// topicsLocked is group's subscriptions, sorted by topic.
func (s *Subscriptions) topicsLocked(group string) []Subscription {
	var out []Subscription
	for _, t := range s.opts.Static[group] {
		out = append(out, Subscription{Group: group, Topic: t, Source: SourceConfig})
	}
	for t, e := range s.dynamic[group] {
		if !slices.Contains(s.opts.Static[group], t) {
			out = append(out, Subscription{Group: group, Topic: t, Source: SourceAdmin, AddedAtMs: e.rec.AtMs, AddedBy: e.rec.By})
		}
	}
	slices.SortFunc(out, func(a, b Subscription) int { return strings.Compare(a.Topic, b.Topic) })
	return out
}

func (s *Subscriptions) notReady(ctx context.Context) error {
	return sdk.Errorf(sdk.CodeUnavailable, "the group subscriptions (topic %s on cluster %s) are not read yet: %v; try again",
		SubscriptionsTopic, s.opts.Cluster, context.Cause(ctx))
}

// sync returns once everything written to the topic before the call has
// been read.
func (s *Subscriptions) sync(ctx context.Context) error {
	if err := s.waitReady(ctx); err != nil {
		return err
	}
	if err := s.tail.Sync(ctx); err != nil {
		if ctx.Err() != nil {
			return s.notReady(ctx)
		}
		return fmt.Errorf("reading the end of %s: %w", SubscriptionsTopic, err)
	}
	return nil
}

// waitReady waits for the first full read of the topic.
func (s *Subscriptions) waitReady(ctx context.Context) error {
	if closed(s.ready) {
		return nil // even for a ctx that is done: a read of the copy at hand
	}
	select {
	case <-s.ready:
		return nil
	case <-ctx.Done():
		return s.notReady(ctx)
	}
}

// Topics returns group's subscriptions, sorted by topic: those of
// plugins.yaml at once, with those added at run time once the topic has
// been read (code 17 when ctx ends first). It reads the gateway's copy,
// which follows the topic: a change made through another gateway shows
// once its record has been read, within moments.
func (s *Subscriptions) Topics(ctx context.Context, group string) ([]Subscription, error) {
	if err := s.waitReady(ctx); err != nil {
		s.mu.Lock()
		static := s.opts.Static[group]
		s.mu.Unlock()
		if len(static) == 0 {
			return nil, err
		}
		// The file's topics need no broker; serve them meanwhile.
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.topicsLocked(group), nil
}

// check refuses a subscription a client may not make: bad names (11), a
// reserved group or topic, or the group's own dead-letter topic (13).
func (s *Subscriptions) check(group, topic string) error {
	if err := topicname.ValidateGroup(group); err != nil {
		return err
	}
	if err := topicname.Validate(topic); err != nil {
		return err
	}
	return s.opts.Reserved.Consume(group, topic, s.opts.DeadLetter(group))
}

// Subscribe subscribes group to topic through the topic, by principal by,
// and returns once this gateway has read the change back; others read it
// within moments. It is idempotent: created is false when group already
// was. Past subscriptions.max_topics_per_group or max_groups it is code 15,
// naming the key; a record over max_record_bytes is code 16.
func (s *Subscriptions) Subscribe(ctx context.Context, group, topic, by string) (sub Subscription, created bool, err error) {
	if err := s.check(group, topic); err != nil {
		return Subscription{}, false, err
	}
	if err := s.sync(ctx); err != nil {
		return Subscription{}, false, err
	}
	s.mu.Lock()
	current := s.topicsLocked(group)
	if i := slices.IndexFunc(current, func(c Subscription) bool { return c.Topic == topic }); i >= 0 {
		s.mu.Unlock()
		return current[i], false, nil
	}
	newGroup := len(current) == 0
	groups := len(s.groupsLocked())
	s.mu.Unlock()
	if max := s.opts.MaxTopicsPerGroup; len(current) >= max {
		return Subscription{}, false, sdk.Errorf(sdk.CodeRateLimited,
			"group %s is subscribed to %d topics, the limit (subscriptions.max_topics_per_group); remove one first (DELETE /v1/admin/groups/%s/subscriptions/TOPIC) or raise the limit",
			group, len(current), group)
	}
	if max := s.opts.MaxGroups; newGroup && groups >= max {
		return Subscription{}, false, sdk.Errorf(sdk.CodeRateLimited,
			"%d groups have subscriptions, the limit (subscriptions.max_groups); a subscription of group %s would add one. Remove another group's subscriptions or raise the limit",
			groups, group)
	}
	rec := subRecord{Group: group, Topic: topic, Subscribed: true, AtMs: s.nextAt(group, topic), By: by}
	if err := s.write(ctx, []subRecord{rec}); err != nil {
		return Subscription{}, false, err
	}
	return Subscription{Group: group, Topic: topic, Source: SourceAdmin, AddedAtMs: rec.AtMs, AddedBy: by}, true, nil
}

// Unsubscribe removes group's subscription to topic, added at run time,
// and returns once this gateway has read the change back. removed is false
// when there was none. A topic of groups.<g>.topics is code 11: it comes
// from plugins.yaml, and only the file can remove it.
func (s *Subscriptions) Unsubscribe(ctx context.Context, group, topic, by string) (removed bool, err error) {
	if err := s.check(group, topic); err != nil {
		return false, err
	}
	if slices.Contains(s.opts.Static[group], topic) {
		return false, sdk.Errorf(sdk.CodeIllegal,
			"group %s is subscribed to topic %s by plugins.yaml (groups.%s.topics); remove it there and restart the gateways", group, topic, group)
	}
	if err := s.sync(ctx); err != nil {
		return false, err
	}
	s.mu.Lock()
	_, ok := s.dynamic[group][topic]
	s.mu.Unlock()
	if !ok {
		return false, nil
	}
	return true, s.write(ctx, []subRecord{{Group: group, Topic: topic, Subscribed: false, AtMs: s.nextAt(group, topic), By: by}})
}

// nextAt is the time of a new change of group and topic: now, or just
// after the latest change read when that is not before now (a clock
// behind another gateway's), so that a change is always newer than what
// its writer read.
func (s *Subscriptions) nextAt(group, topic string) int64 {
	at := s.opts.Now().UnixMilli()
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.dynamic[group][topic]
	if !ok {
		cur, ok = s.removed[group+"/"+topic]
	}
	if ok {
		at = max(at, cur.rec.AtMs+1)
	}
	return at
}

// write produces recs and waits until this gateway has read them back.
func (s *Subscriptions) write(ctx context.Context, recs []subRecord) error {
	out := make([]sdk.Record, len(recs))
	for i, rec := range recs {
		key, value := rec.encode()
		if n := len(key) + len(value); n > s.opts.MaxRecordBytes {
			return sdk.Errorf(sdk.CodeTooLarge, "the subscription record of group %s and topic %s is %d bytes, over subscriptions.max_record_bytes (%d)",
				rec.Group, rec.Topic, n, s.opts.MaxRecordBytes)
		}
		h := fnv.New64a()
		h.Write(key)
		out[i] = sdk.Record{Topic: SubscriptionsTopic, Partition: sdk.PartitionHash, Hash: h.Sum64(), Key: key, Value: value}
	}
	res, err := s.opts.Send(ctx, s.opts.Cluster, out)
	for i := 0; err == nil && i < len(res); i++ {
		err = res[i].Err
	}
	if err != nil {
		return fmt.Errorf("writing to %s: %w", SubscriptionsTopic, err)
	}
	return s.sync(ctx)
}
