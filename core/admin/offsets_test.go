package admin

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mqgate/mqgate/internal/brokertest"
	"github.com/mqgate/mqgate/sdk"
)

// committed reads group's committed offsets on topic, by qid.
func committed(t *testing.T, b sdk.Backend, group, topic string) map[string]int64 {
	t.Helper()
	offs, err := b.ListOffsets(context.Background(), []string{topic}, group)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, o := range offs {
		out[o.Qid] = o.Committed
	}
	return out
}

func TestResetOffsets(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		ctx := context.Background()
		const topic, group = "reset", "resetters"
		if err := b.EnsureTopics(ctx, []sdk.TopicSpec{{Name: topic, Partitions: 2}}); err != nil {
			t.Fatal(err)
		}
		// Two batches of five on one qid, written on either side of mid
		// (the broker stamps them: a produce cannot set the time).
		produce := func(from int) []sdk.ProduceResult {
			rs := make([]sdk.Record, 5)
			for i := range rs {
				rs[i] = sdk.Record{Topic: topic, Partition: 0, Value: fmt.Appendf(nil, "v%d", from+i)}
			}
			res, err := b.Produce(ctx, rs)
			if err != nil || res[0].Err != nil {
				t.Fatalf("produce: %v %+v", err, res)
			}
			return res
		}
		res := produce(0)
		before := time.Now().Add(-time.Minute)
		time.Sleep(20 * time.Millisecond)
		mid := time.Now()
		time.Sleep(20 * time.Millisecond)
		produce(5)
		after := time.Now().Add(time.Minute)
		qid := res[0].Qid
		s := service(b)

		r, err := s.ResetOffsets(ctx, group, topic, ResetTarget{To: ToLatest}, true, false)
		if err != nil || !r.DryRun || len(r.Qids) != 2 {
			t.Fatalf("dry run = %+v, %v", r, err)
		}
		for _, q := range r.Qids {
			if q.From != -1 || q.To != q.End {
				t.Errorf("dry run to latest moves qid %s %d -> %d, want -1 -> %d", q.Qid, q.From, q.To, q.End)
			}
		}
		if c := committed(t, b, group, topic); c[qid] != -1 {
			t.Fatalf("a dry run committed %v", c)
		}

		check := func(target ResetTarget, want map[string]int64) {
			t.Helper()
			r, err := s.ResetOffsets(ctx, group, topic, target, false, false)
			if err != nil {
				t.Fatalf("reset to %s: %v", target.To, err)
			}
			got := committed(t, b, group, topic)
			for q, w := range want {
				if got[q] != w {
					t.Errorf("after reset to %s: qid %s committed %d, want %d (reset %+v)", target.To, q, got[q], w, r)
				}
			}
		}
		other := r.Qids[0].Qid
		if other == qid {
			other = r.Qids[1].Qid
		}
		check(ResetTarget{To: ToLatest}, map[string]int64{qid: 10, other: 0})
		check(ResetTarget{To: ToEarliest}, map[string]int64{qid: 0, other: 0})
		check(ResetTarget{To: ToTimestamp, Time: mid}, map[string]int64{qid: 5, other: 0})
		check(ResetTarget{To: ToTimestamp, Time: before}, map[string]int64{qid: 0})
		check(ResetTarget{To: ToTimestamp, Time: after}, map[string]int64{qid: 10})
		check(ResetTarget{To: ToOffsets, Offsets: map[string]int64{qid: 3}}, map[string]int64{qid: 3, other: 0})

		for _, c := range []struct {
			target ResetTarget
			code   sdk.Code
			says   string
		}{
			{ResetTarget{To: "yesterday"}, sdk.CodeIllegal, "to: must be earliest"},
			{ResetTarget{To: ToOffsets}, sdk.CodeIllegal, "offsets: name at least one"},
			{ResetTarget{To: ToOffsets, Offsets: map[string]int64{qid: 11}}, sdk.CodeIllegal, "outside what it retains, 0 to 10"},
			{ResetTarget{To: ToOffsets, Offsets: map[string]int64{"nine": 0}}, sdk.CodeIllegal, `has no qid "nine"`},
		} {
			if _, err := s.ResetOffsets(ctx, group, topic, c.target, false, false); sdk.CodeOf(err) != c.code || !strings.Contains(fmt.Sprint(err), c.says) {
				t.Errorf("reset to %+v = %v, want code %d saying %q", c.target, err, c.code, c.says)
			}
		}
		if _, err := s.ResetOffsets(ctx, group, "no-such-topic", ResetTarget{To: ToLatest}, false, false); err == nil {
			t.Errorf("a reset of a topic that does not exist passed")
		}
		if c := committed(t, b, group, topic); c[qid] != 3 {
			t.Errorf("a refused reset moved the group: %v", c)
		}
	})
}

