package sdk

import "context"

// ProduceReleaser is implemented by a Backend that never reads a record's
// bytes once its Produce has returned without an error: not from a
// goroutine that outlives the call, not from records it kept, not through
// results or errors that point into them. A plugin process then reuses a
// batch's memory for later messages once its answer is written, rather
// than allocating each batch afresh (for a batch of 100 KiB, clearing the
// new memory costs about as much as reading it). A backend that does not
// say so gets a buffer of its own for every batch, which it may keep.
type ProduceReleaser interface {
	// ReleasesProducedRecords reports whether the Backend keeps the
	// promise above. It is asked once per connection from the gateway;
	// its answer must not change.
	ReleasesProducedRecords() bool
}

// Backend is a message broker behind mqgate. Implementations must be safe
// for concurrent use. Every method takes batches; callers never send one
// record per call.
type Backend interface {
	// Configure applies the plugin's config, a JSON object taken from the
	// cluster's `config:` in plugins.yaml. A config with problems must be
	// refused with ConfigErrors holding every problem, each a *ConfigError
	// naming its key, unknown keys included, so the gateway can report them
	// all at once at their lines (a single *ConfigError also works). It is
	// called once, before anything else, and again after every restart of
	// the plugin process. A plugin that can check a config without applying
	// it also implements ConfigValidator.
	Configure(ctx context.Context, config []byte) error
	// EnsureTopics creates the topics that do not exist. It is idempotent:
	// existing topics are left as they are and are not an error.
	EnsureTopics(ctx context.Context, topics []TopicSpec) error
	// Produce writes a batch. It returns one result per record, in order;
	// the error is for failures of the whole call. The records' keys,
	// values and header values may share one buffer with the rest of the
	// batch: nothing else writes it, and an append to one copies it, but
	// a plugin that keeps one of them after Produce returns keeps the
	// whole buffer, so it should copy what it keeps. A bundled plugin run
	// in the gateway's process (in_process) gets the gateway's request
	// buffers, which are reused once Produce has returned without an
	// error: there it must not read them after that.
	Produce(ctx context.Context, records []Record) ([]ProduceResult, error)
	// Consume joins sub.Group and starts consuming. The Consumer lives until
	// Close or until ctx ends.
	Consume(ctx context.Context, sub Subscription) (Consumer, error)
	// Commit stores a group's offsets without a consumer session. It never
	// moves a committed offset unless asked to. A broker may refuse it while
	// the group has active members (Kafka does); that is CodeNotAllowed,
	// with a message saying so: it lasts as long as the members do, so
	// retrying is no answer.
	Commit(ctx context.Context, group string, offsets []Offset) error
	// Fetch reads records at explicit positions, outside any group.
	Fetch(ctx context.Context, req FetchRequest) ([]FetchResult, error)
	// ListOffsets gives, for every qid of the topics, the retained range and
	// (when group is not empty) the group's committed offset.
	ListOffsets(ctx context.Context, topics []string, group string) ([]QidOffsets, error)
	// Close releases everything the backend holds.
	Close() error
}

// Consumer is one member of a consumer group, fed by Backend.Consume.
type Consumer interface {
	// Poll waits until records or an assignment change are ready, or ctx
	// ends. It returns at most maxRecords records. An error from Poll is
	// reported to the gateway and the subscription goes on (the gateway's
	// next Poll retries); a Consumer that cannot go on should be closed by
	// its context ending.
	Poll(ctx context.Context, maxRecords int) (ConsumeEvent, error)
	// Commit stores offsets for the subscription's group.
	//
	// After Poll returns a Revoked event, the gateway commits what it
	// finished of those qids with one Commit call (possibly of no
	// offsets), their offsets marked Release, before it polls again. A
	// plugin may hold the broker's rebalance until that call, and must
	// accept commits for the revoked qids in it, so that the next owner
	// starts after them. A commit of a revoked qid without Release may
	// still come (one the gateway began before it saw the Revoked event);
	// it must not release the qid, or the next owner would start before
	// what the Release commit stores. The gateway answers Revoked events
	// in the order Poll returned them and makes no other Commit of no
	// offsets, so such a Commit is the release of the oldest Revoked event
	// not answered yet.
	Commit(ctx context.Context, offsets []Offset) error
	// Close leaves the group.
	Close() error
}

// Sink is a destination for consumed records (Redis, HBase, HDFS, ...).
//
// The gateway runs one sink plugin process per `sinks:` entry and configures
// it with the entry's `config`, to which it adds the key SinkInfoKey holding
// a SinkInfo: a sink's config struct has a field
//
//	Gateway sdk.SinkInfo `json:"mqgate"`
//
// Write gets the records of the entry's topics in batches, each record
// already filtered and transformed by the gateway, and must return once every
// record it reports a success for is durable in the store: the gateway acks
// (commits) a record only after that. Records of one batch that share a key
// or a qid are in consume order, and a later batch never holds a record that
// must land after one the gateway is still retrying.
type Sink interface {
	// Configure applies the sink's config, as Backend.Configure does.
	Configure(ctx context.Context, config []byte) error
	// Write stores a batch and returns one error per record (nil for
	// success), in order; the error is for failures of the whole call.
	Write(ctx context.Context, records []Record) ([]error, error)
	// Close releases everything the sink holds.
	Close() error
}

// SinkInfoKey is the key of a sink's config under which the gateway puts a
// SinkInfo; plugins.yaml may not set it.
const SinkInfoKey = "mqgate"

// SinkInfo tells a sink plugin which `sinks:` entry it serves.
type SinkInfo struct {
	// Sink is the entry's name: unique among the gateway's sinks, the same
	// on every gateway that runs the entry.
	Sink string `json:"sink"`
	// Group is the consumer group the entry reads with.
	Group string `json:"group"`
	// Gateway names this gateway process (host and pid), so files or keys a
	// sink names per writer never collide across gateways running the same
	// entry.
	Gateway string `json:"gateway"`
}
