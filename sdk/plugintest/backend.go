// Package plugintest is the conformance suite every mqgate backend plugin
// runs on itself, bundled or third-party:
//
//	func TestConformance(t *testing.T) {
//		plugintest.RunBackend(t, func(t *testing.T) sdk.Backend {
//			b := mybackend.New(sdk.Logger())
//			if err := b.Configure(context.Background(), cfg); err != nil {
//				t.Fatal(err)
//			}
//			return b
//		})
//	}
//
// A plugin that checks its config before start (sdk.ConfigValidator) also
// runs RunConfigValidation, which holds its ValidateConfig to what its
// Configure does.
//
// It imports only sdk and the standard library, so a plugin's tests pull in
// nothing of the gateway.
package plugintest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqgate/mqgate/sdk"
)

// opTimeout bounds each broker operation of the suite. It only turns a hang
// into a failure; no test asserts how long anything takes.
const opTimeout = 30 * time.Second

// RunBackend runs the backend conformance suite as subtests of t. It calls
// newBackend once for a configured backend, which all subtests share: each
// uses its own uniquely named topics and groups, so a backend left with
// data from earlier runs passes too. RunBackend closes the backend when t
// ends (through t.Cleanup); newBackend must not.
//
// Topics are created with EnsureTopics; the backend must allow at least 4
// partitions per topic, records of 900 KiB and batches over 4 MiB.
//
// Options tell the suite where a broker's semantics differ from Kafka's;
// the suite then checks the backend's documented behaviour instead.
func RunBackend(t *testing.T, newBackend func(t *testing.T) sdk.Backend, opts ...Option) {
	t.Helper()
	b := newBackend(t)
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("closing backend: %v", err)
		}
	})
	s := &suite{b: b, run: randomHex(4)}
	for _, o := range opts {
		o(s)
	}
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"RoundTrip", s.testRoundTrip},
		{"QidOrder", s.testQidOrder},
		{"CommitAndResume", s.testCommitAndResume},
		{"FetchAtOffset", s.testFetchAtOffset},
		{"FetchWaitsForOneRecord", s.testFetchWaitsForOneRecord},
		{"EndOffsetsAdvance", s.testEndOffsetsAdvance},
		{"EnsureTopicsIdempotent", s.testEnsureTopicsIdempotent},
		{"LargeBatch", s.testLargeBatch},
		{"Errors", s.testErrors},
		{"PollWakesOnProduce", s.testPollWakesOnProduce},
		{"UnknownTopic", s.testUnknownTopic},
		{"ClusterAdmin", s.testClusterAdmin},
	} {
		t.Run(tc.name, tc.fn)
	}
}

