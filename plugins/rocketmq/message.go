package rocketmq

import (
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/mqgate/mqgate/sdk"
)

// Properties mqgate reserves. A RocketMQ property is a unique key with a
// text value that may not contain the bytes 1 and 2 (the separators of the
// wire encoding), so what a property cannot hold travels encoded:
const (
	// propKey carries a key that KEYS cannot: binary, empty, or holding a
	// separator byte: "k" then the key in padded standard base64 (the "k"
	// because RocketMQ drops properties with empty values).
	propKey = "MQGATE_KEY"
	// propHeaders carries the whole header list, in order, when any header
	// cannot be a plain property (a repeated key, a binary value, a
	// reserved name): JSON [{"k": key, "v": base64 value}, ...].
	propHeaders = "MQGATE_HEADERS"
)

// systemProps are the property names RocketMQ itself sets or reads. A
// header by one of these names travels in propHeaders, and consumed
// properties by these names are not headers.
var systemProps = map[string]bool{
	"KEYS": true, "TAGS": true, "WAIT": true, "DELAY": true, "RETRY_TOPIC": true, "REAL_TOPIC": true,
	"REAL_QID": true, "TRAN_MSG": true, "PGROUP": true, "MIN_OFFSET": true, "MAX_OFFSET": true,
	"BUYER_ID": true, "ORIGIN_MESSAGE_ID": true, "TRANSFER_FLAG": true, "CORRECTION_FLAG": true,
	"MQ2_FLAG": true, "RECONSUME_TIME": true, "MSG_REGION": true, "TRACE_ON": true, "UNIQ_KEY": true,
	"MAX_RECONSUME_TIMES": true, "CONSUME_START_TIME": true, "TRAN_PREPARED_QUEUE_OFFSET": true,
	"TRANSACTION_CHECK_TIMES": true, "CHECK_IMMUNITY_TIME_IN_SECONDS": true, "SHARDING_KEY": true,
	"__transactionId__": true, "CORRELATION_ID": true, "REPLY_TO_CLIENT": true, "TTL": true,
	"ARRIVE_TIME": true, "MSG_TYPE": true, "CLUSTER": true, "TIMER_DELIVER_MS": true,
	"TIMER_DELAY_SEC": true, "TIMER_DELAY_MS": true, "INSTANCE_ID": true, "INNER_MULTI_DISPATCH": true,
	"INNER_MULTI_QUEUE_OFFSET": true, "__STARTDELIVERTIME": true, "UNIQ_KEY_SEQ": true,
}

// propertyText reports whether s can be a property key or value as it is.
func propertyText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsAny(s, "\x00\x01\x02")
}

func reservedProp(k string) bool {
	return systemProps[k] || strings.HasPrefix(k, "MQGATE_")
}

type wireHeader struct {
	K string `json:"k"`
	V []byte `json:"v"`
}

// toMessage builds the RocketMQ message for r (topic already namespaced).
func toMessage(topic string, r *sdk.Record) *primitive.Message {
	m := primitive.NewMessage(topic, r.Value)
	if r.Tags != "" {
		m.WithTag(r.Tags)
	}
	if r.Key != nil {
		if k := string(r.Key); k != "" && propertyText(k) {
			m.WithProperty(primitive.PropertyKeys, k)
		} else {
			m.WithProperty(propKey, "k"+base64.StdEncoding.EncodeToString(r.Key))
		}
	}
	if len(r.Headers) > 0 {
		if plainHeaders(r.Headers) {
			for _, h := range r.Headers {
				m.WithProperty(h.Key, string(h.Value))
			}
		} else {
			hs := make([]wireHeader, len(r.Headers))
			for i, h := range r.Headers {
				hs[i] = wireHeader{h.Key, h.Value}
			}
			b, _ := json.Marshal(hs) // strings and bytes always marshal
			m.WithProperty(propHeaders, string(b))
		}
	}
	return m
}

// plainHeaders reports whether every header can be a property of its own
// (RocketMQ drops properties with empty values).
func plainHeaders(hs []sdk.Header) bool {
	seen := make(map[string]bool, len(hs))
	for _, h := range hs {
		if h.Key == "" || len(h.Value) == 0 || seen[h.Key] || reservedProp(h.Key) || !propertyText(h.Key) || !propertyText(string(h.Value)) {
			return false
		}
		seen[h.Key] = true
	}
	return true
}

// toRecord converts a consumed message. Plain properties come back as
// headers sorted by key: RocketMQ keeps properties in a map.
func toRecord(m *primitive.MessageExt, topic string, r *route) sdk.Record {
	q := queue{m.Queue.BrokerName, m.Queue.QueueId}
	rec := sdk.Record{
		Topic:     topic,
		Qid:       q.qid(),
		Partition: r.partition(q),
		Offset:    m.QueueOffset,
		Value:     m.Body,
		Tags:      m.GetTags(),
		Timestamp: time.UnixMilli(m.BornTimestamp),
	}
	props := m.GetProperties()
	if k, ok := props[propKey]; ok {
		if b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(k, "k")); err == nil {
			rec.Key = b
		}
	} else if k, ok := props[primitive.PropertyKeys]; ok {
		rec.Key = []byte(k)
	}
	if hs, ok := props[propHeaders]; ok {
		var wire []wireHeader
		if json.Unmarshal([]byte(hs), &wire) == nil {
			for _, h := range wire {
				rec.Headers = append(rec.Headers, sdk.Header{Key: h.K, Value: h.V})
			}
		}
		return rec
	}
	for k, v := range props {
		if !reservedProp(k) {
			rec.Headers = append(rec.Headers, sdk.Header{Key: k, Value: []byte(v)})
		}
	}
	slices.SortFunc(rec.Headers, func(a, b sdk.Header) int { return strings.Compare(a.Key, b.Key) })
	return rec
}
