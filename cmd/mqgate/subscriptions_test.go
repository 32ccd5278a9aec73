package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/mqgate/mqgate/frontends/thrift/gen-go/consumer"
)

// consumerClient connects the generated ConsumerService client to g, with
// DDMQ's SDKs' framing and protocol.
func (g *gateway) consumerClient() *consumer.ConsumerServiceClient {
	g.t.Helper()
	trans := thrift.NewTFramedTransportConf(thrift.NewTSocketConf(g.consumerAddr, nil), nil)
	if err := trans.Open(); err != nil {
		g.t.Fatal(err)
	}
	g.t.Cleanup(func() { _ = trans.Close() })
	return consumer.NewConsumerServiceClientFactory(trans, thrift.NewTCompactProtocolFactoryConf(nil))
}

// ddmqPullLoop runs DDMQ's Go SDK's pull loop (carrera-sdk/consumer/go
// carrera_consumer.go pull): no topic in the request, each pull carrying
// the result of the previous batch with the response's own context, until
// done says it has seen enough. It returns the values seen, by topic.
func ddmqPullLoop(t *testing.T, client *consumer.ConsumerServiceClient, group string, done func(map[string][]string) bool) map[string][]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	seen := map[string][]string{}
	batch, linger := int32(8), int32(200)
	req := &consumer.PullRequest{GroupId: group, MaxBatchSize: &batch, MaxLingerTime: &linger}
	for !done(seen) {
		if ctx.Err() != nil {
			t.Fatalf("pulled %v, not enough", seen)
		}
		resp, err := client.Pull(ctx, req)
		if err != nil {
			t.Fatalf("pull without a topic: %v", err)
		}
		if len(resp.Messages) == 0 {
			req.Result_ = nil
			continue
		}
		if resp.Context == nil || resp.Context.Topic == "" || resp.Context.Qid == "" {
			t.Fatalf("a batch without its context: %+v", resp.Context)
		}
		result := &consumer.ConsumeResult_{Context: resp.Context, SuccessOffsets: []int64{}, FailOffsets: []int64{}}
		for _, m := range resp.Messages {
			seen[resp.Context.Topic] = append(seen[resp.Context.Topic], string(m.Value))
			result.SuccessOffsets = append(result.SuccessOffsets, m.Offset)
		}
		req.Result_ = result
	}
	if req.Result_ != nil {
		if _, err := client.Submit(ctx, req.Result_); err != nil {
			t.Fatalf("submit: %v", err)
		}
	}
	return seen
}

// produceN produces n messages to topic, valued topic-0, topic-1, ...
func produceN(g *gateway, topic string, n int) { producePrefixed(g, topic, topic, n) }

// producePrefixed produces n messages to topic, valued prefix-0, prefix-1, ...
func producePrefixed(g *gateway, topic, prefix string, n int) {
	var msgs []string
	for i := range n {
		msgs = append(msgs, fmt.Sprintf(`{"key":"k%d","value":"%s-%d"}`, i, prefix, i))
	}
	g.produceOK(topic, `{"messages":[`+strings.Join(msgs, ",")+`]}`)
}