// testClusterAdmin: a backend that lists its cluster (sdk.ClusterAdmin,
// asked through sdk.ListTopics, so over gRPC for a plugin process) lists a
// topic it made with its qids and a group that committed; deleting a group
// deletes it, or is refused as not done (code 11), never half done.
func (s *suite) testClusterAdmin(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if _, err := sdk.ListTopics(ctx, s.b); sdk.CodeOf(err) == sdk.CodeIllegal && strings.Contains(err.Error(), "does not implement") {
		t.Skip("the backend does not implement sdk.ClusterAdmin")
	}
	topic, group := s.name(t, "topic"), s.name(t, "group")
	s.ensure(t, topic, 3)
	res := s.produceOK(t, []sdk.Record{{Topic: topic, Partition: 0, Value: []byte("v")}})
	if err := s.b.Commit(ctx, group, []sdk.Offset{{Topic: topic, Qid: res[0].Qid, Offset: 1}}); err != nil {
		t.Fatalf("Backend.Commit: %v", err)
	}
	topics, err := sdk.ListTopics(ctx, s.b)
	if err != nil {
		t.Fatalf("ListTopics: %v", err)
	}
	i := slices.IndexFunc(topics, func(l sdk.TopicListing) bool { return l.Name == topic })
	if i < 0 || topics[i].Qids != 3 || topics[i].Internal {
		t.Fatalf("ListTopics = %+v; want %s with 3 qids, not internal", topics, topic)
	}
	groups, err := sdk.ListGroups(ctx, s.b)
	if err != nil {
		t.Fatalf("ListGroups: %v", err)
	}
	if !slices.ContainsFunc(groups, func(g sdk.GroupListing) bool { return g.Name == group && g.Members <= 0 }) {
		t.Fatalf("ListGroups = %+v; want %s, with no members", groups, group)
	}
	d, err := sdk.DescribeGroup(ctx, s.b, group)
	if err != nil || len(d.Members) != 0 {
		t.Errorf("DescribeGroup of a group with no member = %+v, %v; want no members", d, err)
	}
	if _, err := sdk.DescribeGroup(ctx, s.b, s.name(t, "nobody")); sdk.CodeOf(err) != sdk.CodeNotFound {
		t.Errorf("DescribeGroup of a group the broker does not know = %v; want code 19", err)
	}
	// DeleteRecords moves the qid's start, or is refused as not done.
	switch err := sdk.DeleteRecords(ctx, s.b, []sdk.Offset{{Topic: topic, Qid: res[0].Qid, Offset: 1}}); sdk.CodeOf(err) {
	case sdk.CodeOK:
		if o := s.offsetsOf(t, topic, res[0].Qid, ""); o.Start != 1 {
			t.Errorf("after DeleteRecords before 1, the qid starts at %d", o.Start)
		}
	case sdk.CodeIllegal:
	default:
		t.Fatalf("DeleteRecords = %v; want it done, or refused with code 11", err)
	}
	err = sdk.DeleteGroup(ctx, s.b, group)
	t.Logf("listed %d topics and %d groups; DeleteGroup: %v", len(topics), len(groups), err)
	switch sdk.CodeOf(err) {
	case sdk.CodeOK:
		if o := s.offsetsOf(t, topic, res[0].Qid, group); o.Committed != -1 {
			t.Errorf("after DeleteGroup the group still has committed %d", o.Committed)
		}
		if err := sdk.DeleteGroup(ctx, s.b, group); sdk.CodeOf(err) != sdk.CodeNotFound {
			t.Errorf("DeleteGroup of a deleted group = %v; want code 19", err)
		}
	case sdk.CodeIllegal:
		if o := s.offsetsOf(t, topic, res[0].Qid, group); o.Committed != 1 {
			t.Errorf("a refused DeleteGroup moved the group's offset to %d", o.Committed)
		}
	default:
		t.Fatalf("DeleteGroup = %v; want it done, or refused with code 11", err)
	}
}

// Option declares a way the backend under test differs from Kafka.
type Option func(*suite)

// HeadersAsProperties declares a broker whose message properties are a map
// (RocketMQ): headers with unique text keys come back sorted by key rather
// than in the order produced. Repeated keys and binary values must still
// come back exactly, in order.
func HeadersAsProperties() Option {
	return func(s *suite) { s.headersSorted = true }
}

// suite holds the backend under test, this run's name suffix and what the
// backend declared about itself.
type suite struct {
	b             sdk.Backend
	run           string
	headersSorted bool
}

// name returns a topic or group name unique to this run and subtest.
func (s *suite) name(t *testing.T, kind string) string {
	sub := t.Name()
	if i := strings.LastIndexByte(sub, '/'); i >= 0 {
		sub = sub[i+1:]
	}
	return fmt.Sprintf("plugintest-%s-%s-%s", strings.ToLower(sub), kind, s.run)
}

// testRoundTrip: what is produced comes back through a group consumer with
// key, value, headers, tags and position intact.
func (s *suite) testRoundTrip(t *testing.T) {
	topic := s.name(t, "topic")
	s.ensure(t, topic, 1)
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	in := []sdk.Record{
		{Topic: topic, Key: []byte("k1"), Value: []byte("v1"), Tags: "tagA",
			Headers: []sdk.Header{{Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("2")}, {Key: "a", Value: []byte("3")}}},
		{Topic: topic, Key: nil, Value: all},
		{Topic: topic, Key: []byte("k3"), Value: []byte{}},
		{Topic: topic, Key: all, Value: []byte("x"), Tags: "tagA||tagB",
			Headers: []sdk.Header{{Key: "bin", Value: all}}},
		{Topic: topic, Key: []byte("k5"), Value: []byte("text headers"),
			Headers: []sdk.Header{{Key: "zone", Value: []byte("eu")}, {Key: "app", Value: []byte("orders")}}},
	}
	res := s.produceOK(t, in)

	c := s.consume(t, sdk.Subscription{Group: s.name(t, "group"), Topics: []string{topic}, Start: sdk.StartEarliest})
	got, events := pollRecords(t, c, len(in))
	if !assignedBefore(events, topic, res[0].Qid) {
		t.Errorf("no Assigned event naming %s qid %s came before its records; events: %+v", topic, res[0].Qid, events)
	}
	for i, want := range in {
		g := got[i]
		if g.Topic != topic || g.Qid != res[i].Qid || g.Partition != res[i].Partition || g.Offset != res[i].Offset {
			t.Errorf("record %d at %s/%s/%d/%d, produced at %s/%s/%d/%d", i,
				g.Topic, g.Qid, g.Partition, g.Offset, topic, res[i].Qid, res[i].Partition, res[i].Offset)
		}
		s.checkContent(t, fmt.Sprintf("record %d", i), g, want)
		if g.Timestamp.IsZero() {
			t.Errorf("record %d has no timestamp", i)
		}
	}
}

