package consume_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/mqgate/mqgate/core/consume"
	"github.com/mqgate/mqgate/core/topicname"
	"github.com/mqgate/mqgate/sdk"
)

// untouchable is a backend no call may reach: a refused request must not
// join a group, read a record or move an offset.
type untouchable struct{ sdk.Backend }

// TestClientCallsRefuseGatewayNames pins that no client call joins, reads,
// commits or inspects the delay tiers' groups and topics, a push
// subscription's group, or a group's own dead letters, with code 13 naming
// the rule; and that the refusal reaches no broker.
func TestClientCallsRefuseGatewayNames(t *testing.T) {
	set := consume.DefaultSettings()
	svc := consume.New(consume.Options{
		Backends: map[string]sdk.Backend{"local": untouchable{}}, Route: func(string) (string, error) { return "local", nil },
		DefaultCluster: "local", Defaults: set, Logger: slog.New(slog.DiscardHandler),
		Groups: map[string]consume.Settings{"audit": func() consume.Settings {
			s := set
			s.DeadLetterTopic = "audit-failures"
			return s
		}()},
		Reserved: &topicname.Reserved{Groups: map[string]string{"mqgate-push-orders": "push[0].group"}},
	})
	t.Cleanup(svc.Close)
	ctx := context.Background()
	one := func(topic string) map[string]map[string]int64 { return map[string]map[string]int64{topic: {"0": 0}} }
	for _, tc := range []struct {
		name string
		call func() error
		want string
	}{
		{"pull a tier as its worker group", func() error {
			_, err := svc.Pull(ctx, "mqgate_delay_10s", "mqgate_delay_10s", 10, 0)
			return err
		}, "delay.topic_prefix"},
		{"pull a tier as another group", func() error { _, err := svc.Pull(ctx, "mine", "mqgate_delay_10s", 10, 0); return err }, `topic "mqgate_delay_10s" is reserved`},
		{"pull as a tier group", func() error { _, err := svc.Pull(ctx, "mqgate_delay_10s", "orders", 10, 0); return err }, `group "mqgate_delay_10s" is reserved`},
		{"pull the cancel topic", func() error { _, err := svc.Pull(ctx, "mine", "mqgate_delay_cancel", 10, 0); return err }, "reserved"},
		{"pull as a push group", func() error { _, err := svc.Pull(ctx, "mqgate-push-orders", "orders", 10, 0); return err }, "push[0].group"},
		{"pull own dead letters", func() error { _, err := svc.Pull(ctx, "billing", "billing-dlq", 10, 0); return err }, "own dead letters"},
		{"pull own dead letters, group override", func() error { _, err := svc.Pull(ctx, "audit", "audit-failures", 10, 0); return err }, "groups.audit.dead_letter_topic"},
		{"ack", func() error {
			return svc.Ack(ctx, []consume.Ack{{Group: "mqgate_delay_10s", Topic: "mqgate_delay_10s", Qid: "0", Success: []int64{0}}})
		}, "reserved"},
		{"stats of a tier", func() error { _, err := svc.Stats(ctx, "mqgate_delay_10s", "mqgate_delay_10s"); return err }, "reserved"},
		{"stats of a tier group", func() error { _, err := svc.Stats(ctx, "mqgate_delay_10s", ""); return err }, "reserved"},
		{"fetch a tier", func() error { _, err := svc.Fetch(ctx, "", "", one("mqgate_delay_1s"), 10, 0); return err }, "reserved"},
		{"commit as a tier group", func() error { return svc.Commit(ctx, "", "mqgate_delay_1s", one("orders")) }, "reserved"},
		{"commit on a tier", func() error { return svc.Commit(ctx, "", "mine", one("mqgate_delay_1s")) }, "reserved"},
		{"batch info", func() error { _, err := svc.BatchInfo(ctx, "mqgate_delay_1s", "mqgate_delay_1s"); return err }, "reserved"},
		{"fetch_new", func() error {
			_, _, err := svc.FetchNew(ctx, "mine", "mqgate_delay_1s", 10, nil)
			return err
		}, "reserved"},
		{"fetch_old", func() error { _, err := svc.FetchOld(ctx, "mine", "mqgate_x", 1); return err }, `"mqgate_"`},
		{"batch ack", func() error { _, err := svc.AckBatch(ctx, "mqgate_x", "orders", 1); return err }, `"mqgate_"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if sdk.CodeOf(err) != sdk.CodeNotAllowed || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v (code %d); want code 13 with %q", err, sdk.CodeOf(err), tc.want)
			}
		})
	}
}