// A reset waits for the group's consumers on this gateway, unless forced:
// then it ends the sessions clients pull through, but not the gateway's
// own readers.
func TestResetOffsetsRefusedWhileConsuming(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		ctx := context.Background()
		qid := fill(t, b, "busy", 3)
		sessions, readers := 1, 0
		s := New(Options{
			Cluster:  func(string) (string, sdk.Backend, error) { return "local", b, nil },
			Clusters: map[string]sdk.Backend{"local": b},
			Active:   func(group, topic string) int { return sessions },
			End: func(ctx context.Context, group, topic string) int {
				if readers == 0 {
					sessions = 0
				}
				return readers
			},
		})
		_, err := s.ResetOffsets(ctx, "g", "busy", ResetTarget{To: ToLatest}, false, false)
		if sdk.CodeOf(err) != sdk.CodeNotAllowed || !strings.Contains(err.Error(), "reset with force") {
			t.Fatalf("reset while consuming = %v, want code 13 naming force", err)
		}
		if _, err := s.ResetOffsets(ctx, "g", "busy", ResetTarget{To: ToLatest}, true, false); err != nil {
			t.Errorf("a dry run while consuming = %v, want it answered", err)
		}
		readers = 1
		_, err = s.ResetOffsets(ctx, "g", "busy", ResetTarget{To: ToLatest}, false, true)
		if sdk.CodeOf(err) != sdk.CodeNotAllowed || !strings.Contains(err.Error(), "push subscription or a sink") {
			t.Fatalf("forced reset of a group the gateway reads = %v, want code 13", err)
		}
		readers = 0
		if _, err := s.ResetOffsets(ctx, "g", "busy", ResetTarget{To: ToLatest}, false, true); err != nil {
			t.Fatalf("forced reset = %v", err)
		}
		if c := committed(t, b, "g", "busy"); c[qid] != 3 {
			t.Errorf("after a forced reset to latest: %v, want qid %s at 3", c, qid)
		}

		// A member of the group on the broker (another gateway, a client
		// of the broker) refuses a reset, forced or not.
		cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		member, err := b.Consume(cctx, sdk.Subscription{Group: "g", Topics: []string{"busy"}, Start: sdk.StartEarliest})
		if err != nil {
			t.Fatal(err)
		}
		defer member.Close()
		for joined := false; !joined; {
			ev, err := member.Poll(cctx, 10)
			if err != nil && cctx.Err() != nil {
				t.Fatalf("the member never joined: %v", err)
			}
			joined = len(ev.Assigned) > 0 || len(ev.Records) > 0
		}
		// The broker tells who the member is.
		if m := s.Members(ctx, "g"); len(m) != 1 || m[0].Cluster != "local" || m[0].MemberID == "" {
			t.Errorf("Members = %+v; want the one member on local", m)
		}
		if m := s.Members(ctx, "nobody"); len(m) != 0 {
			t.Errorf("Members of a group nobody has = %+v", m)
		}
		_, err = s.ResetOffsets(ctx, "g", "busy", ResetTarget{To: ToEarliest}, false, true)
		if sdk.CodeOf(err) != sdk.CodeNotAllowed || !strings.Contains(err.Error(), "members") {
			t.Fatalf("reset with a member on the broker = %v, want code 13 naming its members", err)
		}
		if c := committed(t, b, "g", "busy"); c[qid] != 3 {
			t.Errorf("a refused reset moved the group: %v", c)
		}
	})
}
