package thriftapi

import (
	"strconv"
	"time"

	"github.com/mqgate/mqgate/core/consume"
	"github.com/mqgate/mqgate/core/topicname"
	"github.com/mqgate/mqgate/frontends/thrift/gen-go/consumer"
	"github.com/mqgate/mqgate/sdk"
)

// maxAckChain bounds the ConsumeResults of one chain (result and its
// nextResult links); a longer chain is answered with code 11.
const maxAckChain = 1000

// consumeLimits are what the decoders of ConsumerService calls check
// sizes and waits against.
type consumeLimits struct {
	// maxBatch is Consumer.MaxBatch(): larger batch sizes are capped to it.
	maxBatch int
	// maxWait caps maxLingerTime: the request timeout.
	maxWait time.Duration
}

// pullCall is a decoded pull: the acks to apply first, then the pull.
type pullCall struct {
	acks         []consume.Ack
	group, topic string
	max          int
	wait         time.Duration
}

// decodePull checks a PullRequest and turns it into the calls it asks for
// (docs/thrift.md, "ConsumerService"); ct takes the tokens out of its
// group names. Every error is an *sdk.Error with code 11 naming the field
// ("request.topic: required").
func decodePull(req *consumer.PullRequest, lim consumeLimits, ct *callToken) (pullCall, error) {
	const path = "request"
	if req == nil {
		return pullCall{}, sdk.Errorf(sdk.CodeIllegal, "%s: required", path)
	}
	group, err := ct.group(path+".groupId", req.GroupId)
	if err != nil {
		return pullCall{}, err
	}
	// Without a topic (DDMQ's SDKs send none), the pull serves any topic
	// the group is subscribed to, as DDMQ's cproxy does.
	topic := req.GetTopic()
	if topic != "" {
		if err := checkTopic(path+".topic", topic); err != nil {
			return pullCall{}, err
		}
	}
	max, err := batchSize(req.MaxBatchSize, path+".maxBatchSize", lim.maxBatch)
	if err != nil {
		return pullCall{}, err
	}
	wait, err := linger(req.MaxLingerTime, path+".maxLingerTime", lim.maxWait)
	if err != nil {
		return pullCall{}, err
	}
	acks, err := decodeChain(req.Result_, path+".result", ct)
	if err != nil {
		return pullCall{}, err
	}
	return pullCall{acks: acks, group: group, topic: topic, max: max, wait: wait}, nil
}

// decodeChain turns a ConsumeResult and its nextResult chain into one Ack
// per ConsumeResult that reports offsets, in chain order; a ConsumeResult
// with neither success nor fail offsets is skipped (the DDMQ SDK sends one
// after an empty pull). path names the chain's head; its links are
// path[1], path[2], ... in errors. A nil r is no acks. ct takes the tokens
// out of the group names.
func decodeChain(r *consumer.ConsumeResult_, path string, ct *callToken) ([]consume.Ack, error) {
	var acks []consume.Ack
	for i := 0; r != nil; i, r = i+1, r.NextResult_ {
		if i == maxAckChain {
			return nil, sdk.Errorf(sdk.CodeIllegal, "%s: a chain of more than %d ConsumeResults (nextResult); send at most %d at once",
				path, maxAckChain, maxAckChain)
		}
		if len(r.SuccessOffsets) == 0 && len(r.FailOffsets) == 0 {
			continue
		}
		at := path
		if i > 0 {
			at = path + "[" + strconv.Itoa(i) + "]"
		}
		c := r.Context
		if c == nil {
			return nil, sdk.Errorf(sdk.CodeIllegal, "%s.context: required with offsets", at)
		}
		group, err := ct.group(at+".context.groupId", c.GroupId)
		if err != nil {
			return nil, err
		}
		if err := checkTopic(at+".context.topic", c.Topic); err != nil {
			return nil, err
		}
		if c.Qid == "" {
			return nil, sdk.Errorf(sdk.CodeIllegal, "%s.context.qid: required", at)
		}
		if err := checkOffsets(at+".successOffsets", r.SuccessOffsets); err != nil {
			return nil, err
		}
		if err := checkOffsets(at+".failOffsets", r.FailOffsets); err != nil {
			return nil, err
		}
		acks = append(acks, consume.Ack{
			Group: group, Topic: c.Topic, Qid: c.Qid,
			Success: nilIfEmpty(r.SuccessOffsets), Fail: nilIfEmpty(r.FailOffsets),
		})
	}
	return acks, nil
}

// nilIfEmpty returns nil for an empty list: Thrift does not tell an
// absent list from an empty one.
func nilIfEmpty(offsets []int64) []int64 {
	if len(offsets) == 0 {
		return nil
	}
	return offsets
}

// checkOffsets refuses a negative offset.
func checkOffsets(field string, offsets []int64) error {
	for i, o := range offsets {
		if o < 0 {
			return sdk.Errorf(sdk.CodeIllegal, "%s[%d]: must be an offset >= 0; got %d", field, i, o)
		}
	}
	return nil
}

// fetchCall is a decoded fetch.
type fetchCall struct {
	group   string
	cluster string
	offsets map[string]map[string]int64
	max     int
	wait    time.Duration
}

