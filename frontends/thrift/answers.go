package thriftapi

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/mqgate/mqgate/core/consume"
	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/frontends/thrift/gen-go/producer"
	"github.com/mqgate/mqgate/sdk"
)

// DDMQ's answers (docs/thrift.md, "DDMQ's answers"). Where mqgate's own
// answer would differ from what DDMQ's producer proxy (pproxy) or consumer
// proxy (cproxy) answers, both services answer as DDMQ does, so that a
// client written against DDMQ behaves as it did; each rule below names the
// DDMQ source it follows. Where DDMQ's answer loses information (it calls
// a mistake a success), Options.Answers may choose mqgate's instead.

// Answers of Options.Answers (thrift.ddmq_answers).
const (
	// AnswersStrict answers as DDMQ's proxies do; the default.
	AnswersStrict = "strict"
	// AnswersInformative answers as mqgate would on its own where DDMQ's
	// answer loses information: an empty sendBatchSync is code 11, an
	// explicit partition the topic does not have is code 11, hashId 0
	// means "not set" (placing by key), an ack({}) is false, and a submit
	// of offsets not handed out is a PullException.
	AnswersInformative = "informative"
)

// heartbeatTopic is the topic of DDMQ's heartbeat: a sendSync to it is
// answered OK at once and produces nothing (pproxy
// server/ProducerAsyncServerImpl.java, HEARTBEAT_TOPIC, sendSync).
const heartbeatTopic = "carrera_heartbeat"

// reservedProperties are the property names DDMQ's pproxy refuses with
// code 11 (utils/MsgCheckUtils.java, checkProperties): RocketMQ's own, the
// STRING_HASH_SET of MessageConst.java in DDMQ's rocketmq fork. The match
// is exact, case and all, as Java's HashSet.contains is.
var reservedProperties = map[string]bool{
	"TRACE_ON": true, "MSG_REGION": true, "KEYS": true, "TAGS": true,
	"WAIT": true, "DELAY": true, "RETRY_TOPIC": true, "REAL_TOPIC": true,
	"REAL_QID": true, "TRAN_MSG": true, "PGROUP": true, "MIN_OFFSET": true,
	"MAX_OFFSET": true, "BUYER_ID": true, "ORIGIN_MESSAGE_ID": true,
	"TRANSFER_FLAG": true, "CORRECTION_FLAG": true, "MQ2_FLAG": true,
	"RECONSUME_TIME": true, "UNIQ_KEY": true, "MAX_RECONSUME_TIMES": true,
	"CONSUME_START_TIME": true,
}

// checkProperties refuses with code 11 what DDMQ's pproxy refuses
// (utils/MsgCheckUtils.java, checkProperties): a reserved name, and a name
// or value that is empty once trimmed as Java's String.trim trims. It
// names the first such property in name order, so that the answer does
// not depend on the map's order.
func checkProperties(path msgPath, props map[string]string) error {
	bad, why := "", ""
	for k, v := range props {
		var w string
		switch {
		case javaBlank(k):
			w = "an empty name (only whitespace) is not allowed"
		case reservedProperties[k]:
			w = "the name is RocketMQ's own; DDMQ refuses it"
		case javaBlank(v):
			w = "an empty value (only whitespace) is not allowed"
		default:
			continue
		}
		if why == "" || k < bad {
			bad, why = k, w
		}
	}
	if why == "" {
		return nil
	}
	return sdk.Errorf(sdk.CodeIllegal, "%s.properties[%q]: %s", path, bad, why)
}

// javaBlank reports whether s is empty once Java's String.trim has trimmed
// it: whether every character is U+0000 to U+0020. Those are one byte
// each in UTF-8, and no other character's encoding holds such a byte.
func javaBlank(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] > ' ' {
			return false
		}
	}
	return true
}

// placeAsDDMQ sets out's partition choice from a message's partitionId
// and hashId as DDMQ's pproxy places it (producer/RmqSender.java,
// RMQ_MQ_SELECTOR; server/ProducerAsyncServerImpl.java, sendBatchSync):
//
//   - partitionId >= 0: partitionId % n, a partition the topic does not
//     have included (RmqSender logs it and takes the remainder, the batch
//     path groups by it);
//   - partitionId -1: abs(hashId) % n, hashId 0 on partition 0 and the key
//     not looked at; for hashId -2^63, whose absolute value Java cannot
//     hold, 2^63 % n, the batch path's Math.abs((int) (hashId % n));
//   - any other partitionId: a random partition (RandomUtils.pick).
//
// produce.Placement takes the absolute value of HashID, and a backend
// places PartitionHash by hash % n, on Kafka partitions and RocketMQ's
// write queues alike.
func placeAsDDMQ(out *produce.Message, m *producer.Message) {
	switch p := m.PartitionId; {
	case p >= 0:
		h := int64(p)
		out.Partition, out.HashID = sdk.PartitionHash, &h
	case p == sdk.PartitionHash:
		// m's own field: m lives as long as the call, and nothing
		// writes it; a copy was an allocation a message.
		out.Partition, out.HashID = sdk.PartitionHash, &m.HashId
	default:
		out.Partition = sdk.PartitionRandom
	}
}

