package router

import (
	"context"
	"strings"
	"testing"

	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/core/topicname"
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
	r, err := New(backends, map[string]string{"payments": "other"}, "local", produce.NewProducer(backends, produce.Options{}), nil, nil)
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
	noDefault, err := New(backends, map[string]string{"t1": "a"}, "", produce.NewProducer(backends, produce.Options{}), nil, nil)
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
	if _, err := New(backends, map[string]string{"t": "missing"}, "a", produce.NewProducer(backends, produce.Options{}), nil, nil); err == nil {
		t.Fatal("a route to a cluster without a backend was accepted")
	}
}

// TestClientProduceRefusesGatewayNames pins that a client's produce can
// reach neither the delay tiers nor the cancel topic (a forged cancel, an
// injected tier record) and cannot carry the headers of a delivered delay
// message or a dead letter, sync or async; and that nothing refused
// reaches the broker.
func TestClientProduceRefusesGatewayNames(t *testing.T) {
	b := &recordingBackend{}
	backends := map[string]sdk.Backend{"a": b}
	r, err := New(backends, nil, "a", produce.NewProducer(backends, produce.Options{}),
		&topicname.Reserved{DelayPrefix: "acme_delay_"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	plain := []produce.Message{{Value: []byte("v"), Partition: sdk.PartitionHash}}
	withHeader := func(k string) []produce.Message {
		return []produce.Message{plain[0], {Value: []byte("v"), Partition: sdk.PartitionHash, Headers: []sdk.Header{{Key: k, Value: []byte("x")}}}}
	}
	for _, tc := range []struct {
		name     string
		topic    string
		msgs     []produce.Message
		wantCode sdk.Code
		wantMsg  string
	}{
		{"forged cancel", "acme_delay_cancel", plain, sdk.CodeNotAllowed, "delay.topic_prefix"},
		{"tier injection", "acme_delay_1s", plain, sdk.CodeNotAllowed, "delay.topic_prefix"},
		{"default delay prefix", "mqgate_delay_cancel", plain, sdk.CodeNotAllowed, `"mqgate_"`},
		{"fake delivered delay", "orders", withHeader("mqgate-delay-id"), sdk.CodeIllegal, `headers: "mqgate-delay-id" is reserved`},
		{"fake dead letter", "orders", withHeader("Mqgate-DLQ-Origin-Topic"), sdk.CodeIllegal, "is reserved"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.Produce(context.Background(), tc.topic, tc.msgs)
			if sdk.CodeOf(err) != tc.wantCode || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("Produce: %v; want code %d with %q", err, tc.wantCode, tc.wantMsg)
			}
			err = r.ProduceAsync(context.Background(), tc.topic, tc.msgs)
			if sdk.CodeOf(err) != tc.wantCode || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("ProduceAsync: %v; want code %d with %q", err, tc.wantCode, tc.wantMsg)
			}
		})
	}
	if len(b.got) != 0 {
		t.Fatalf("refused produces reached the broker: %+v", b.got)
	}
	// The gateway's own components route reserved topics: Cluster allows them.
	if _, _, err := r.Cluster("acme_delay_1s"); err != nil {
		t.Fatalf("Cluster refused a tier topic the delay service routes: %v", err)
	}
}

// With topics.auto_create: false a client produces only to the listed
// topics, sync or async, as DDMQ's white list allows; the gateway's own
// components still route any topic (a dead-letter topic, say).
func TestClientProduceOnlyToAllowedTopics(t *testing.T) {
	b := &recordingBackend{}
	backends := map[string]sdk.Backend{"a": b}
	r, err := New(backends, nil, "a", produce.NewProducer(backends, produce.Options{}), nil, NewAllowlist("orders", "audit"))
	if err != nil {
		t.Fatal(err)
	}
	msgs := []produce.Message{{Value: []byte("v"), Partition: sdk.PartitionHash}}
	for _, tc := range []struct {
		topic    string
		wantCode sdk.Code
	}{
		{"orders", sdk.CodeOK},
		{"audit", sdk.CodeOK},
		{"payments", sdk.CodeNotAllowed},
		{"orders.v2", sdk.CodeNotAllowed},
	} {
		t.Run(tc.topic, func(t *testing.T) {
			_, err := r.Produce(context.Background(), tc.topic, msgs)
			if sdk.CodeOf(err) != tc.wantCode {
				t.Fatalf("Produce: %v; want code %d", err, tc.wantCode)
			}
			if tc.wantCode == sdk.CodeOK {
				return
			}
			if !strings.Contains(err.Error(), "topics.auto_create") || !strings.Contains(err.Error(), tc.topic) {
				t.Errorf("Produce: %v; want the topic and topics.auto_create named", err)
			}
			if err := r.ProduceAsync(context.Background(), tc.topic, msgs); sdk.CodeOf(err) != tc.wantCode {
				t.Errorf("ProduceAsync: %v; want code %d", err, tc.wantCode)
			}
			if err := r.Permit(tc.topic); sdk.CodeOf(err) != tc.wantCode {
				t.Errorf("Permit: %v; want code %d", err, tc.wantCode)
			}
		})
	}
	for _, got := range b.got {
		if got.Topic != "orders" && got.Topic != "audit" {
			t.Errorf("a refused topic reached the broker: %+v", got)
		}
	}
	if _, _, err := r.Cluster("orders-dlq"); err != nil {
		t.Errorf("Cluster refused a topic the gateway itself writes: %v", err)
	}
	var none *Allowlist
	if err := none.Permit("anything"); err != nil {
		t.Errorf("a nil Allowlist refused a topic: %v", err)
	}
}
