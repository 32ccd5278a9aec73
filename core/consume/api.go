// Package consume serves consumption with per-message acks on any backend:
// group sessions that hold a broker consumer-group membership per
// (cluster, group, topic), ack tracking with out-of-order acks, redelivery
// with backoff, dead letters, lag statistics, the low-level explicit-offset
// fetch and commit, and seed 004's batch-id cursor. Thrift pull/submit,
// HTTP pull/ack, the batch-id API, HTTP push and sinks are all its clients.
package consume

import (
	"context"
	"time"

	"github.com/mqgate/mqgate/sdk"
)

// Message is one consumed message as handed to a client.
type Message struct {
	Topic     string
	Qid       string
	Offset    int64
	Key       []byte // nil when the message has none
	Value     []byte
	Headers   []sdk.Header
	Tags      string
	Timestamp time.Time
	// Attempt is 1 on the first delivery, 2 on the first redelivery, ...
	Attempt int
}

// Batch is what one Pull hands out: messages of one qid, in offset order.
type Batch struct {
	Group, Topic, Qid string
	Messages          []Message
}

// Ack reports the outcome of messages of one qid: Success offsets are done;
// Fail offsets are redelivered after a backoff, or dead-lettered once their
// retries are spent.
type Ack struct {
	Group, Topic, Qid string
	Success, Fail     []int64
}

// Stats is one topic's consumption by a group.
type Stats struct {
	Group, Topic string
	// ConsumeOffsets is the group's committed offset per qid (the next
	// offset to consume; the queue's start when the group has none).
	ConsumeOffsets map[string]int64
	// ProduceOffsets is the end offset per qid (the offset the next
	// produced message gets).
	ProduceOffsets map[string]int64
	// Lag is the sum over qids of ProduceOffsets - ConsumeOffsets: the
	// messages waiting for the group. A qid whose committed offset is past
	// its end offset adds nothing to it and is in BeyondEnd instead, so
	// that it neither hides another qid's lag nor reads as "caught up".
	Lag int64
	// BeyondEnd is, for each qid whose committed offset is past its end
	// offset, by how much (ConsumeOffsets - ProduceOffsets, > 0); nil when
	// none is. Such an offset was committed by another client (mqgate
	// refuses it), or the topic was recreated or lost messages; where the
	// group's next pull of the qid starts is then up to the broker's
	// offset reset.
	BeyondEnd map[string]int64
}

// QidMessages is what Fetch read from one qid.
type QidMessages struct {
	Topic, Qid string
	// NextOffset is where the next Fetch of this qid should start.
	NextOffset int64
	Messages   []Message
}

// BatchInfo is seed 004's info: the highest batch id acked and sent.
type BatchInfo struct {
	AckedBatchID int64 `json:"acked_batch_id"`
	SentBatchID  int64 `json:"sent_batch_id"`
}

// Consumer is what frontends call; *Service implements it. Errors are
// *sdk.Error: 11 for bad input (naming the field), 19 for a qid this
// gateway does not own or an unknown batch, 17 when the backend is down,
// 14 for a topic that does not exist.
type Consumer interface {
	// Pull waits up to wait for messages of group on topic and returns
	// up to max of one qid; an empty batch when none came in time. With
	// topic "" it serves any topic group is subscribed to, the batch
	// naming its topic; a group subscribed to none is code 11.
	Pull(ctx context.Context, group, topic string, max int, wait time.Duration) (Batch, error)
	// Ack applies acks in order. An offset that was never handed out (or
	// is already acked) is code 11; a qid this gateway does not own is 19.
	Ack(ctx context.Context, acks []Ack) error
	// Stats reports group's consumption of topic, or, when topic is "",
	// of every topic it is subscribed to or has a session for on this
	// gateway.
	Stats(ctx context.Context, group, topic string) ([]Stats, error)
	// Sessions reports group's sessions on this gateway and the messages
	// each has out (see SessionView).
	Sessions(group string) []SessionView
	// DeadLetterTopic names the topic group's spent messages go to.
	DeadLetterTopic(group string) string
	// Fetch reads explicit offsets (topic -> qid -> offset), outside any
	// session, up to max per qid, from cluster, or, when cluster is "" or
	// names no cluster of this gateway, from each topic's own cluster.
	// Group's subscribed topics that offsets leaves out are added at the
	// group's committed offsets: an empty offsets is a request for the
	// group's queues (code 11 for a group subscribed to none). An answer
	// with no message comes after wait, never sooner.
	Fetch(ctx context.Context, group, cluster string, offsets map[string]map[string]int64, max int, wait time.Duration) ([]QidMessages, error)
	// Commit stores group's offsets (topic -> qid -> next offset) on
	// cluster, or, when cluster is "" or names no cluster of this
	// gateway, on each topic's own cluster, with no session and no
	// tracking.
	Commit(ctx context.Context, cluster, group string, offsets map[string]map[string]int64) error

	// The batch-id cursor of seed 004, one per (group, topic) on this
	// gateway. Batch ids start at 1 (info reports 0 and 0 before the
	// first fetch) and restart when the gateway does.
	BatchInfo(ctx context.Context, group, topic string) (BatchInfo, error)
	// FetchNew acks ackID first when it is not nil (code 11 naming the
	// allowed range when it is outside acked..sent), then returns up to
	// size new messages as the next batch.
	FetchNew(ctx context.Context, group, topic string, size int, ackID *int64) (int64, []Message, error)
	// FetchOld returns batch id again, the same messages; id must be in
	// acked+1..sent (code 11 naming the range).
	FetchOld(ctx context.Context, group, topic string, id int64) ([]Message, error)
	// AckBatch acks every batch up to id and returns the acked id.
	AckBatch(ctx context.Context, group, topic string, id int64) (int64, error)
	// MaxBatch is the most messages one Pull, Fetch or batch returns;
	// larger requests are capped to it.
	MaxBatch() int
}
