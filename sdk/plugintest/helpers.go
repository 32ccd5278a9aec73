package plugintest

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mqgate/mqgate/sdk"
)

// ensure creates topic with the given partitions, failing t on error.
func (s *suite) ensure(t *testing.T, topic string, partitions int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := s.b.EnsureTopics(ctx, []sdk.TopicSpec{{Name: topic, Partitions: partitions}}); err != nil {
		t.Fatalf("EnsureTopics(%s, %d): %v", topic, partitions, err)
	}
}

// produceOK produces records and fails t unless every record succeeded.
func (s *suite) produceOK(t *testing.T, records []sdk.Record) []sdk.ProduceResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	res, err := s.b.Produce(ctx, records)
	if err != nil {
		t.Fatalf("Produce of %d records: %v", len(records), err)
	}
	if len(res) != len(records) {
		t.Fatalf("Produce gave %d results for %d records", len(res), len(records))
	}
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("record %d: %v (code %d)", i, r.Err, sdk.CodeOf(r.Err))
		}
		if r.Qid == "" || r.Offset < 0 {
			t.Fatalf("record %d: result has qid %q offset %d", i, r.Qid, r.Offset)
		}
	}
	return res
}

// consume starts a consumer that is closed when t ends.
func (s *suite) consume(t *testing.T, sub sdk.Subscription) sdk.Consumer {
	t.Helper()
	// The consumer lives until Close, so its context never ends.
	c, err := s.b.Consume(context.Background(), sub)
	if err != nil {
		t.Fatalf("Consume(%+v): %v", sub, err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("closing consumer of %s: %v", sub.Group, err)
		}
	})
	return c
}

// pollRecords polls until n records have arrived, returning them and every
// assignment event seen on the way, in order. It fails t when the deadline
// passes first.
func pollRecords(t *testing.T, c sdk.Consumer, n int) ([]sdk.Record, []sdk.ConsumeEvent) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	var recs []sdk.Record
	var events []sdk.ConsumeEvent
	for len(recs) < n {
		ev, err := c.Poll(ctx, n-len(recs))
		if err != nil {
			t.Fatalf("Poll after %d of %d records: %v", len(recs), n, err)
		}
		if len(ev.Records) > n-len(recs) {
			t.Fatalf("Poll(max %d) returned %d records", n-len(recs), len(ev.Records))
		}
		if len(ev.Records) == 0 {
			events = append(events, ev)
			continue
		}
		// A marker event where the records came, for assignedBefore.
		events = append(events, sdk.ConsumeEvent{Records: ev.Records[:1]})
		recs = append(recs, ev.Records...)
	}
	return recs, events
}

// assignedBefore reports whether an Assigned event naming topic and qid
// came before the first records of that qid.
func assignedBefore(events []sdk.ConsumeEvent, topic, qid string) bool {
	for _, ev := range events {
		for _, o := range ev.Assigned {
			if o.Topic == topic && o.Qid == qid {
				return true
			}
		}
		for _, r := range ev.Records {
			if r.Topic == topic && r.Qid == qid {
				return false
			}
		}
	}
	return false
}

// checkContent compares what a consumer or Fetch returned with what was
// produced: key (nil stays nil), value, headers in order (or as a set
// sorted by key, where the backend declared HeadersAsProperties and the
// headers have unique text keys), tags.
func (s *suite) checkContent(t *testing.T, what string, got, want sdk.Record) {
	t.Helper()
	switch {
	case want.Key == nil && got.Key != nil:
		t.Errorf("%s: produced without a key, came back with key %q", what, got.Key)
	case want.Key != nil && !bytes.Equal(got.Key, want.Key):
		t.Errorf("%s: key %q; want %q", what, got.Key, want.Key)
	}
	// An empty value may come back nil; its length is what matters.
	if !bytes.Equal(got.Value, want.Value) {
		t.Errorf("%s: value %q; want %q", what, got.Value, want.Value)
	}
	wantHeaders := want.Headers
	if s.headersSorted && uniqueTextKeys(wantHeaders) {
		wantHeaders = slices.SortedFunc(slices.Values(wantHeaders), func(a, b sdk.Header) int { return strings.Compare(a.Key, b.Key) })
	}
	if !slices.EqualFunc(got.Headers, wantHeaders, func(a, b sdk.Header) bool {
		return a.Key == b.Key && bytes.Equal(a.Value, b.Value)
	}) {
		t.Errorf("%s: headers %s; want %s", what, formatHeaders(got.Headers), formatHeaders(wantHeaders))
	}
	if got.Tags != want.Tags {
		t.Errorf("%s: tags %q; want %q", what, got.Tags, want.Tags)
	}
}

