// Package admin answers what the gateway's admin API asks of topics and
// their messages, on any backend: a topic's qids and retained ranges, and
// its messages read at explicit positions, outside any consumer group, so
// that browsing moves no group's offsets.
//
// Every read is bounded, so that browsing cannot load the broker or the
// gateway more than a consumer would: at most MaxBrowse messages and about
// MaxPageBytes of them per page.
package admin

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/mqgate/mqgate/core/consume"
	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/core/topicname"
	"github.com/mqgate/mqgate/sdk"
)

// The bounds of one browse.
const (
	// MaxBrowse is the most messages one page holds.
	MaxBrowse = 100
	// DefaultBrowse is a page's size when none is asked for.
	DefaultBrowse = 20
	// MaxPageBytes bounds the keys, values and headers of one page: a page
	// stops before the message that would pass it, unless that message is
	// its first.
	MaxPageBytes = 4 << 20
	// fetchWait bounds how long one fetch waits for a record that the
	// retained range says is there (a broker may take a moment to serve
	// what it just wrote).
	fetchWait = time.Second
)

// Options wire a Service to the gateway.
type Options struct {
	// Cluster names the cluster that serves a topic and its backend (the
	// router's Cluster).
	Cluster func(topic string) (string, sdk.Backend, error)
	// Reserved refuses, with code 13, the names only the gateway uses
	// (CreateTopic does not create them); nil refuses none.
	Reserved func(topic string) error
	// Active counts the sessions through which group consumes topic on
	// this gateway: ResetOffsets is refused while there are any. Nil:
	// none.
	Active func(group, topic string) int
	// End closes the sessions through which clients pull group's
	// messages of topic on this gateway, for a forced reset, and counts
	// those it left open because the gateway reads through them (push
	// subscriptions, sinks). Nil: a forced reset is refused as any.
	End func(ctx context.Context, group, topic string) (readers int)
	// Clusters are the gateway's clusters and their backends, for the
	// topic and group lists.
	Clusters map[string]sdk.Backend
	// ReservedGroup refuses, with code 13, the group names only the
	// gateway uses (the delay tiers' groups); nil refuses none.
	ReservedGroup func(group string) error
	// Sessions counts a group's sessions on this gateway; nil: none.
	Sessions func(group string) int
}

// Service answers the admin API's questions about topics.
type Service struct{ opts Options }

// New returns a Service.
func New(opts Options) *Service { return &Service{opts: opts} }

// Qid is one queue of a topic and the offsets it retains.
type Qid struct {
	Qid       string `json:"qid"`
	Partition int32  `json:"partition"`
	// Start is the oldest retained offset; End the offset the next message
	// will get. End - Start messages are retained.
	Start int64 `json:"start"`
	End   int64 `json:"end"`
}

// Topic describes a topic.
type Topic struct {
	Name    string `json:"topic"`
	Cluster string `json:"cluster"`
	Qids    []Qid  `json:"qids"`
	// Messages is how many messages the qids retain together.
	Messages int64 `json:"messages"`
}

// cluster is Options.Cluster for a topic the admin API may show: the
// names only the gateway uses (delay tiers, its own state) are refused
// with code 13, as the consume and stats routes refuse them.
func (s *Service) cluster(topic string) (string, sdk.Backend, error) {
	name, b, err := s.opts.Cluster(topic)
	if err == nil && s.opts.Reserved != nil {
		err = s.opts.Reserved(topic)
	}
	return name, b, err
}

// Topic describes topic: a code 14 error when it does not exist.
func (s *Service) Topic(ctx context.Context, topic string) (Topic, error) {
	cluster, b, err := s.cluster(topic)
	if err != nil {
		return Topic{}, err
	}
	qids, err := ranges(ctx, b, topic)
	if err != nil {
		return Topic{}, err
	}
	t := Topic{Name: topic, Cluster: cluster, Qids: qids}
	for _, q := range qids {
		t.Messages += q.End - q.Start
	}
	return t, nil
}

