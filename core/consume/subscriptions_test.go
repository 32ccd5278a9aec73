package consume_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mqgate/mqgate/core/consume"
	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/internal/brokertest"
	"github.com/mqgate/mqgate/sdk"
)

// newSubscriptions starts a gateway's store on b, as serve does.
func newSubscriptions(t *testing.T, b sdk.Backend, static map[string][]string, maxTopics, maxGroups int) *consume.Subscriptions {
	t.Helper()
	p := produce.NewProducer(map[string]sdk.Backend{"local": b}, produce.Options{Logger: slog.New(slog.DiscardHandler)})
	s := consume.NewSubscriptions(consume.SubscriptionOptions{
		Backend: b, Cluster: "local", Send: p.SendRecords, Static: static,
		MaxTopicsPerGroup: maxTopics, MaxGroups: maxGroups, MaxRecordBytes: 4096,
		DeadLetter: func(g string) string { return g + "-dlq" },
		Logger:     slog.New(slog.DiscardHandler),
	})
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func topicsOf(t *testing.T, s *consume.Subscriptions, group string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	subs, err := s.Topics(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, sub := range subs {
		out = append(out, sub.Topic+":"+sub.Source)
	}
	return strings.Join(out, ",")
}

// The store keeps a group's topics in the broker: a change made through
// one gateway reaches another without a restart, a gateway started later
// reads every change made before, the file's topics cannot be removed at
// run time, and the bounds refuse with the key's name.
func TestSubscriptionStore(t *testing.T) {
	t.Parallel()
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		static := map[string][]string{"cg": {"fixed"}}
		a := newSubscriptions(t, b, static, 3, 2)
		other := newSubscriptions(t, b, static, 3, 2)

		if got := topicsOf(t, a, "cg"); got != "fixed:config" {
			t.Fatalf("before any change: %s; want the file's topic", got)
		}
		sub, created, err := a.Subscribe(ctx, "cg", "orders", "alice")
		if err != nil || !created || sub.Source != consume.SourceAdmin || sub.AddedBy != "alice" || sub.AddedAtMs == 0 {
			t.Fatalf("Subscribe = %+v, %v, %v", sub, created, err)
		}
		if _, created, err := a.Subscribe(ctx, "cg", "orders", "bob"); err != nil || created {
			t.Fatalf("Subscribe again = %v, %v; want not created", created, err)
		}
		if _, created, err := a.Subscribe(ctx, "cg", "fixed", "bob"); err != nil || created {
			t.Fatalf("Subscribe to a file topic = %v, %v; want not created", created, err)
		}
		waitTrue(t, "the other gateway to see orders", func() bool { return topicsOf(t, other, "cg") == "fixed:config,orders:admin" })

		for _, tc := range []struct {
			name        string
			do          func() error
			code        sdk.Code
			wantInError string
		}{
			{"bad group", func() error { _, _, err := a.Subscribe(ctx, "a b", "t", ""); return err }, sdk.CodeIllegal, "' '"},
			{"bad topic", func() error { _, _, err := a.Subscribe(ctx, "cg", "..", ""); return err }, sdk.CodeIllegal, "not a valid"},
			{"reserved topic", func() error { _, _, err := a.Subscribe(ctx, "cg", consume.SubscriptionsTopic, ""); return err }, sdk.CodeNotAllowed, "reserved"},
			{"reserved group", func() error { _, _, err := a.Subscribe(ctx, "mqgate_x", "t", ""); return err }, sdk.CodeNotAllowed, "reserved"},
			{"own dead letters", func() error { _, _, err := a.Subscribe(ctx, "cg", "cg-dlq", ""); return err }, sdk.CodeNotAllowed, "dead-letter"},
			{"remove a file topic", func() error { _, err := a.Unsubscribe(ctx, "cg", "fixed", ""); return err }, sdk.CodeIllegal, "groups.cg.topics"},
		} {
			if err := tc.do(); sdk.CodeOf(err) != tc.code || !strings.Contains(err.Error(), tc.wantInError) {
				t.Errorf("%s: %v; want code %d naming %q", tc.name, err, tc.code, tc.wantInError)
			}
		}

		if _, _, err := other.Subscribe(ctx, "cg", "refunds", ""); err != nil {
			t.Fatal(err)
		}
		_, _, err = a.Subscribe(ctx, "cg", "audit", "")
		if sdk.CodeOf(err) != sdk.CodeRateLimited || !strings.Contains(err.Error(), "subscriptions.max_topics_per_group") {
			t.Fatalf("a fourth topic: %v; want code 15 naming subscriptions.max_topics_per_group", err)
		}
		if _, _, err := a.Subscribe(ctx, "second", "t", ""); err != nil {
			t.Fatal(err)
		}
		_, _, err = a.Subscribe(ctx, "third", "t", "")
		if sdk.CodeOf(err) != sdk.CodeRateLimited || !strings.Contains(err.Error(), "subscriptions.max_groups") {
			t.Fatalf("a third group: %v; want code 15 naming subscriptions.max_groups", err)
		}

		if removed, err := other.Unsubscribe(ctx, "cg", "orders", "carol"); err != nil || !removed {
			t.Fatalf("Unsubscribe = %v, %v", removed, err)
		}
		if removed, err := other.Unsubscribe(ctx, "cg", "orders", "carol"); err != nil || removed {
			t.Fatalf("Unsubscribe again = %v, %v; want not removed", removed, err)
		}
		waitTrue(t, "the first gateway to see orders gone", func() bool { return topicsOf(t, a, "cg") == "fixed:config,refunds:admin" })

		// A gateway started now reads the whole history.
		late := newSubscriptions(t, b, static, 3, 2)
		if got := topicsOf(t, late, "cg"); got != "fixed:config,refunds:admin" {
			t.Fatalf("a gateway started later reads %s", got)
		}
		if got := topicsOf(t, late, "second"); got != "t:admin" {
			t.Fatalf("a gateway started later reads group second as %s", got)
		}
	})
}

