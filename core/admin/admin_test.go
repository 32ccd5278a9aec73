package admin

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mqgate/mqgate/core/consume"
	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/internal/brokertest"
	"github.com/mqgate/mqgate/sdk"
)

// fill makes topic with two qids and writes n messages to the first,
// key kI, value vI and a header n=I, and returns the first qid's name.
func fill(t *testing.T, b sdk.Backend, topic string, n int) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.EnsureTopics(ctx, []sdk.TopicSpec{{Name: topic, Partitions: 2}}); err != nil {
		t.Fatal(err)
	}
	rs := make([]sdk.Record, n)
	for i := range rs {
		rs[i] = sdk.Record{Topic: topic, Partition: 0, Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "v%d", i),
			Headers: []sdk.Header{{Key: "n", Value: fmt.Appendf(nil, "%d", i)}}}
	}
	res, err := b.Produce(ctx, rs)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil || r.Qid != res[0].Qid {
			t.Fatalf("produce results %+v", res)
		}
	}
	return res[0].Qid
}

func service(b sdk.Backend) *Service {
	return New(Options{Cluster: func(string) (string, sdk.Backend, error) { return "local", b, nil }})
}

func TestTopicListsItsQidsAndRanges(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		qid := fill(t, b, "described", 5)
		top, err := service(b).Topic(context.Background(), "described")
		if err != nil {
			t.Fatal(err)
		}
		if top.Name != "described" || top.Cluster != "local" || len(top.Qids) < 2 || top.Messages != 5 {
			t.Fatalf("Topic = %+v; want local, at least 2 qids, 5 messages", top)
		}
		for _, q := range top.Qids {
			want := int64(0)
			if q.Qid == qid {
				want = 5
			}
			if q.End-q.Start != want {
				t.Errorf("qid %s holds %d..%d, want %d messages", q.Qid, q.Start, q.End, want)
			}
		}
		if _, err := service(b).Topic(context.Background(), "no-such-topic"); sdk.CodeOf(err) != sdk.CodeTopicNotExist {
			t.Errorf("Topic of a missing topic = %v, want code 14", err)
		}
	})
}

func TestBrowsePagesThroughAQid(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		qid := fill(t, b, "browsed", 25)
		s := service(b)
		ctx := context.Background()
		var got []string
		next := int64(0)
		for pages := 0; ; pages++ {
			p, err := s.Browse(ctx, "browsed", qid, next, 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Records) > 10 || pages > 5 {
				t.Fatalf("page %d holds %d records", pages, len(p.Records))
			}
			for _, r := range p.Records {
				got = append(got, string(r.Value))
				if string(r.Key) != "k"+strings.TrimPrefix(string(r.Value), "v") || len(r.Headers) != 1 || r.Qid != qid {
					t.Fatalf("record %+v: key, header or qid wrong", r)
				}
			}
			if len(p.Records) == 0 {
				if p.Next != p.Qid.End {
					t.Errorf("an empty page's next is %d, want the end %d", p.Next, p.Qid.End)
				}
				break
			}
			next = p.Next
		}
		if len(got) != 25 || got[0] != "v0" || got[24] != "v24" {
			t.Fatalf("browsed %d messages %v, want v0..v24 once each", len(got), got)
		}

		// Browsing moved no group: a page read again is the same.
		p, err := s.Browse(ctx, "browsed", qid, 20, 0)
		if err != nil || len(p.Records) != 5 || string(p.Records[0].Value) != "v20" {
			t.Fatalf("Browse from 20 with the default limit = %d records, %v; want v20..v24", len(p.Records), err)
		}

		m, err := s.Message(ctx, "browsed", qid, 7)
		if err != nil || string(m.Value) != "v7" || m.Offset != 7 {
			t.Fatalf("Message at 7 = %+v, %v; want v7", m, err)
		}
	})
}