// decodeFetch checks a FetchRequest. An absent or empty fetchOffset asks
// for the group's queues, as DDMQ's LowLevelCarreraConsumer's first fetch
// does; FetchRequest has no topic field, so those are the queues of the
// group's subscribed topics. groupId may carry the call's token, which ct
// takes out.
func decodeFetch(req *consumer.FetchRequest, lim consumeLimits, ct *callToken) (fetchCall, error) {
	const path = "request"
	if req == nil {
		return fetchCall{}, sdk.Errorf(sdk.CodeIllegal, "%s: required", path)
	}
	group, err := ct.group(path+".groupId", req.GroupId)
	if err != nil {
		return fetchCall{}, err
	}
	if len(req.FetchOffset) > 0 {
		if err := checkOffsetMap(path+".fetchOffset", req.FetchOffset); err != nil {
			return fetchCall{}, err
		}
	}
	max, err := batchSize(req.MaxBatchSize, path+".maxBatchSize", lim.maxBatch)
	if err != nil {
		return fetchCall{}, err
	}
	wait, err := linger(req.MaxLingerTime, path+".maxLingerTime", lim.maxWait)
	if err != nil {
		return fetchCall{}, err
	}
	return fetchCall{group: group, cluster: req.Cluster, offsets: req.FetchOffset, max: max, wait: wait}, nil
}

// decodeAckResult checks an AckResult, the low-level commit, and returns
// its group, whose token ct takes out.
func decodeAckResult(r *consumer.AckResult_, ct *callToken) (string, error) {
	const path = "result"
	if r == nil {
		return "", sdk.Errorf(sdk.CodeIllegal, "%s: required", path)
	}
	group, err := ct.group(path+".groupId", r.GroupId)
	if err != nil {
		return "", err
	}
	return group, checkOffsetMap(path+".offsets", r.Offsets)
}

// checkOffsetMap checks a topic -> qid -> offset map: at least one
// offset, valid topic names, non-empty qids, offsets >= 0.
func checkOffsetMap(field string, m map[string]map[string]int64) error {
	n := 0
	for topic, qids := range m {
		if err := checkTopic(field+"["+strconv.Quote(topic)+"]", topic); err != nil {
			return err
		}
		for qid, o := range qids {
			at := field + "[" + strconv.Quote(topic) + "][" + strconv.Quote(qid) + "]"
			if qid == "" {
				return sdk.Errorf(sdk.CodeIllegal, "%s: the qid must not be empty", at)
			}
			if o < 0 {
				return sdk.Errorf(sdk.CodeIllegal, "%s: must be an offset >= 0; got %d", at, o)
			}
			n++
		}
	}
	if n == 0 {
		return sdk.Errorf(sdk.CodeIllegal, "%s: required: topic -> qid -> offset, at least one", field)
	}
	return nil
}

// batchSize reads a maxBatchSize: DefaultPullBatch when absent or 0,
// capped to maxBatch; negative is code 11.
func batchSize(v *int32, field string, maxBatch int) (int, error) {
	n := DefaultPullBatch
	if v != nil && *v != 0 {
		if *v < 0 {
			return 0, sdk.Errorf(sdk.CodeIllegal, "%s: must be >= 0 (0 means %d); got %d", field, DefaultPullBatch, *v)
		}
		n = int(*v)
	}
	return max(1, min(n, maxBatch)), nil
}

// linger reads a maxLingerTime in milliseconds: DefaultPullLinger when
// absent, 0 for no wait, capped to maxWait; negative is code 11.
func linger(v *int32, field string, maxWait time.Duration) (time.Duration, error) {
	if v == nil {
		return min(DefaultPullLinger, maxWait), nil
	}
	if *v < 0 {
		return 0, sdk.Errorf(sdk.CodeIllegal, "%s: must be >= 0 milliseconds; got %d", field, *v)
	}
	return min(time.Duration(*v)*time.Millisecond, maxWait), nil
}

// checkTopic refuses a topic name that breaks core/topicname's rule,
// naming field.
func checkTopic(field, name string) error {
	if p := topicname.Problem(name); p != "" {
		return sdk.Errorf(sdk.CodeIllegal, "%s: %s", field, p)
	}
	return nil
}

// checkGroup refuses a group name that breaks the rule of topic names
// (core/topicname), naming field.
func checkGroup(field, name string) error {
	if p := topicname.GroupProblem(name); p != "" {
		return sdk.Errorf(sdk.CodeIllegal, "%s: %s", field, p)
	}
	return nil
}

// encodeMessages turns consumed messages into DDMQ's; never nil.
func encodeMessages(msgs []consume.Message) []*consumer.Message {
	out := make([]*consumer.Message, len(msgs))
	for i := range msgs {
		out[i] = encodeMessage(&msgs[i])
	}
	return out
}

// encodeMessage is DDMQ's form of m: a key that is absent is "", headers
// become properties (a repeated name keeps its last value), tags the tag.
func encodeMessage(m *consume.Message) *consumer.Message {
	out := &consumer.Message{Key: string(m.Key), Value: m.Value, Tag: m.Tags, Offset: m.Offset}
	if out.Value == nil {
		out.Value = []byte{}
	}
	if len(m.Headers) > 0 {
		out.Properties = make(map[string]string, len(m.Headers))
		for _, h := range m.Headers {
			out.Properties[h.Key] = string(h.Value)
		}
	}
	return out
}
