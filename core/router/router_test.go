package router

import (
	"context"
	"testing"

	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/sdk"
)

// recordingBackend remembers what was produced to it.
type recordingBackend struct {
	sdk.Backend // only Produce is called
	got         []sdk.Record
}

func (b *recordingBackend) Produce(_ context.Context, rs []sdk.Record) ([]sdk.ProduceResult, error) {
	b.got = append(b.got, rs...)
	return make([]sdk.ProduceResult, len(rs)), nil
}

func TestRouting(t *testing.T) {
	local, other := &recordingBackend{}, &recordingBackend{}
	backends := map[string]sdk.Backend{"local": local, "other": other}
	r, err := New(backends, map[string]string{"payments": "other"}, "local", produce.NewProducer(backends, produce.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		topic string
		want  *recordingBackend
	}{
		{"payments", other}, // explicit entry
		{"orders", local},   // default cluster
	} {
		before := len(tc.want.got)
		if _, err := r.Produce(context.Background(), tc.topic, []produce.Message{{Value: []byte("v"), Partition: sdk.PartitionHash}}); err != nil {
			t.Fatalf("%s: %v", tc.topic, err)
		}
		if len(tc.want.got) != before+1 || tc.want.got[before].Topic != tc.topic {
			t.Fatalf("%s did not reach its cluster", tc.topic)
		}
	}
	if len(local.got)+len(other.got) != 2 {
		t.Fatalf("a message reached a second cluster: local %d, other %d", len(local.got), len(other.got))
	}
}

func TestRoutingRefusals(t *testing.T) {
	b := &recordingBackend{}
	backends := map[string]sdk.Backend{"a": b}
	noDefault, err := New(backends, map[string]string{"t1": "a"}, "", produce.NewProducer(backends, produce.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	msg := []produce.Message{{Value: []byte("v")}}
	if _, err := noDefault.Produce(context.Background(), "t2", msg); sdk.CodeOf(err) != sdk.CodeNotAllowed {
		t.Fatalf("a topic with no route and no default cluster: %v, want code 13", err)
	}
	if _, err := noDefault.Produce(context.Background(), "bad topic", msg); sdk.CodeOf(err) != sdk.CodeIllegal {
		t.Fatalf("an illegal topic name: %v, want code 11", err)
	}
	if len(b.got) != 0 {
		t.Fatalf("refused requests reached the backend: %+v", b.got)
	}
	if _, err := New(backends, map[string]string{"t": "missing"}, "a", produce.NewProducer(backends, produce.Options{})); err == nil {
		t.Fatal("a route to a cluster without a backend was accepted")
	}
}
