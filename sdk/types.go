package sdk

import (
	"time"
)

// Header is one record header. Headers keep their order and may repeat.
type Header struct {
	Key   string
	Value []byte
}

// Partition selects how a produced record finds its qid.
const (
	// PartitionHash picks hash % queues, where the hash is Record.Hash.
	PartitionHash int32 = -1
	// PartitionRandom picks a random queue.
	PartitionRandom int32 = -2
)

// Record is one message, produced or consumed.
//
// On produce, Topic, Key, Value, Headers, Tags and the partition choice
// (Partition, Hash) are read; the backend assigns Qid and Offset. On consume,
// every field is set by the backend.
type Record struct {
	Topic string
	// Qid names the queue (a Kafka partition, a RocketMQ message queue) the
	// record lives in. It is stable across restarts of the plugin and the
	// broker. Set by the backend.
	Qid string
	// Partition is the queue's index within the topic on consume. On produce
	// it is the choice: >= 0 an explicit index, PartitionHash or
	// PartitionRandom.
	Partition int32
	// Hash is the value PartitionHash maps to a queue (hash % queue count).
	Hash   uint64
	Offset int64
	// Key is nil when the record has no key.
	Key     []byte
	Value   []byte
	Headers []Header
	// Tags is RocketMQ's TAGS. Kafka has no such field: the Kafka plugin
	// carries it in a header named "tags", which is therefore reserved there.
	Tags      string
	Timestamp time.Time
}

// ProduceResult is the outcome of producing one record. Err is nil on
// success; otherwise it is an *Error carrying the code clients see.
type ProduceResult struct {
	Qid       string
	Partition int32
	Offset    int64
	// MessageID is the broker's own id where it has one (RocketMQ); empty
	// for Kafka.
	MessageID string
	Err       error
}

// TopicSpec asks for a topic. Partitions 0 means the backend's default.
// Configs are broker-specific topic settings (cleanup.policy=compact, ...).
type TopicSpec struct {
	Name       string
	Partitions int32
	Configs    map[string]string
}

// Offset is a position in one queue: the offset of the next record to read.
type Offset struct {
	Topic string
	Qid   string
	// Offset is the next offset to consume.
	Offset int64
	// Release marks the gateway's last commit of a qid that Poll reported
	// revoked: the plugin may hand the qid to its next owner once it is
	// stored. Other commits of a revoked qid (the gateway's periodic
	// commits race the Revoked event) store their offset without
	// releasing it. A plugin with nothing to release ignores it.
	Release bool
}

// StartPosition says where a subscription starts on a queue its group has
// never committed.
type StartPosition int32

const (
	// StartEarliest starts at the oldest retained record.
	StartEarliest StartPosition = 0
	// StartLatest starts after the newest record.
	StartLatest StartPosition = 1
)

// Subscription describes one group's consumption of some topics.
type Subscription struct {
	Group  string
	Topics []string
	Start  StartPosition
}

// ConsumeEvent is what a Consumer's Poll returns: records, or a change in
// which qids this member owns. Exactly one of the fields is non-empty.
type ConsumeEvent struct {
	Records []Record
	// Assigned lists qids this member now owns. Offset is -1 where the
	// backend does not know the position yet.
	Assigned []Offset
	// Revoked lists qids this member no longer owns; uncommitted progress on
	// them belongs to the next owner.
	Revoked []Offset
}

// FetchPosition asks for records of one queue starting at Offset.
type FetchPosition struct {
	Topic  string
	Qid    string
	Offset int64
}

// FetchRequest reads explicit positions without a group session.
type FetchRequest struct {
	Positions []FetchPosition
	// MaxRecords bounds the records returned for each position.
	MaxRecords int32
	// MaxWait bounds how long Fetch waits for at least one record.
	MaxWait time.Duration
}

// FetchResult is what Fetch read from one queue.
type FetchResult struct {
	Topic   string
	Qid     string
	Records []Record
	// NextOffset is where the next Fetch of this queue should start.
	NextOffset int64
	Err        error
}

// QidOffsets is one queue's retained range and, when a group was asked,
// that group's committed offset (-1 when it has none).
type QidOffsets struct {
	Topic     string
	Qid       string
	Partition int32
	// Start is the oldest retained offset; End the offset the next produced
	// record will get.
	Start     int64
	End       int64
	Committed int64
}
