package thriftapi

import (
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
func checkProperties(path string, props map[string]string) error {
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
		h := m.HashId
		out.Partition, out.HashID = sdk.PartitionHash, &h
	default:
		out.Partition = sdk.PartitionRandom
	}
}