// ackRefusal is whether err is an ack DDMQ's cproxy would skip rather than
// refuse: an offset not handed out here or already acked (code 11), or a
// qid or session this gateway does not hold (19).
func ackRefusal(err error) bool {
	code := sdk.CodeOf(err)
	return code == sdk.CodeIllegal || code == sdk.CodeNotFound
}

// applyAcks applies acks, one per ConsumeResult of a chain, as DDMQ's
// cproxy applies a chain (server/ConsumerServiceImpl.java, doSubmit;
// actions/util/UpstreamGroupJobBuffer.java, processResult): every offset
// it can. A qid this gateway does not own and offsets not handed out here
// (or already acked) are skipped, and logged at Warn as cproxy logs
// "offset not exists"; the first such refusal is returned in refused, for
// callers that report it. Any other error is returned in err at once,
// with what came before it applied.
func (h *consumerService) applyAcks(ctx context.Context, acks []consume.Ack, timeout time.Duration) (refused, err error) {
	for _, a := range acks {
		if both := successAlsoFailed(&a); len(both) > 0 {
			// cproxy takes the successes first; the failure finds the
			// offset gone and is skipped.
			h.log.Warn("ack skipped: offsets both succeeded and failed count as successes",
				"group", a.Group, "topic", a.Topic, "qid", a.Qid, "offsets", firstOffsets(both), "skipped", len(both))
			refused = cmp.Or(refused, error(sdk.Errorf(sdk.CodeIllegal,
				"offset %d of qid %s is in both successOffsets and failOffsets; it counts as a success", both[0], a.Qid)))
		}
		err := h.consumer.Ack(ctx, []consume.Ack{a})
		switch {
		case err == nil:
			continue
		case !ackRefusal(err):
			return refused, h.timedOut(ctx, fmt.Errorf("acking: %w", err), timeout)
		case sdk.CodeOf(err) == sdk.CodeNotFound:
			h.log.Warn("ack skipped: qid not held here", "group", a.Group, "topic", a.Topic, "qid", a.Qid, "error", err)
			refused = cmp.Or(refused, err)
			continue
		}
		// One offset refuses the whole Ack: apply them one by one, within
		// the call's deadline however many a client lists.
		var skipped []int64
		for _, one := range singleOffsets(a) {
			if err := ctx.Err(); err != nil {
				return refused, h.timedOut(ctx, fmt.Errorf("acking: %w", err), timeout)
			}
			err := h.consumer.Ack(ctx, []consume.Ack{one.ack})
			switch {
			case err == nil:
			case !ackRefusal(err):
				return refused, h.timedOut(ctx, fmt.Errorf("acking: %w", err), timeout)
			default:
				skipped = append(skipped, one.offset)
				refused = cmp.Or(refused, err)
			}
		}
		if len(skipped) > 0 {
			h.log.Warn("ack skipped: offsets not handed out here, or already acked or failed",
				"group", a.Group, "topic", a.Topic, "qid", a.Qid, "offsets", firstOffsets(skipped), "skipped", len(skipped))
		}
	}
	return refused, nil
}

// successAlsoFailed takes out of a.Fail the offsets a.Success holds too,
// and returns them.
func successAlsoFailed(a *consume.Ack) []int64 {
	if len(a.Success) == 0 || len(a.Fail) == 0 {
		return nil
	}
	success := make(map[int64]bool, len(a.Success))
	for _, o := range a.Success {
		success[o] = true
	}
	var both, fail []int64
	for _, o := range a.Fail {
		if success[o] {
			both = append(both, o)
		} else {
			fail = append(fail, o)
		}
	}
	if len(both) > 0 {
		a.Fail = fail
	}
	return both
}

// offsetAck is an Ack of one offset.
type offsetAck struct {
	offset int64
	ack    consume.Ack
}

// singleOffsets splits a into one Ack per offset, successes first.
func singleOffsets(a consume.Ack) []offsetAck {
	out := make([]offsetAck, 0, len(a.Success)+len(a.Fail))
	for _, o := range a.Success {
		out = append(out, offsetAck{o, consume.Ack{Group: a.Group, Topic: a.Topic, Qid: a.Qid, Success: []int64{o}}})
	}
	for _, o := range a.Fail {
		out = append(out, offsetAck{o, consume.Ack{Group: a.Group, Topic: a.Topic, Qid: a.Qid, Fail: []int64{o}}})
	}
	return out
}

// maxLoggedOffsets bounds the offsets one log line lists.
const maxLoggedOffsets = 20

// firstOffsets returns at most maxLoggedOffsets of offsets.
func firstOffsets(offsets []int64) []int64 {
	return offsets[:min(len(offsets), maxLoggedOffsets)]
}

// countOffsets is the number of offsets of a topic -> qid -> offset map.
func countOffsets(m map[string]map[string]int64) int {
	n := 0
	for _, qids := range m {
		n += len(qids)
	}
	return n
}