// A DDMQ consumer of a group subscribed to two topics in plugins.yaml
// pulls without a topic and receives both, acking each batch with its own
// context; getConsumeStats without a topic lists both, caught up. A group
// with no subscription is told how to add one.
func TestSubscribedGroupPullsWithoutTopic(t *testing.T) {
	forEachBroker(t, func(t *testing.T, kind brokerKind) {
		dir := t.TempDir()
		g := startGateway(t, writeConfig(t, dir, kind.local(t, dir), options{extra: "groups:\n  cg: {topics: [alpha, beta]}\n"}))
		produceN(g, "alpha", 20)
		produceN(g, "beta", 5)
		client := g.consumerClient()
		seen := ddmqPullLoop(t, client, "cg", func(s map[string][]string) bool { return len(s["alpha"])+len(s["beta"]) >= 25 })
		if len(seen["alpha"]) != 20 || len(seen["beta"]) != 5 {
			t.Fatalf("pulled %d of alpha and %d of beta; want 20 and 5 once each", len(seen["alpha"]), len(seen["beta"]))
		}

		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		waitFor(t, "stats without a topic to list both topics caught up", func() bool {
			stats, err := client.GetConsumeStats(ctx, &consumer.ConsumeStatsRequest{Group: "cg"})
			if err != nil || len(stats) != 2 || stats[0].Topic != "alpha" || stats[1].Topic != "beta" {
				return false
			}
			for _, st := range stats {
				for qid, o := range st.ConsumeOffsets {
					if o != st.ProduceOffsets[qid] {
						return false
					}
				}
			}
			return true
		})

		_, err := client.Pull(ctx, &consumer.PullRequest{GroupId: "nobody"})
		var pe *consumer.PullException
		if !errorsAs(err, &pe) || pe.Code != 11 || !strings.Contains(pe.Message, "PUT /v1/admin/groups/nobody/subscriptions/TOPIC") {
			t.Fatalf("pull without a topic by a group with no subscription: %v; want code 11 saying how to subscribe it", err)
		}
		// Stats of a group with no subscription and no session: none.
		if stats, err := client.GetConsumeStats(ctx, &consumer.ConsumeStatsRequest{Group: "nobody"}); err != nil || len(stats) != 0 {
			t.Fatalf("stats of a group with nothing: %+v, %v", stats, err)
		}
	})
}

func errorsAs(err error, pe **consumer.PullException) bool {
	e, ok := err.(*consumer.PullException)
	if ok {
		*pe = e
	}
	return ok
}

// DDMQ's LowLevelCarreraConsumer starts with an empty fetchOffset and the
// gateway hands it the group's queues at its committed offsets; it follows
// nextRequestOffset and commits with ack. After a gateway restart an
// empty fetchOffset resumes from the commit, not from the start. The
// cluster it names is DDMQ's, which the gateway does not have.
func TestLowLevelFetchAssignment(t *testing.T) {
	forEachBroker(t, func(t *testing.T, kind brokerKind) {
		dir := t.TempDir()
		s := writeConfig(t, dir, kind.local(t, dir), options{extra: "groups:\n  lg: {topics: [lowlevel]}\n"})
		g := startGateway(t, s)
		produceN(g, "lowlevel", 10)

		fetchAll := func(g *gateway, want int) (map[string]bool, map[string]map[string]int64) {
			t.Helper()
			client := g.consumerClient()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			batch, linger := int32(3), int32(100)
			req := &consumer.FetchRequest{ConsumerId: "pid@host#0", GroupId: "lg", Cluster: "ddmq-cluster",
				FetchOffset: map[string]map[string]int64{}, MaxBatchSize: &batch, MaxLingerTime: &linger}
			seen := map[string]bool{}
			for len(seen) < want {
				if ctx.Err() != nil {
					t.Fatalf("fetched %v, not enough", seen)
				}
				resp, err := client.Fetch(ctx, req)
				if err != nil || resp.GetCode() != 0 {
					t.Fatalf("fetch: %+v, %v", resp, err)
				}
				// As the SDK does: the next request's offsets are those
				// the answer names.
				req.FetchOffset = map[string]map[string]int64{}
				for _, q := range resp.Results {
					if q.NextRequestOffset == nil {
						t.Fatalf("qid %s answered without nextRequestOffset", q.Qid)
					}
					if req.FetchOffset[q.Topic] == nil {
						req.FetchOffset[q.Topic] = map[string]int64{}
					}
					req.FetchOffset[q.Topic][q.Qid] = *q.NextRequestOffset
					for _, m := range q.Messages {
						if seen[string(m.Value)] {
							t.Fatalf("%s fetched twice", m.Value)
						}
						seen[string(m.Value)] = true
					}
				}
			}
			ok, err := client.Ack(ctx, &consumer.AckResult_{ConsumerId: req.ConsumerId, GroupId: "lg", Cluster: "ddmq-cluster", Offsets: req.FetchOffset})
			if err != nil || !ok {
				t.Fatalf("ack: %v, %v", ok, err)
			}
			return seen, req.FetchOffset
		}
		if seen, _ := fetchAll(g, 10); len(seen) != 10 {
			t.Fatalf("fetched %d of 10", len(seen))
		}

		if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := <-g.exited; err != nil {
			t.Fatalf("gateway exited with %v after SIGTERM", err)
		}
		g.exited <- nil // for the cleanup
		g2 := startGateway(t, s)
		producePrefixed(g2, "lowlevel", "after", 3)
		seen, _ := fetchAll(g2, 3)
		for v := range seen {
			if !strings.HasPrefix(v, "after-") {
				t.Fatalf("after a restart fetched %q again; want only the new messages, from the committed offsets", v)
			}
		}
		if len(seen) != 3 {
			t.Fatalf("after a restart fetched %v; want only the 3 new messages, from the committed offsets", seen)
		}
	})
}