// waitTrue polls cond until it holds, failing after a generous deadline.
func waitTrue(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// staticSubs is a SubscriptionSource of fixed topics.
type staticSubs map[string][]string

func (s staticSubs) Topics(_ context.Context, group string) ([]consume.Subscription, error) {
	var out []consume.Subscription
	for _, t := range s[group] {
		out = append(out, consume.Subscription{Group: group, Topic: t, Source: consume.SourceConfig})
	}
	return out, nil
}

// serviceWithSubs is e's gateway with subscriptions.
func (e *env) serviceWithSubs(set consume.Settings, subs consume.SubscriptionSource) *consume.Service {
	svc := consume.New(consume.Options{
		Backends: map[string]sdk.Backend{"local": e.b}, Route: func(string) (string, error) { return "local", nil },
		DefaultCluster: "local", Producer: e.p, Defaults: set, Logger: slog.New(slog.DiscardHandler),
		Now: e.now, Subscriptions: subs, Registerer: e.reg,
	})
	e.t.Cleanup(svc.Close)
	return svc
}

// A pull without a topic serves every subscribed topic, each batch naming
// its topic: a topic with a long backlog does not starve one with a few
// messages, and acks carry the batch's own topic.
func TestPullWithoutTopicIsFair(t *testing.T) {
	t.Parallel()
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		const backlog = 1000
		e := newEnv(t, b, fast())
		e.produce("busy", 1, backlog, "b")
		e.produce("quiet", 1, 3, "q")
		svc := e.serviceWithSubs(fast(), staticSubs{"cg": {"busy", "quiet"}})
		ctx := context.Background()
		got := map[string]int{}
		take := func() {
			t.Helper()
			bt, err := svc.Pull(ctx, "cg", "", 5, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if len(bt.Messages) == 0 {
				return
			}
			if bt.Topic != "busy" && bt.Topic != "quiet" || bt.Messages[0].Topic != bt.Topic {
				t.Fatalf("batch of topic %q with a message of %q", bt.Topic, bt.Messages[0].Topic)
			}
			got[bt.Topic] += len(bt.Messages)
			if err := svc.Ack(ctx, []consume.Ack{{Group: "cg", Topic: bt.Topic, Qid: bt.Qid, Success: offsets(bt)}}); err != nil {
				t.Fatalf("ack with the batch's topic: %v", err)
			}
		}
		take() // opens the group's session
		// A broker may hand one topic's queue to the session later than
		// the other's (RocketMQ balances and locks topic by topic): turns
		// are taken among the queues the session holds.
		e.waitMetric("mqgate_consume_qids_owned", 2)
		for pulls := 0; got["quiet"] < 3; pulls++ {
			if pulls > backlog/5 {
				t.Fatalf("after %d pulls: %v; the quiet topic starved", pulls, got)
			}
			take()
		}
		// Both took turns: the quiet topic's 3 came before the busy one's
		// backlog was done.
		if got["busy"] >= backlog {
			t.Fatalf("the busy topic's whole backlog came first: %v", got)
		}
		st, err := svc.Stats(ctx, "cg", "")
		if err != nil || len(st) != 2 || st[0].Topic != "busy" || st[1].Topic != "quiet" {
			t.Fatalf("stats without a topic: %+v, %v; want busy and quiet", st, err)
		}
	})
}