// ranges lists topic's qids in order, with their retained ranges.
func ranges(ctx context.Context, b sdk.Backend, topic string) ([]Qid, error) {
	offs, err := b.ListOffsets(ctx, []string{topic}, "")
	if err != nil {
		return nil, fmt.Errorf("reading the offsets of %s: %w", topic, err)
	}
	qids := make([]Qid, 0, len(offs))
	for _, o := range offs {
		if o.Topic == topic {
			qids = append(qids, Qid{Qid: o.Qid, Partition: o.Partition, Start: o.Start, End: o.End})
		}
	}
	slices.SortFunc(qids, func(a, b Qid) int {
		if a.Partition != b.Partition {
			return int(a.Partition - b.Partition)
		}
		return strings.Compare(a.Qid, b.Qid)
	})
	return qids, nil
}

// Page is one browse of a qid.
type Page struct {
	Topic   string
	Cluster string
	// Qid is the qid read and its retained range when it was read.
	Qid Qid
	// Records are the messages from the first retained offset at or after
	// the one asked for, in offset order.
	Records []sdk.Record
	// Next is the offset to browse from for the page after this one: End
	// once the page reached it.
	Next int64
}

// Browse reads up to limit messages (0: DefaultBrowse; at most MaxBrowse)
// of topic's qid from offset on. An offset below the retained range starts
// at its first message; one at its end gives an empty page, as a consumer
// at the end would get; one past it is refused with code 11, naming the
// end, as an unknown qid is, naming the topic's qids.
func (s *Service) Browse(ctx context.Context, topic, qid string, offset int64, limit int) (Page, error) {
	switch {
	case limit == 0:
		limit = DefaultBrowse
	case limit < 0 || limit > MaxBrowse:
		return Page{}, sdk.Errorf(sdk.CodeIllegal, "limit: must be 1 to %d, got %d", MaxBrowse, limit)
	}
	if offset < 0 {
		return Page{}, sdk.Errorf(sdk.CodeIllegal, "offset: must be >= 0, got %d", offset)
	}
	page, b, err := s.lookup(ctx, topic, qid)
	if err != nil {
		return Page{}, err
	}
	if offset > page.Qid.End {
		return Page{}, sdk.Errorf(sdk.CodeIllegal, "offset: %d is past the end of topic %s qid %s, %d (the offset the next message will get)", offset, topic, qid, page.Qid.End)
	}
	return page, read(ctx, b, &page, max(offset, page.Qid.Start), limit)
}

// lookup finds topic's cluster and its qid's range: an empty page.
func (s *Service) lookup(ctx context.Context, topic, qid string) (Page, sdk.Backend, error) {
	cluster, b, err := s.cluster(topic)
	if err != nil {
		return Page{}, nil, err
	}
	qids, err := ranges(ctx, b, topic)
	if err != nil {
		return Page{}, nil, err
	}
	i := slices.IndexFunc(qids, func(q Qid) bool { return q.Qid == qid })
	if i < 0 {
		names := make([]string, len(qids))
		for j, q := range qids {
			names[j] = q.Qid
		}
		return Page{}, nil, sdk.Errorf(sdk.CodeIllegal, "qid: topic %s has no qid %q; its qids: %s", topic, qid, strings.Join(names, ", "))
	}
	return Page{Topic: topic, Cluster: cluster, Qid: qids[i]}, b, nil
}

// fetchAt reads up to max records of topic's qid from offset on, outside
// any group. ok is false when the qid yields nothing past offset now (its
// range moved on meanwhile).
func fetchAt(ctx context.Context, b sdk.Backend, topic, qid string, offset int64, max int32) (res sdk.FetchResult, ok bool, err error) {
	rs, err := b.Fetch(ctx, sdk.FetchRequest{
		Positions:  []sdk.FetchPosition{{Topic: topic, Qid: qid, Offset: offset}},
		MaxRecords: max,
		MaxWait:    fetchWait,
	})
	if err == nil && len(rs) == 1 {
		err = rs[0].Err
	}
	if err != nil {
		return sdk.FetchResult{}, false, fmt.Errorf("reading topic %s qid %s at offset %d: %w", topic, qid, offset, err)
	}
	if len(rs) != 1 || rs[0].NextOffset <= offset {
		return sdk.FetchResult{}, false, nil
	}
	return rs[0], true, nil
}