// testQidOrder: records with one hash share a qid and come back in produce
// order with increasing offsets; explicit partitions are honoured.
func (s *suite) testQidOrder(t *testing.T) {
	const (
		partitions = 4
		n          = 200
		hash       = uint64(12345)
	)
	topic := s.name(t, "topic")
	s.ensure(t, topic, partitions)
	in := make([]sdk.Record, n)
	for i := range in {
		in[i] = sdk.Record{Topic: topic, Partition: sdk.PartitionHash, Hash: hash, Value: fmt.Appendf(nil, "v%03d", i)}
	}
	res := s.produceOK(t, in)
	wantPart := int32(hash % partitions)
	for i, r := range res {
		if r.Partition != wantPart || r.Qid != res[0].Qid {
			t.Fatalf("record %d went to partition %d qid %q (record 0: qid %q); hash %d over %d partitions must give partition %d for all",
				i, r.Partition, r.Qid, res[0].Qid, hash, partitions, wantPart)
		}
		if i > 0 && r.Offset <= res[i-1].Offset {
			t.Fatalf("record %d got offset %d, not after record %d's %d", i, r.Offset, i-1, res[i-1].Offset)
		}
	}

	c := s.consume(t, sdk.Subscription{Group: s.name(t, "group"), Topics: []string{topic}, Start: sdk.StartEarliest})
	got, _ := pollRecords(t, c, n)
	for i, g := range got {
		if g.Qid != res[0].Qid || g.Offset != res[i].Offset || !bytes.Equal(g.Value, in[i].Value) {
			t.Fatalf("consumed record %d is %q at qid %s offset %d; want %q at qid %s offset %d",
				i, g.Value, g.Qid, g.Offset, in[i].Value, res[0].Qid, res[i].Offset)
		}
	}

	// Explicit partitions land where asked, on the qid ListOffsets names
	// for that partition.
	explicit := make([]sdk.Record, partitions)
	for p := range explicit {
		explicit[p] = sdk.Record{Topic: topic, Partition: int32(p), Value: []byte("explicit")}
	}
	eres := s.produceOK(t, explicit)
	qids := map[int32]string{}
	for _, o := range s.listOffsets(t, []string{topic}, "") {
		qids[o.Partition] = o.Qid
	}
	for p, r := range eres {
		if r.Partition != int32(p) || r.Qid != qids[int32(p)] {
			t.Errorf("record for partition %d landed on partition %d qid %q; ListOffsets names partition %d qid %q",
				p, r.Partition, r.Qid, p, qids[int32(p)])
		}
	}
}

