package kafka

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mqgate/mqgate/sdk"
)

// Past max_topics the embedded broker creates no topic, by producing or by
// EnsureTopics: the refusal is code 14 naming max_topics and its value,
// while the topics it has keep taking records, also after a restart.
func TestMaxTopics(t *testing.T) {
	dir := t.TempDir()
	const extra = `, "max_topics": 3, "default_partitions": 1`
	b := newEmbedded(t, dir, extra)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	produce := func(b *Backend, topics ...string) []error {
		t.Helper()
		records := make([]sdk.Record, len(topics))
		for i, topic := range topics {
			records[i] = sdk.Record{Topic: topic, Partition: sdk.PartitionRandom, Value: []byte("v")}
		}
		res, err := b.Produce(ctx, records)
		if err != nil {
			t.Fatalf("Produce(%v): %v", topics, err)
		}
		errs := make([]error, len(res))
		for i := range res {
			errs[i] = res[i].Err
		}
		return errs
	}
	refused := func(err error) bool {
		return sdk.CodeOf(err) == sdk.CodeTopicNotExist && strings.Contains(err.Error(), "max_topics (Kafka plugin config) is 3")
	}

	for i, err := range produce(b, "t1", "t2", "t3") {
		if err != nil {
			t.Fatalf("producing to new topic %d of 3: %v", i+1, err)
		}
	}
	for _, tc := range []struct {
		name   string
		topics []string
		// ok[i] says whether topics[i] is taken, else refused.
		ok []bool
	}{
		{"a fourth topic", []string{"t4"}, []bool{false}},
		{"existing topics", []string{"t1", "t2", "t3"}, []bool{true, true, true}},
		{"old and new in one batch", []string{"t2", "t5", "t3"}, []bool{true, false, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i, err := range produce(b, tc.topics...) {
				if tc.ok[i] && err != nil {
					t.Errorf("producing to %s: %v; want it taken", tc.topics[i], err)
				}
				if !tc.ok[i] && !refused(err) {
					t.Errorf("producing to %s: %v (code %d); want code 14 naming max_topics and 3", tc.topics[i], err, sdk.CodeOf(err))
				}
			}
		})
	}
	if err := b.EnsureTopics(ctx, []sdk.TopicSpec{{Name: "t1"}, {Name: "ensured"}}); !refused(err) {
		t.Errorf("EnsureTopics past max_topics: %v; want code 14 naming max_topics", err)
	}

	// A restarted plugin knows no topic yet: it counts those on disk.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = newEmbedded(t, dir, extra)
	defer b.Close()
	if errs := produce(b, "t1", "t6"); errs[0] != nil || !refused(errs[1]) {
		t.Errorf("after a restart, producing to t1 and t6: %v; want t1 taken and t6 refused naming max_topics", errs)
	}
	if err := b.EnsureTopics(ctx, []sdk.TopicSpec{{Name: "t3"}}); err != nil {
		t.Errorf("EnsureTopics of an existing topic at max_topics: %v", err)
	}
}