// read fills page with up to limit messages from offset on, within
// MaxPageBytes, and sets its Next.
func read(ctx context.Context, b sdk.Backend, page *Page, offset int64, limit int) error {
	page.Next = offset
	bytes := 0
	for page.Next < page.Qid.End && len(page.Records) < limit {
		res, ok, err := fetchAt(ctx, b, page.Topic, page.Qid.Qid, page.Next, int32(limit-len(page.Records)))
		if err != nil || !ok {
			return err // !ok: nothing more to read now, the range moved
		}
		for _, r := range res.Records {
			n := recordBytes(&r)
			if len(page.Records) == limit || (len(page.Records) > 0 && bytes+n > MaxPageBytes) {
				return nil
			}
			bytes += n
			page.Records = append(page.Records, r)
			page.Next = r.Offset + 1
		}
		page.Next = max(page.Next, res.NextOffset)
	}
	return nil
}

// recordBytes is what a record adds to a page.
func recordBytes(r *sdk.Record) int {
	n := len(r.Key) + len(r.Value) + len(r.Tags)
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// Message reads the message at topic's qid and offset: code 19 when the
// qid retains none there (not written yet, no longer retained, or removed
// by compaction).
func (s *Service) Message(ctx context.Context, topic, qid string, offset int64) (sdk.Record, error) {
	if offset < 0 {
		return sdk.Record{}, sdk.Errorf(sdk.CodeIllegal, "offset: must be >= 0, got %d", offset)
	}
	page, b, err := s.lookup(ctx, topic, qid)
	if err != nil {
		return sdk.Record{}, err
	}
	q := page.Qid
	switch {
	case offset < q.Start:
		return sdk.Record{}, sdk.Errorf(sdk.CodeNotFound, "topic %s qid %s has no message at offset %d: it is no longer retained (the oldest retained is %d)", topic, qid, offset, q.Start)
	case offset >= q.End:
		return sdk.Record{}, sdk.Errorf(sdk.CodeNotFound, "topic %s qid %s has no message at offset %d: it is not written yet (the next message gets %d)", topic, qid, offset, q.End)
	}
	if err := read(ctx, b, &page, offset, 1); err != nil {
		return sdk.Record{}, err
	}
	if len(page.Records) == 0 || page.Records[0].Offset != offset {
		return sdk.Record{}, sdk.Errorf(sdk.CodeNotFound, "topic %s qid %s has no message at offset %d (removed by compaction, or a transaction marker)", topic, qid, offset)
	}
	return page.Records[0], nil
}

// Redriven is what became of one dead letter sent back to its topic.
type Redriven struct {
	// Offset is the dead letter's offset in the dead-letter topic.
	Offset int64
	// Topic is the topic it came from, and Result what producing it there
	// again gave (its new qid, partition and offset, or the error).
	Topic  string
	Result sdk.ProduceResult
}

// MaxRedrive is the most dead letters one redrive sends back.
const MaxRedrive = 100

// Redrive sends the dead letters at offsets of dlqTopic's qid back to the
// topics they came from (each names its own, in the header
// consume.HeaderOriginTopic), with their key, value, tags and headers as
// they were: the headers the gateway added when it dead-lettered them are
// left out. Each is a new message of its topic, for every group that reads
// it. One that cannot be read or produced has its error in its result; the
// others go on. send is the router's Produce.
func (s *Service) Redrive(ctx context.Context, dlqTopic, qid string, offsets []int64, send func(ctx context.Context, topic string, msgs []produce.Message) ([]sdk.ProduceResult, error)) ([]Redriven, error) {
	switch {
	case len(offsets) == 0:
		return nil, sdk.Errorf(sdk.CodeIllegal, "offsets: name at least one dead letter")
	case len(offsets) > MaxRedrive:
		return nil, sdk.Errorf(sdk.CodeTooLarge, "offsets: at most %d dead letters per redrive, got %d", MaxRedrive, len(offsets))
	}
	if sorted := slices.Sorted(slices.Values(offsets)); len(slices.Compact(sorted)) != len(offsets) {
		return nil, sdk.Errorf(sdk.CodeIllegal, "offsets: an offset is named twice; name each dead letter once")
	}
	found, q, err := s.readOffsets(ctx, dlqTopic, qid, offsets)
	if err != nil {
		return nil, err
	}
	out := make([]Redriven, len(offsets))
	byTopic := map[string][]int{} // origin topic -> indexes into out
	msgs := make([]produce.Message, len(offsets))
	for i, off := range offsets {
		out[i].Offset = off
		r, ok := found[off]
		switch {
		case ok:
		case off < q.Start:
			out[i].Result.Err = sdk.Errorf(sdk.CodeNotFound, "topic %s qid %s has no message at offset %d: it is no longer retained (the oldest retained is %d)", dlqTopic, qid, off, q.Start)
			continue
		case off >= q.End:
			out[i].Result.Err = sdk.Errorf(sdk.CodeNotFound, "topic %s qid %s has no message at offset %d: it is not written yet (the next message gets %d)", dlqTopic, qid, off, q.End)
			continue
		default:
			out[i].Result.Err = sdk.Errorf(sdk.CodeNotFound, "topic %s qid %s has no message at offset %d (removed by compaction, or a transaction marker)", dlqTopic, qid, off)
			continue
		}
		msgs[i] = produce.Message{Key: r.Key, Value: r.Value, Tags: r.Tags, Partition: sdk.PartitionHash}
		for _, h := range r.Headers {
			switch {
			case h.Key == consume.HeaderOriginTopic:
				out[i].Topic = string(h.Value)
			case topicname.HeaderProblem(h.Key) != "":
				// Written by the gateway (dead-lettering, or a delayed
				// message's delivery): the message goes back as the
				// client's own.
			default:
				msgs[i].Headers = append(msgs[i].Headers, h)
			}
		}
		if out[i].Topic == "" {
			out[i].Result.Err = sdk.Errorf(sdk.CodeIllegal, "offset %d of %s qid %s is not a dead letter: it has no %s header", off, dlqTopic, qid, consume.HeaderOriginTopic)
			continue
		}
		byTopic[out[i].Topic] = append(byTopic[out[i].Topic], i)
	}
	// One produce call per origin topic, in the order the offsets came.
	for _, topic := range slices.Sorted(maps.Keys(byTopic)) {
		idx := byTopic[topic]
		batch := make([]produce.Message, len(idx))
		for k, i := range idx {
			batch[k] = msgs[i]
		}
		res, err := send(ctx, topic, batch)
		if err == nil && len(res) != len(batch) {
			err = sdk.Errorf(sdk.CodeInternal, "producing to %s gave %d results for %d messages", topic, len(res), len(batch))
		}
		for k, i := range idx {
			if err != nil {
				out[i].Result.Err = err
			} else {
				out[i].Result = res[k]
			}
		}
	}
	return out, nil
}

// readOffsets reads the messages at offsets of topic's qid, a page at a
// time over the range they span, and returns those it found by offset,
// with the qid's range.
func (s *Service) readOffsets(ctx context.Context, topic, qid string, offsets []int64) (map[int64]sdk.Record, Qid, error) {
	page, b, err := s.lookup(ctx, topic, qid)
	if err != nil {
		return nil, Qid{}, err
	}
	q := page.Qid
	want := slices.Sorted(slices.Values(offsets))
	want = slices.Compact(want)
	found := make(map[int64]sdk.Record, len(want))
	for i := 0; i < len(want); {
		off := want[i]
		if off < q.Start || off >= q.End {
			i++
			continue
		}
		// Read from off to the last wanted offset within MaxBrowse of it:
		// dead letters far apart are read one at a time, not the
		// messages between them.
		last := off
		for _, w := range want[i:] {
			if w-off >= MaxBrowse {
				break
			}
			last = w
		}
		p := Page{Topic: topic, Qid: q}
		if err := read(ctx, b, &p, off, int(last-off+1)); err != nil {
			return nil, Qid{}, err
		}
		for _, r := range p.Records {
			if _, ok := slices.BinarySearch(want, r.Offset); ok {
				found[r.Offset] = r
			}
		}
		// Go on from the first wanted offset this page did not reach.
		for i < len(want) && want[i] < max(p.Next, off+1) {
			i++
		}
	}
	return found, q, nil
}

// DeadLetterTopic describes a group's dead-letter topic, dlqTopic: as
// Topic, but a topic not created yet (nothing was dead-lettered) has no
// qids rather than code 14.
func (s *Service) DeadLetterTopic(ctx context.Context, dlqTopic string) (Topic, error) {
	t, err := s.Topic(ctx, dlqTopic)
	if sdk.CodeOf(err) == sdk.CodeTopicNotExist {
		cluster, _, cerr := s.cluster(dlqTopic)
		if cerr != nil {
			return Topic{}, cerr
		}
		return Topic{Name: dlqTopic, Cluster: cluster, Qids: []Qid{}}, nil
	}
	return t, err
}

// The bounds of a topic created through the admin API.
const (
	// MaxPartitions is the most partitions (queues) a created topic may
	// have.
	MaxPartitions = 1000
	// MaxTopicConfigs is the most broker settings one create may set.
	MaxTopicConfigs = 64
)

// CreateTopic creates topic with partitions qids (0: the backend's
// default) and the broker settings configs (Kafka topic configs such as
// retention.ms; the backend refuses those it does not take), and
// describes it. A topic that exists is left as it is and described:
// created is false. Reserved names are refused (code 13).
func (s *Service) CreateTopic(ctx context.Context, topic string, partitions int32, configs map[string]string) (t Topic, created bool, err error) {
	if partitions < 0 || partitions > MaxPartitions {
		return Topic{}, false, sdk.Errorf(sdk.CodeIllegal, "partitions: must be 1 to %d (or absent: the cluster's default), got %d", MaxPartitions, partitions)
	}
	if len(configs) > MaxTopicConfigs {
		return Topic{}, false, sdk.Errorf(sdk.CodeTooLarge, "configs: at most %d settings, got %d", MaxTopicConfigs, len(configs))
	}
	_, b, err := s.cluster(topic)
	if err != nil {
		return Topic{}, false, err
	}
	if t, err := s.Topic(ctx, topic); sdk.CodeOf(err) != sdk.CodeTopicNotExist {
		return t, false, err
	}
	if err := b.EnsureTopics(ctx, []sdk.TopicSpec{{Name: topic, Partitions: partitions, Configs: configs}}); err != nil {
		return Topic{}, false, fmt.Errorf("creating topic %s: %w", topic, err)
	}
	// A broker may take a moment to list a topic it just created, and
	// to elect its partitions' leaders (code 17 meanwhile).
	for wait := 20 * time.Millisecond; ; wait = min(2*wait, 500*time.Millisecond) {
		t, err = s.Topic(ctx, topic)
		if c := sdk.CodeOf(err); c != sdk.CodeTopicNotExist && c != sdk.CodeUnavailable {
			return t, err == nil, err
		}
		select {
		case <-ctx.Done():
			return Topic{}, false, sdk.Errorf(sdk.CodeTimeout, "topic %s was created but its broker did not list it in time: %v", topic, ctx.Err())
		case <-time.After(wait):
		}
	}
}

// MaxRedriveScan bounds the dead letters one redrive by filter reads.
const MaxRedriveScan = 10000

// DeadLetterFilter picks dead letters by where they came from and why they
// failed; an empty field matches any.
type DeadLetterFilter struct {
	// OriginTopic matches the topic a dead letter came from, exactly.
	OriginTopic string
	// ErrorContains matches text in its last error.
	ErrorContains string
}

func (f DeadLetterFilter) matches(r *sdk.Record) bool {
	var origin, lastErr string
	for _, h := range r.Headers {
		switch h.Key {
		case consume.HeaderOriginTopic:
			origin = string(h.Value)
		case consume.HeaderLastError:
			lastErr = string(h.Value)
		}
	}
	return (f.OriginTopic == "" || origin == f.OriginTopic) && (f.ErrorContains == "" || strings.Contains(lastErr, f.ErrorContains))
}

// MatchDeadLetters reads dlqTopic's qid from offset from on (its start
// when below it), at most MaxRedriveScan dead letters, and returns the
// offsets of up to MaxRedrive that f matches, where the next read should
// start and how many it read. It reads up to the qid's end as it was when
// it began, returned as end: a client redriving by a filter stops when
// next reaches the end it saw first (dead letters written since, those it
// sent back failing again among them, are not read again).
func (s *Service) MatchDeadLetters(ctx context.Context, dlqTopic, qid string, from int64, f DeadLetterFilter) (offsets []int64, next, end int64, scanned int, err error) {
	page, b, err := s.lookup(ctx, dlqTopic, qid)
	if err != nil {
		return nil, 0, 0, 0, err
	}
	end = page.Qid.End
	next = max(from, page.Qid.Start)
	if next > end {
		return nil, 0, 0, 0, sdk.Errorf(sdk.CodeIllegal, "from_offset: %d is past the end of topic %s qid %s, %d", from, dlqTopic, qid, end)
	}
	offsets = []int64{}
	for next < end && scanned < MaxRedriveScan && len(offsets) < MaxRedrive {
		res, ok, err := fetchAt(ctx, b, dlqTopic, qid, next, int32(min(500, MaxRedriveScan-scanned)))
		if err != nil {
			return nil, 0, 0, 0, err
		}
		if !ok {
			if scanned == 0 {
				// Nothing read though the qid holds more: say so,
				// rather than have a client send the same call again.
				return nil, 0, 0, 0, sdk.Errorf(sdk.CodeUnavailable, "topic %s qid %s: nothing could be read at offset %d, below its end %d; try again", dlqTopic, qid, next, end)
			}
			break
		}
		for i := range res.Records {
			r := &res.Records[i]
			if r.Offset >= end || len(offsets) == MaxRedrive {
				return offsets, min(r.Offset, end), end, scanned, nil
			}
			scanned++
			next = r.Offset + 1
			if f.matches(r) {
				offsets = append(offsets, r.Offset)
			}
		}
		next = max(next, min(res.NextOffset, end))
	}
	return offsets, next, end, scanned, nil
}

// DiscardDeadLetters deletes the dead letters of dlqTopic's qid before
// offset before (the broker's record deletion: Kafka's DeleteRecords), and
// describes the qid after: code 11 for an offset outside what the qid
// retains, or a broker that cannot delete records.
func (s *Service) DiscardDeadLetters(ctx context.Context, dlqTopic, qid string, before int64) (Qid, int64, error) {
	page, b, err := s.lookup(ctx, dlqTopic, qid)
	if err != nil {
		return Qid{}, 0, err
	}
	q := page.Qid
	if before < q.Start || before > q.End {
		return Qid{}, 0, sdk.Errorf(sdk.CodeIllegal, "before_offset: %d is outside what topic %s qid %s retains, %d to %d", before, dlqTopic, qid, q.Start, q.End)
	}
	a, ok := b.(sdk.ClusterAdmin)
	if !ok {
		return Qid{}, 0, sdk.Errorf(sdk.CodeIllegal, "topic %s: its cluster's plugin cannot delete records", dlqTopic)
	}
	if before > q.Start {
		if err := a.DeleteRecords(ctx, []sdk.Offset{{Topic: dlqTopic, Qid: qid, Offset: before}}); err != nil {
			return Qid{}, 0, fmt.Errorf("discarding the dead letters of topic %s qid %s before %d: %w", dlqTopic, qid, before, err)
		}
	}
	after, _, err := s.lookup(ctx, dlqTopic, qid)
	if err != nil {
		return Qid{}, 0, err
	}
	return after.Qid, max(after.Qid.Start-q.Start, 0), nil
}