// testCommitAndResume: a new member of a group resumes at the offset the
// last one committed; a unary Commit shows in ListOffsets.
func (s *suite) testCommitAndResume(t *testing.T) {
	const n, done = 10, 4
	topic := s.name(t, "topic")
	group := s.name(t, "group")
	s.ensure(t, topic, 1)
	in := make([]sdk.Record, n)
	for i := range in {
		in[i] = sdk.Record{Topic: topic, Partition: 0, Value: fmt.Appendf(nil, "r%d", i)}
	}
	res := s.produceOK(t, in)
	qid := res[0].Qid

	if o := s.offsetsOf(t, topic, qid, group); o.Committed != -1 {
		t.Fatalf("group %s has committed %d before any commit; want -1", group, o.Committed)
	}

	sub := sdk.Subscription{Group: group, Topics: []string{topic}, Start: sdk.StartEarliest}
	first := s.consume(t, sub)
	got, _ := pollRecords(t, first, n)
	next := got[done-1].Offset + 1
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := first.Commit(ctx, []sdk.Offset{{Topic: topic, Qid: qid, Offset: next}}); err != nil {
		t.Fatalf("Consumer.Commit: %v", err)
	}
	if o := s.offsetsOf(t, topic, qid, group); o.Committed != next {
		t.Errorf("after committing %d, ListOffsets shows committed %d", next, o.Committed)
	}
	if err := first.Close(); err != nil {
		t.Fatalf("closing first consumer: %v", err)
	}

	second := s.consume(t, sub)
	rest, _ := pollRecords(t, second, n-done)
	for i, g := range rest {
		if want := res[done+i]; g.Offset != want.Offset || !bytes.Equal(g.Value, in[done+i].Value) {
			t.Fatalf("after resuming, record %d is %q at offset %d; want %q at offset %d (committed %d)",
				i, g.Value, g.Offset, in[done+i].Value, want.Offset, next)
		}
	}
	if err := second.Close(); err != nil {
		t.Fatalf("closing second consumer: %v", err)
	}

	// A unary commit for a group without members.
	other := s.name(t, "unary")
	at := res[n-2].Offset
	if err := s.b.Commit(ctx, other, []sdk.Offset{{Topic: topic, Qid: qid, Offset: at}}); err != nil {
		t.Fatalf("Backend.Commit: %v", err)
	}
	if o := s.offsetsOf(t, topic, qid, other); o.Committed != at {
		t.Errorf("after Backend.Commit of %d, ListOffsets shows committed %d", at, o.Committed)
	}
}

// testFetchAtOffset: Fetch returns exactly the records from the asked
// offset on, and a NextOffset to continue from.
func (s *suite) testFetchAtOffset(t *testing.T) {
	const n, from, maxRecords = 10, 3, 4
	topic := s.name(t, "topic")
	s.ensure(t, topic, 1)
	in := make([]sdk.Record, n)
	for i := range in {
		in[i] = sdk.Record{Topic: topic, Partition: 0, Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "f%d", i), Tags: "t"}
	}
	res := s.produceOK(t, in)

	// One fetch: records from exactly the asked offset, NextOffset right
	// after the last one (this topic has no gaps).
	one := s.fetch(t, sdk.FetchPosition{Topic: topic, Qid: res[0].Qid, Offset: res[from].Offset}, maxRecords, time.Second)
	if one.Err != nil || len(one.Records) == 0 || len(one.Records) > maxRecords {
		t.Fatalf("fetch at offset %d with MaxRecords %d: %d records, err %v", res[from].Offset, maxRecords, len(one.Records), one.Err)
	}
	for i, g := range one.Records {
		if g.Offset != res[from+i].Offset {
			t.Fatalf("fetched record %d at offset %d; want %d", i, g.Offset, res[from+i].Offset)
		}
	}
	if last := one.Records[len(one.Records)-1]; one.NextOffset != last.Offset+1 {
		t.Errorf("NextOffset %d after a last record at %d; want %d", one.NextOffset, last.Offset, last.Offset+1)
	}

	got := s.fetchAll(t, topic, res[0].Qid, res[from].Offset, res[n-1].Offset+1, maxRecords)
	if len(got) != n-from {
		t.Fatalf("fetched %d records from offset %d; want %d", len(got), res[from].Offset, n-from)
	}
	for i, g := range got {
		if g.Offset != res[from+i].Offset {
			t.Fatalf("fetched record %d at offset %d; want %d", i, g.Offset, res[from+i].Offset)
		}
		s.checkContent(t, fmt.Sprintf("fetched record %d", i), g, in[from+i])
	}

	// At the end there is nothing yet, and NextOffset stays.
	end := res[n-1].Offset + 1
	r := s.fetch(t, sdk.FetchPosition{Topic: topic, Qid: res[0].Qid, Offset: end}, maxRecords, 50*time.Millisecond)
	if r.Err != nil || len(r.Records) != 0 || r.NextOffset != end {
		t.Errorf("fetch at the end offset %d: %d records, next %d, err %v; want none, next %d, no error",
			end, len(r.Records), r.NextOffset, r.Err, end)
	}
}

