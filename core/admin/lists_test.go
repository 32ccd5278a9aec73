package admin

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/mqgate/mqgate/internal/brokertest"
	"github.com/mqgate/mqgate/sdk"
)

// plainBackend hides a backend's sdk.ClusterAdmin, as a third-party
// plugin without it would.
type plainBackend struct{ sdk.Backend }

// A cluster that cannot be listed is reported, not fatal to the list; a
// group on several clusters is deleted only on the one named.
func TestListsAcrossClusters(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		ctx := context.Background()
		qid := fill(t, b, "shared", 1)
		if err := b.Commit(ctx, "everywhere", []sdk.Offset{{Topic: "shared", Qid: qid, Offset: 1}}); err != nil {
			t.Fatal(err)
		}
		s := New(Options{Clusters: map[string]sdk.Backend{"a": b, "b": b, "plain": plainBackend{b}}})
		topics, skipped, err := s.Topics(ctx, "")
		if err != nil || len(skipped) != 1 || skipped[0].Cluster != "plain" || skipped[0].Code != sdk.CodeIllegal ||
			!slices.ContainsFunc(topics, func(e TopicEntry) bool { return e.Name == "shared" && e.Cluster == "b" }) {
			t.Fatalf("Topics = %+v, skipped %+v, %v; want a's and b's, plain skipped", topics, skipped, err)
		}
		if _, _, err := s.Groups(ctx, "plain"); sdk.CodeOf(err) != sdk.CodeIllegal {
			t.Errorf("Groups of the plain cluster alone = %v, want code 11", err)
		}
		if _, err := s.DeleteGroup(ctx, "everywhere", ""); sdk.CodeOf(err) != sdk.CodeIllegal || !strings.Contains(err.Error(), "on clusters a, b: name the one") {
			t.Fatalf("DeleteGroup of a group on two clusters = %v, want code 11 naming them", err)
		}
	})
}

func TestTopicAndGroupLists(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		ctx := context.Background()
		qid := fill(t, b, "listed", 3)
		if err := b.EnsureTopics(ctx, []sdk.TopicSpec{{Name: "mqgate_delay_9s", Partitions: 1}}); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(ctx, "listers", []sdk.Offset{{Topic: "listed", Qid: qid, Offset: 2}}); err != nil {
			t.Fatal(err)
		}
		sessions := 0
		s := New(Options{
			Cluster:  func(string) (string, sdk.Backend, error) { return "local", b, nil },
			Clusters: map[string]sdk.Backend{"local": b},
			Reserved: func(topic string) error {
				if strings.HasPrefix(topic, "mqgate_") {
					return sdk.Errorf(sdk.CodeNotAllowed, "reserved")
				}
				return nil
			},
			Sessions: func(string) int { return sessions },
		})

		topics, skipped, err := s.Topics(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(topics, func(e TopicEntry) bool { return e.Name == "listed" })
		if i < 0 || topics[i].Cluster != "local" || topics[i].Qids != 2 || topics[i].Messages != 3 || topics[i].Reserved {
			t.Fatalf("Topics = %+v; want listed on local with 2 qids and 3 messages", topics)
		}
		if j := slices.IndexFunc(topics, func(e TopicEntry) bool { return e.Name == "mqgate_delay_9s" }); j < 0 || !topics[j].Reserved {
			t.Errorf("Topics = %+v; want the gateway's topic marked reserved", topics)
		}
		if len(skipped) != 0 {
			t.Errorf("Topics skipped %+v", skipped)
		}
		if _, _, err := s.Topics(ctx, "elsewhere"); sdk.CodeOf(err) != sdk.CodeIllegal || !strings.Contains(err.Error(), `no cluster "elsewhere"`) {
			t.Errorf("Topics of an unknown cluster = %v, want code 11", err)
		}

		sessions = 1
		groups, _, err := s.Groups(ctx, "local")
		if err != nil {
			t.Fatal(err)
		}
		i = slices.IndexFunc(groups, func(e GroupEntry) bool { return e.Name == "listers" })
		if i < 0 || groups[i].Cluster != "local" || groups[i].Members > 0 || groups[i].Sessions != 1 {
			t.Fatalf("Groups = %+v; want listers on local, no members, one session here", groups)
		}
		if _, err := s.DeleteGroup(ctx, "listers", ""); sdk.CodeOf(err) != sdk.CodeNotAllowed || !strings.Contains(err.Error(), "1 sessions on this gateway") {
			t.Fatalf("DeleteGroup with a session here = %v, want code 13", err)
		}
		sessions = 0
		deleted, err := s.DeleteGroup(ctx, "listers", "")
		switch sdk.CodeOf(err) {
		case sdk.CodeOK: // Kafka
			if deleted != "local" {
				t.Errorf("DeleteGroup deleted on %v, want local", deleted)
			}
			if _, err := s.DeleteGroup(ctx, "listers", ""); sdk.CodeOf(err) != sdk.CodeNotFound {
				t.Errorf("DeleteGroup of a deleted group = %v, want code 19", err)
			}
		case sdk.CodeIllegal: // RocketMQ: the plugin does not delete groups
			if !strings.Contains(err.Error(), "does not delete groups") {
				t.Errorf("DeleteGroup = %v", err)
			}
		default:
			t.Fatalf("DeleteGroup = %v", err)
		}
	})
}

// Dead letters are discarded up to an offset where the broker deletes
// records (Kafka), and refused saying so where it does not (RocketMQ).
func TestDiscardDeadLetters(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		ctx := context.Background()
		qid := fill(t, b, "w-dlq", 5)
		s := service(b)
		if _, _, err := s.DiscardDeadLetters(ctx, "w-dlq", qid, 6); sdk.CodeOf(err) != sdk.CodeIllegal || !strings.Contains(err.Error(), "outside what topic w-dlq qid") {
			t.Fatalf("discard past the end = %v, want code 11", err)
		}
		q, n, err := s.DiscardDeadLetters(ctx, "w-dlq", qid, 3)
		switch sdk.CodeOf(err) {
		case sdk.CodeOK:
			if q.Start != 3 || q.End != 5 || n != 3 {
				t.Fatalf("after discarding before 3: %+v, %d discarded; want 3 to 5, 3 discarded", q, n)
			}
			page, err := s.Browse(ctx, "w-dlq", qid, 0, 10)
			if err != nil || len(page.Records) != 2 || page.Records[0].Offset != 3 {
				t.Fatalf("browse after the discard: %+v, %v; want offsets 3 and 4", page.Records, err)
			}
		case sdk.CodeIllegal:
			if !strings.Contains(err.Error(), "RocketMQ deletes messages only as its commit log expires") {
				t.Fatalf("discard on RocketMQ = %v", err)
			}
		default:
			t.Fatalf("discard = %v", err)
		}
	})
}