// A subscription added at run time through gateway A's admin route
// reaches gateway B on the same broker without a restart: B lists it and
// a pull without a topic on B serves it. Removing it through B reaches A.
func TestSubscriptionAddedAtRunTimeReachesOtherGateway(t *testing.T) {
	forEachBroker(t, func(t *testing.T, kind brokerKind) {
		broker := kind.external(t, "gamma")
		a := startGateway(t, writeConfig(t, t.TempDir(), broker, options{}))
		b := startGateway(t, writeConfig(t, t.TempDir(), broker, options{}))
		produceN(a, "gamma", 4)

		code, body := a.do("PUT", "/v1/admin/groups/rg/subscriptions/gamma", "", nil)
		if code != 201 || !strings.Contains(string(body), `"created":true`) {
			t.Fatalf("PUT subscription: %d %s; want 201", code, body)
		}
		if code, body := a.do("PUT", "/v1/admin/groups/rg/subscriptions/gamma", "", nil); code != 200 {
			t.Fatalf("PUT it again: %d %s; want 200", code, body)
		}
		if code, body := a.do("PUT", "/v1/admin/groups/rg/subscriptions/mqgate_x", "", nil); code != 403 {
			t.Fatalf("PUT a reserved topic: %d %s; want 403", code, body)
		}
		if !a.eventuallyLogged("subscription added") {
			t.Fatal("no audit line for the subscription")
		}
		type listed struct {
			Subscriptions []struct{ Topic, Source string } `json:"subscriptions"`
		}
		waitFor(t, "gateway B to list the subscription", func() bool {
			code, body := b.do("GET", "/v1/admin/groups/rg/subscriptions", "", nil)
			var l listed
			return code == 200 && json.Unmarshal(body, &l) == nil && len(l.Subscriptions) == 1 &&
				l.Subscriptions[0].Topic == "gamma" && l.Subscriptions[0].Source == "admin"
		})
		seen := ddmqPullLoop(t, b.consumerClient(), "rg", func(s map[string][]string) bool { return len(s["gamma"]) >= 4 })
		if len(seen["gamma"]) != 4 {
			t.Fatalf("gateway B pulled %v", seen)
		}

		if code, body := b.do("DELETE", "/v1/admin/groups/rg/subscriptions/gamma", "", nil); code != 200 || !strings.Contains(string(body), `"removed":true`) {
			t.Fatalf("DELETE: %d %s", code, body)
		}
		waitFor(t, "gateway A to see the subscription gone", func() bool {
			code, body := a.do("GET", "/v1/admin/groups/rg/subscriptions", "", nil)
			var l listed
			return code == 200 && json.Unmarshal(body, &l) == nil && len(l.Subscriptions) == 0
		})
	})
}