// uniqueTextKeys reports whether the headers could be a property map:
// unique keys, printable UTF-8 values.
func uniqueTextKeys(hs []sdk.Header) bool {
	seen := map[string]bool{}
	for _, h := range hs {
		if seen[h.Key] || !utf8.Valid(h.Value) || bytes.ContainsFunc(h.Value, func(r rune) bool { return r < ' ' }) {
			return false
		}
		seen[h.Key] = true
	}
	return true
}

// formatHeaders prints headers compactly, values quoted.
func formatHeaders(hs []sdk.Header) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, h := range hs {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%q", h.Key, h.Value)
	}
	b.WriteByte(']')
	return b.String()
}

// listOffsets calls ListOffsets, failing t on error.
func (s *suite) listOffsets(t *testing.T, topics []string, group string) []sdk.QidOffsets {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	offs, err := s.b.ListOffsets(ctx, topics, group)
	if err != nil {
		t.Fatalf("ListOffsets(%v, %q): %v", topics, group, err)
	}
	return offs
}

// offsetsOf returns the ListOffsets entry of one qid.
func (s *suite) offsetsOf(t *testing.T, topic, qid, group string) sdk.QidOffsets {
	t.Helper()
	for _, o := range s.listOffsets(t, []string{topic}, group) {
		if o.Topic == topic && o.Qid == qid {
			return o
		}
	}
	t.Fatalf("ListOffsets(%s, %q) has no qid %s", topic, group, qid)
	return sdk.QidOffsets{}
}

// fetch reads one position, failing t if the call (not the position)
// fails.
func (s *suite) fetch(t *testing.T, pos sdk.FetchPosition, maxRecords int32, maxWait time.Duration) sdk.FetchResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	res, err := s.b.Fetch(ctx, sdk.FetchRequest{Positions: []sdk.FetchPosition{pos}, MaxRecords: maxRecords, MaxWait: maxWait})
	if err != nil {
		t.Fatalf("Fetch(%+v): %v", pos, err)
	}
	if len(res) != 1 {
		t.Fatalf("Fetch of 1 position gave %d results", len(res))
	}
	if res[0].Topic != pos.Topic || res[0].Qid != pos.Qid {
		t.Fatalf("Fetch of %s/%s answered for %s/%s", pos.Topic, pos.Qid, res[0].Topic, res[0].Qid)
	}
	return res[0]
}

// fetchAll fetches one qid from offset until end, following NextOffset, and
// checks each answer: no record before the asked offset, at most
// maxRecords records (when positive), NextOffset past the last record.
func (s *suite) fetchAll(t *testing.T, topic, qid string, from, end int64, maxRecords int32) []sdk.Record {
	t.Helper()
	deadline := time.Now().Add(opTimeout)
	var out []sdk.Record
	for at := from; at < end; {
		if time.Now().After(deadline) {
			t.Fatalf("fetching %s/%s: stuck at offset %d of [%d, %d)", topic, qid, at, from, end)
		}
		r := s.fetch(t, sdk.FetchPosition{Topic: topic, Qid: qid, Offset: at}, maxRecords, time.Second)
		if r.Err != nil {
			t.Fatalf("fetching %s/%s at %d: %v", topic, qid, at, r.Err)
		}
		if maxRecords > 0 && len(r.Records) > int(maxRecords) {
			t.Fatalf("fetch with MaxRecords %d returned %d records", maxRecords, len(r.Records))
		}
		if len(r.Records) > 0 {
			if r.Records[0].Offset < at {
				t.Fatalf("fetch at offset %d returned a first record at %d", at, r.Records[0].Offset)
			}
			// Past last+1 only when the log has gaps (compaction,
			// transaction markers); the suite's topics have none, but
			// the contract allows it.
			if last := r.Records[len(r.Records)-1].Offset; r.NextOffset <= last {
				t.Fatalf("fetch at %d ending with offset %d gave NextOffset %d; want %d", at, last, r.NextOffset, last+1)
			}
		}
		if r.NextOffset < at {
			t.Fatalf("fetch at %d gave NextOffset %d, behind the request", at, r.NextOffset)
		}
		out = append(out, r.Records...)
		at = r.NextOffset
	}
	return out
}