// testFetchWaitsForOneRecord: a Fetch of several positions waits for a
// record at any of them, not at each: one produced to one qid ends the
// wait, however long MaxWait is.
func (s *suite) testFetchWaitsForOneRecord(t *testing.T) {
	topic := s.name(t, "topic")
	s.ensure(t, topic, 2)
	seed := s.produceOK(t, []sdk.Record{{Topic: topic, Partition: 0, Value: []byte("a")}, {Topic: topic, Partition: 1, Value: []byte("b")}})
	var positions []sdk.FetchPosition
	for _, r := range seed {
		positions = append(positions, sdk.FetchPosition{Topic: topic, Qid: r.Qid, Offset: r.Offset + 1})
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	go func() {
		// The record may land before the Fetch reaches the broker; then
		// the Fetch has it at once, which passes too. A failure shows up
		// as the Fetch not answering with it.
		_, _ = s.b.Produce(ctx, []sdk.Record{{Topic: topic, Partition: 0, Value: []byte("late")}})
	}()
	// MaxWait far beyond the context: only the record can end the wait
	// in time.
	res, err := s.b.Fetch(ctx, sdk.FetchRequest{Positions: positions, MaxRecords: 10, MaxWait: time.Hour})
	if err != nil {
		t.Fatalf("Fetch of two positions, a record produced to one: %v", err)
	}
	var got []string
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("Fetch result for qid %s: %v", r.Qid, r.Err)
		}
		for _, rec := range r.Records {
			got = append(got, string(rec.Value))
		}
	}
	if len(got) != 1 || got[0] != "late" {
		t.Fatalf("Fetch answered %q; want the one record produced while it waited", got)
	}
}

// testEndOffsetsAdvance: each qid's end offset grows by exactly the records
// produced to it; start never passes end.
func (s *suite) testEndOffsetsAdvance(t *testing.T) {
	const partitions = 3
	topic := s.name(t, "topic")
	s.ensure(t, topic, partitions)
	before := s.listOffsets(t, []string{topic}, "")
	counts := []int{3, 0, 4}
	var in []sdk.Record
	for p, c := range counts {
		for range c {
			in = append(in, sdk.Record{Topic: topic, Partition: int32(p), Value: []byte("e")})
		}
	}
	s.produceOK(t, in)
	after := s.listOffsets(t, []string{topic}, "")
	if len(before) != partitions || len(after) != partitions {
		t.Fatalf("ListOffsets gave %d then %d qids; want %d", len(before), len(after), partitions)
	}
	for i, a := range after {
		b := before[i]
		if a.Qid != b.Qid || a.Partition != b.Partition {
			t.Fatalf("ListOffsets order changed: %+v then %+v", b, a)
		}
		if got, want := a.End-b.End, int64(counts[a.Partition]); got != want {
			t.Errorf("qid %s end moved by %d (from %d to %d); produced %d", a.Qid, got, b.End, a.End, want)
		}
		if a.Start > a.End {
			t.Errorf("qid %s start %d is past end %d", a.Qid, a.Start, a.End)
		}
	}
}

// testEnsureTopicsIdempotent: asking again for an existing topic is fine
// and leaves it as it is.
func (s *suite) testEnsureTopicsIdempotent(t *testing.T) {
	const partitions = 3
	topic := s.name(t, "topic")
	s.ensure(t, topic, partitions)
	s.ensure(t, topic, partitions)
	s.ensure(t, topic, partitions+1) // existing topics are left as they are
	offs := s.listOffsets(t, []string{topic}, "")
	if len(offs) != partitions {
		t.Fatalf("topic has %d qids; want %d", len(offs), partitions)
	}
	qids := map[string]bool{}
	for i, o := range offs {
		if o.Topic != topic || o.Partition != int32(i) || o.Committed != -1 {
			t.Errorf("qid %d is %+v; want topic %s, partition %d, committed -1", i, o, topic, i)
		}
		if qids[o.Qid] {
			t.Errorf("qid %q listed twice", o.Qid)
		}
		qids[o.Qid] = true
	}
}

