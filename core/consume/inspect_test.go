package consume_test

import (
	"context"
	"testing"
	"time"

	"github.com/mqgate/mqgate/core/consume"
	"github.com/mqgate/mqgate/internal/brokertest"
	"github.com/mqgate/mqgate/sdk"
)

// A group's sessions show, per qid, which messages are out: delivered and
// waiting for an ack, retrying after a failure (with its attempt and
// error), and what was acked is gone from the list.
func TestSessionsShowMessagesInFlight(t *testing.T) {
	t.Parallel()
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		set := fast()
		set.RetryBackoff = time.Hour // the failed one stays retrying
		e := newEnv(t, b, set)
		e.produce("inflight", 1, 4, "m")
		batch := pull(t, e.svc, "g", "inflight", 4)
		if len(batch.Messages) != 4 {
			t.Fatalf("pulled %d, want 4", len(batch.Messages))
		}
		if err := e.svc.Ack(context.Background(), []consume.Ack{{Group: "g", Topic: "inflight", Qid: batch.Qid, Success: []int64{0}, Fail: []int64{1}}}); err != nil {
			t.Fatal(err)
		}
		views := e.svc.Sessions("g")
		if len(views) != 1 || len(views[0].Topics) != 1 || views[0].Topics[0] != "inflight" || views[0].Reader {
			t.Fatalf("Sessions = %+v; want one client session on inflight", views)
		}
		var q *consume.QidView
		for i := range views[0].Qids {
			if views[0].Qids[i].Qid == batch.Qid {
				q = &views[0].Qids[i]
			}
		}
		if q == nil {
			t.Fatalf("the session does not show qid %s: %+v", batch.Qid, views[0].Qids)
		}
		if q.Delivered != 2 || q.Retrying != 1 || q.DeadLettering != 0 || q.CommitPoint != 1 || len(q.Flights) != 3 {
			t.Fatalf("qid view %+v; want 2 delivered, 1 retrying, commit point 1, 3 flights", *q)
		}
		if f := q.Flights[0]; f.Offset != 1 || f.State != "retrying" || f.Attempt != 1 || f.RedoAtMs == 0 {
			t.Errorf("flight of offset 1 = %+v; want retrying after attempt 1", f)
		}
		if f := q.Flights[1]; f.Offset != 2 || f.State != "delivered" || f.DeadlineMs == 0 {
			t.Errorf("flight of offset 2 = %+v; want delivered with a deadline", f)
		}
		if other := e.svc.Sessions("nobody"); len(other) != 0 {
			t.Errorf("Sessions of a group with none = %+v", other)
		}
	})
}

// Ending a group's sessions for an offset reset commits what was acked,
// leaves the broker's group, and the next pull opens a session again
// from the committed offset.
func TestEndSessions(t *testing.T) {
	t.Parallel()
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		e := newEnv(t, b, fast())
		e.produce("ending", 1, 4, "m")
		batch := pull(t, e.svc, "g", "ending", 4)
		if len(batch.Messages) != 4 {
			t.Fatalf("pulled %d, want 4", len(batch.Messages))
		}
		if err := e.svc.Ack(context.Background(), []consume.Ack{{Group: "g", Topic: "ending", Qid: batch.Qid, Success: []int64{0, 1}}}); err != nil {
			t.Fatal(err)
		}
		if n := consume.Reading(e.svc.Sessions("g"), "ending"); n != 1 {
			t.Fatalf("Reading = %d, want 1 session", n)
		}
		ended, readers := e.svc.EndSessions(context.Background(), "g", "ending")
		if ended != 1 || readers != 0 {
			t.Fatalf("EndSessions = %d, %d; want 1 ended, no readers", ended, readers)
		}
		if n := consume.Reading(e.svc.Sessions("g"), "ending"); n != 0 {
			t.Fatalf("Reading after EndSessions = %d, want 0", n)
		}
		offs, err := b.ListOffsets(context.Background(), []string{"ending"}, "g")
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range offs {
			if o.Qid == batch.Qid && o.Committed != 2 {
				t.Fatalf("committed %d after EndSessions, want 2 (what was acked)", o.Committed)
			}
		}
		again := pull(t, e.svc, "g", "ending", 4)
		if len(again.Messages) != 2 || again.Messages[0].Offset != 2 {
			t.Fatalf("pull after EndSessions = %+v; want offsets 2 and 3 again", again.Messages)
		}
	})
}