func TestBrowseRefusals(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		qid := fill(t, b, "refused", 3)
		s := service(b)
		ctx := context.Background()
		for _, tc := range []struct {
			name          string
			qid           string
			offset        int64
			limit         int
			code          sdk.Code
			wantInMessage string
		}{
			{"limit over the cap", qid, 0, MaxBrowse + 1, sdk.CodeIllegal, "limit: must be 1 to 100, got 101"},
			{"negative limit", qid, 0, -1, sdk.CodeIllegal, "limit:"},
			{"negative offset", qid, -1, 1, sdk.CodeIllegal, "offset: must be >= 0"},
			{"past the end", qid, 4, 1, sdk.CodeIllegal, "offset: 4 is past the end"},
			{"unknown qid", "nine", 0, 1, sdk.CodeIllegal, `qid: topic refused has no qid "nine"; its qids: `},
		} {
			_, err := s.Browse(ctx, "refused", tc.qid, tc.offset, tc.limit)
			if sdk.CodeOf(err) != tc.code || err == nil || !strings.Contains(err.Error(), tc.wantInMessage) {
				t.Errorf("%s: Browse = %v, want code %d naming %q", tc.name, err, tc.code, tc.wantInMessage)
			}
		}
		if _, err := s.Browse(ctx, "missing-topic", "0", 0, 1); sdk.CodeOf(err) != sdk.CodeTopicNotExist {
			t.Errorf("Browse of a missing topic = %v, want code 14", err)
		}
		// At the end: an empty page, as a consumer at the end gets.
		if p, err := s.Browse(ctx, "refused", qid, 3, 1); err != nil || len(p.Records) != 0 || p.Next != 3 {
			t.Errorf("Browse at the end = %+v, %v; want an empty page, next 3", p, err)
		}
		if _, err := s.Message(ctx, "refused", qid, 3); sdk.CodeOf(err) != sdk.CodeNotFound || !strings.Contains(err.Error(), "not written yet") {
			t.Errorf("Message at the end = %v, want code 19, not written yet", err)
		}
	})
}

// A page stops before the message that would take it past MaxPageBytes,
// and the next page starts there.
func TestBrowsePageIsBoundedInBytes(t *testing.T) {
	b := brokertest.Kinds[0].Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.EnsureTopics(ctx, []sdk.TopicSpec{{Name: "large", Partitions: 1}}); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 900<<10) // five of these pass 4 MiB
	var rs []sdk.Record
	for range 6 {
		rs = append(rs, sdk.Record{Topic: "large", Partition: 0, Value: []byte(big)})
	}
	res, err := b.Produce(ctx, rs)
	if err != nil {
		t.Fatal(err)
	}
	p, err := service(b).Browse(ctx, "large", res[0].Qid, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Records) != 4 || p.Next != 4 {
		t.Fatalf("a page of 900 KiB values holds %d, next %d; want 4 (3.5 MiB), next 4", len(p.Records), p.Next)
	}
}