// Calls without a topic from a group subscribed to nothing say how to
// subscribe it; a named topic works as before.
func TestNoSubscription(t *testing.T) {
	t.Parallel()
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		e := newEnv(t, b, fast())
		e.produce("named", 1, 1, "n")
		svc := e.serviceWithSubs(fast(), staticSubs{})
		ctx := context.Background()
		_, err := svc.Pull(ctx, "lonely", "", 1, 0)
		if sdk.CodeOf(err) != sdk.CodeIllegal || !strings.Contains(err.Error(), "PUT /v1/admin/groups/lonely/subscriptions/TOPIC") ||
			!strings.Contains(err.Error(), "groups.lonely.topics") {
			t.Fatalf("pull without a topic: %v; want code 11 naming both ways to subscribe", err)
		}
		if _, err := svc.Fetch(ctx, "lonely", "", nil, 1, 0); sdk.CodeOf(err) != sdk.CodeIllegal {
			t.Fatalf("fetch of no offsets: %v; want code 11", err)
		}
		if bt := pull(t, svc, "lonely", "named", 1); string(bt.Messages[0].Value) != "n-0" {
			t.Fatalf("pull with a topic: %+v", bt)
		}
		if _, err := svc.Pull(ctx, "a b", "", 1, 0); sdk.CodeOf(err) != sdk.CodeIllegal {
			t.Fatalf("pull without a topic as a bad group: %v; want code 11", err)
		}
	})
}

// A fetch with no offsets is handed the group's queues at its committed
// offsets; the answer names every queue with its next offset, and a fetch
// from those goes on where it left off. A fetch that finds nothing waits
// out its linger.
func TestFetchAssignment(t *testing.T) {
	t.Parallel()
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		e := newEnv(t, b, fast())
		e.produce("low-a", 2, 6, "a")
		e.produce("low-b", 1, 2, "b")
		svc := e.serviceWithSubs(fast(), staticSubs{"lg": {"low-a", "low-b"}})
		ctx := context.Background()
		offs, err := b.ListOffsets(ctx, []string{"low-a"}, "")
		if err != nil {
			t.Fatal(err)
		}
		// The group has consumed one message of low-a's first qid.
		if err := svc.Commit(ctx, "", "lg", map[string]map[string]int64{"low-a": {offs[0].Qid: 1}}); err != nil {
			t.Fatal(err)
		}
		res, err := svc.Fetch(ctx, "lg", "", nil, 100, time.Second)
		if err != nil || len(res) != 3 {
			t.Fatalf("fetch of no offsets: %+v, %v; want 3 queues", res, err)
		}
		next := map[string]map[string]int64{}
		values := map[string]bool{}
		for _, q := range res {
			if next[q.Topic] == nil {
				next[q.Topic] = map[string]int64{}
			}
			next[q.Topic][q.Qid] = q.NextOffset
			for _, m := range q.Messages {
				values[string(m.Value)] = true
			}
		}
		if values["a-0"] {
			t.Fatalf("read a-0, which the group had committed past: %v", values)
		}
		// Whatever the first fetch did not bring (it waits for one queue,
		// not all), the next ones do, from the offsets it named.
		for len(values) < 7 {
			res, err := svc.Fetch(ctx, "lg", "", next, 100, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range res {
				next[q.Topic][q.Qid] = q.NextOffset
				for _, m := range q.Messages {
					if values[string(m.Value)] {
						t.Fatalf("%s read twice", m.Value)
					}
					values[string(m.Value)] = true
				}
			}
		}
		start := time.Now()
		res, err = svc.Fetch(ctx, "lg", "", next, 100, 300*time.Millisecond)
		if err != nil || len(res) != 3 {
			t.Fatalf("fetch at the end: %+v, %v", res, err)
		}
		for _, q := range res {
			if len(q.Messages) != 0 {
				t.Fatalf("fetch at the end read %+v", q)
			}
		}
		if waited := time.Since(start); waited < 300*time.Millisecond {
			t.Fatalf("an empty fetch answered after %s, before its linger of 300ms", waited)
		}
	})
}
