package produce

import (
	"fmt"
	"math"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mqgate/mqgate/sdk"
)

// A keyed message must land on the partition any Kafka client's default
// partitioner picks, so mixing mqgate and direct producers keeps per-key
// order. franz-go's sticky key partitioner is Kafka's murmur2 placement.
func TestPlacementMatchesKafkaDefaultPartitioner(t *testing.T) {
	kafka := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	for _, n := range []int{1, 3, 4, 12, 64} {
		for i := range 500 {
			key := []byte(fmt.Sprintf("key-%d", i))
			part, hash := Placement(&Message{Key: key, Partition: sdk.PartitionHash})
			if part != sdk.PartitionHash {
				t.Fatalf("key %q: partition choice %d, want hash", key, part)
			}
			want := kafka.Partition(&kgo.Record{Key: key}, n)
			if got := int(hash % uint64(n)); got != want {
				t.Fatalf("key %q over %d partitions: got %d, Kafka's partitioner picks %d", key, n, got, want)
			}
		}
	}
}

func TestPlacement(t *testing.T) {
	id := func(v int64) *int64 { return &v }
	for _, tc := range []struct {
		name     string
		msg      Message
		wantPart int32
		wantHash uint64
	}{
		{"explicit partition wins over key", Message{Key: []byte("k"), Partition: 3}, 3, 0},
		{"explicit partition zero", Message{Partition: 0}, 0, 0},
		{"random", Message{Key: []byte("k"), Partition: sdk.PartitionRandom}, sdk.PartitionRandom, 0},
		{"hash id wins over key", Message{Key: []byte("k"), HashID: id(42), Partition: sdk.PartitionHash}, sdk.PartitionHash, 42},
		{"negative hash id uses its absolute value", Message{HashID: id(-42), Partition: sdk.PartitionHash}, sdk.PartitionHash, 42},
		{"min int64 hash id does not overflow", Message{HashID: id(math.MinInt64), Partition: sdk.PartitionHash}, sdk.PartitionHash, 1 << 63},
		{"no key and no hash id is random", Message{Partition: sdk.PartitionHash}, sdk.PartitionRandom, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			part, hash := Placement(&tc.msg)
			if part != tc.wantPart || hash != tc.wantHash {
				t.Fatalf("Placement = (%d, %d), want (%d, %d)", part, hash, tc.wantPart, tc.wantHash)
			}
		})
	}
}

func TestRecordsKeepsContentAndOrder(t *testing.T) {
	msgs := []Message{
		{Key: []byte("a"), Value: []byte("1"), Tags: "t1", Headers: []sdk.Header{{Key: "h", Value: []byte("v")}}, Partition: sdk.PartitionHash},
		{Value: []byte{0, 255}, Partition: 2},
	}
	recs := Records("orders", msgs)
	if len(recs) != 2 {
		t.Fatalf("got %d records", len(recs))
	}
	if r := recs[0]; r.Topic != "orders" || string(r.Key) != "a" || string(r.Value) != "1" || r.Tags != "t1" || len(r.Headers) != 1 || r.Partition != sdk.PartitionHash {
		t.Fatalf("record 0 = %+v", r)
	}
	if r := recs[1]; r.Key != nil || r.Partition != 2 || string(r.Value) != "\x00\xff" {
		t.Fatalf("record 1 = %+v", r)
	}
}