// Redrive sends dead letters back to the topics their headers name, with
// the headers they had and without the ones dead-lettering added; one
// that is not a dead letter, or not there, fails alone.
func TestRedriveSendsDeadLettersBack(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := b.EnsureTopics(ctx, []sdk.TopicSpec{{Name: "g-dlq", Partitions: 1}, {Name: "origin", Partitions: 1}}); err != nil {
			t.Fatal(err)
		}
		dead := func(value, origin string) sdk.Record {
			r := sdk.Record{Topic: "g-dlq", Partition: 0, Key: []byte("k"), Value: []byte(value),
				Headers: []sdk.Header{{Key: "trace", Value: []byte("t-" + value)}, {Key: consume.HeaderAttempts, Value: []byte("3")}}}
			if origin != "" {
				r.Headers = append(r.Headers, sdk.Header{Key: consume.HeaderOriginTopic, Value: []byte(origin)},
					sdk.Header{Key: consume.HeaderLastError, Value: []byte("failed by the client")})
			}
			return r
		}
		res, err := b.Produce(ctx, []sdk.Record{dead("a", "origin"), dead("not-dead", ""), dead("b", "origin")})
		if err != nil {
			t.Fatal(err)
		}
		qid := res[0].Qid
		send := func(ctx context.Context, topic string, msgs []produce.Message) ([]sdk.ProduceResult, error) {
			rs := make([]sdk.Record, len(msgs))
			for i, m := range msgs {
				rs[i] = sdk.Record{Topic: topic, Partition: 0, Key: m.Key, Value: m.Value, Tags: m.Tags, Headers: m.Headers}
			}
			return b.Produce(ctx, rs)
		}
		s := service(b)
		done, err := s.Redrive(ctx, "g-dlq", qid, []int64{0, 1, 2, 9}, send)
		if err != nil {
			t.Fatal(err)
		}
		if len(done) != 4 || done[0].Result.Err != nil || done[2].Result.Err != nil || done[0].Topic != "origin" {
			t.Fatalf("Redrive = %+v; want 0 and 2 sent back to origin", done)
		}
		if c := sdk.CodeOf(done[1].Result.Err); c != sdk.CodeIllegal || !strings.Contains(done[1].Result.Err.Error(), "not a dead letter") {
			t.Errorf("offset 1 (no origin header): %v, want code 11, not a dead letter", done[1].Result.Err)
		}
		if c := sdk.CodeOf(done[3].Result.Err); c != sdk.CodeNotFound {
			t.Errorf("offset 9 (not written): %v, want code 19", done[3].Result.Err)
		}
		p, err := s.Browse(ctx, "origin", done[0].Result.Qid, 0, 10)
		if err != nil || len(p.Records) != 2 {
			t.Fatalf("origin holds %+v, %v; want the 2 redriven", p.Records, err)
		}
		for i, want := range []string{"a", "b"} {
			r := p.Records[i]
			if string(r.Value) != want || string(r.Key) != "k" || len(r.Headers) != 1 || r.Headers[0].Key != "trace" || string(r.Headers[0].Value) != "t-"+want {
				t.Errorf("redriven %d = %+v; want value %s, key k, only the trace header", i, r, want)
			}
		}
		many := make([]int64, MaxRedrive+1)
		if _, err := s.Redrive(ctx, "g-dlq", qid, many, send); sdk.CodeOf(err) != sdk.CodeTooLarge {
			t.Errorf("Redrive of %d = %v, want code 16", len(many), err)
		}
	})
}

func TestCreateTopic(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		s := New(Options{Cluster: func(string) (string, sdk.Backend, error) { return "local", b, nil }, Reserved: func(topic string) error {
			if strings.HasPrefix(topic, "__mqgate") {
				return sdk.Errorf(sdk.CodeNotAllowed, "topic %q is reserved", topic)
			}
			return nil
		}})
		ctx := context.Background()
		top, created, err := s.CreateTopic(ctx, "made", 3, nil)
		if err != nil || !created || len(top.Qids) != 3 || top.Messages != 0 {
			t.Fatalf("CreateTopic = %+v, %v, %v; want 3 new qids", top, created, err)
		}
		top, created, err = s.CreateTopic(ctx, "made", 5, nil)
		if err != nil || created || len(top.Qids) != 3 {
			t.Fatalf("CreateTopic of an existing topic = %+v, %v, %v; want it as it was", top, created, err)
		}
		if _, _, err := s.CreateTopic(ctx, "__mqgate-x", 1, nil); sdk.CodeOf(err) != sdk.CodeNotAllowed {
			t.Errorf("CreateTopic of a reserved name = %v, want code 13", err)
		}
		// Nor are the gateway's own topics described or browsed.
		if _, err := s.Topic(ctx, "__mqgate-x"); sdk.CodeOf(err) != sdk.CodeNotAllowed {
			t.Errorf("Topic of a reserved name = %v, want code 13", err)
		}
		if _, err := s.Browse(ctx, "__mqgate-x", "0", 0, 1); sdk.CodeOf(err) != sdk.CodeNotAllowed {
			t.Errorf("Browse of a reserved name = %v, want code 13", err)
		}
		if _, _, err := s.CreateTopic(ctx, "big", MaxPartitions+1, nil); sdk.CodeOf(err) != sdk.CodeIllegal || !strings.Contains(err.Error(), "partitions: must be 1 to 1000") {
			t.Errorf("CreateTopic of %d partitions = %v, want code 11", MaxPartitions+1, err)
		}
		if _, err := s.Topic(ctx, "big"); sdk.CodeOf(err) != sdk.CodeTopicNotExist {
			t.Errorf("a refused create made the topic: %v", err)
		}
	})
}