// testLargeBatch: a batch over 4 MiB, each record near 1 MiB, produces and
// reads back intact.
func (s *suite) testLargeBatch(t *testing.T) {
	const n, size = 6, 900 << 10
	topic := s.name(t, "topic")
	s.ensure(t, topic, 1)
	rng := mrand.NewChaCha8([32]byte{1}) // incompressible, repeatable
	in := make([]sdk.Record, n)
	for i := range in {
		v := make([]byte, size)
		_, _ = rng.Read(v) // ChaCha8.Read never fails
		in[i] = sdk.Record{Topic: topic, Partition: 0, Key: fmt.Appendf(nil, "big%d", i), Value: v}
	}
	res := s.produceOK(t, in)
	got := s.fetchAll(t, topic, res[0].Qid, res[0].Offset, res[n-1].Offset+1, 0)
	if len(got) != n {
		t.Fatalf("read back %d records; want %d", len(got), n)
	}
	for i, g := range got {
		if g.Offset != res[i].Offset || !bytes.Equal(g.Value, in[i].Value) || !bytes.Equal(g.Key, in[i].Key) {
			t.Errorf("record %d at offset %d (want %d) has %d value bytes, equal: %v",
				i, g.Offset, res[i].Offset, len(g.Value), bytes.Equal(g.Value, in[i].Value))
		}
	}
}

// testErrors: bad requests fail with CodeIllegal per record or position and
// leave the rest of the batch alone.
func (s *suite) testErrors(t *testing.T) {
	topic := s.name(t, "topic")
	s.ensure(t, topic, 2)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	res, err := s.b.Produce(ctx, []sdk.Record{
		{Topic: topic, Partition: 5, Value: []byte("nowhere")},
		{Topic: topic, Partition: 1, Value: []byte("fine")},
	})
	if err != nil {
		t.Fatalf("Produce: %v", err)
	}
	if len(res) != 2 {
		t.Fatalf("Produce gave %d results for 2 records", len(res))
	}
	if code := sdk.CodeOf(res[0].Err); code != sdk.CodeIllegal {
		t.Errorf("partition 5 of a 2-partition topic: code %d (%v); want %d", code, res[0].Err, sdk.CodeIllegal)
	} else if !strings.Contains(res[0].Err.Error(), "partition") {
		t.Errorf("error %q does not name the partition", res[0].Err)
	}
	if res[1].Err != nil {
		t.Errorf("a good record in the same batch failed: %v", res[1].Err)
	}

	end := res[1].Offset + 1
	r := s.fetch(t, sdk.FetchPosition{Topic: topic, Qid: res[1].Qid, Offset: end + 100}, 10, 0)
	if code := sdk.CodeOf(r.Err); code != sdk.CodeIllegal {
		t.Errorf("fetch past the end: code %d (%v); want %d", code, r.Err, sdk.CodeIllegal)
	}
}

// testPollWakesOnProduce: a consumer that is already waiting gets records
// produced after it started, without polling in a loop of its own.
func (s *suite) testPollWakesOnProduce(t *testing.T) {
	topic, group := s.name(t, "topic"), s.name(t, "group")
	s.ensure(t, topic, 1)
	c := s.consume(t, sdk.Subscription{Group: group, Topics: []string{topic}, Start: sdk.StartEarliest})
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	// The topic is empty: the first thing a consumer reports is its
	// assignment. After it, the next Poll has nothing to return but waits.
	for assigned := false; !assigned; {
		ev, err := c.Poll(ctx, 10)
		if err != nil {
			t.Fatalf("Poll before anything was produced: %v", err)
		}
		if len(ev.Records) > 0 {
			t.Fatalf("an empty topic gave records: %+v", ev.Records)
		}
		assigned = len(ev.Assigned) > 0
	}
	got := make(chan []sdk.Record, 1)
	go func() {
		// Errors show up in the main goroutine as a missing record.
		for {
			ev, err := c.Poll(ctx, 10)
			if err != nil {
				got <- nil
				return
			}
			if len(ev.Records) > 0 {
				got <- ev.Records
				return
			}
		}
	}()
	s.produceOK(t, []sdk.Record{{Topic: topic, Partition: 0, Value: []byte("late")}})
	recs := <-got
	if len(recs) != 1 || string(recs[0].Value) != "late" {
		t.Fatalf("a waiting consumer got %+v; want the record produced after it started", recs)
	}
}

// testUnknownTopic: asking about a topic that does not exist is code 14,
// and asking does not create it.
func (s *suite) testUnknownTopic(t *testing.T) {
	topic := s.name(t, "missing")
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	for range 2 { // the first ask must not have created it
		if _, err := s.b.ListOffsets(ctx, []string{topic}, ""); sdk.CodeOf(err) != sdk.CodeTopicNotExist {
			t.Fatalf("ListOffsets of a missing topic: %v (code %d); want %d", err, sdk.CodeOf(err), sdk.CodeTopicNotExist)
		}
	}
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}
