package consume

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/mqgate/mqgate/core/topicname"
)

// SubscriptionsTopic is the topic, on the default cluster, in which the
// gateways keep the groups' subscriptions made at run time. Its name
// starts with topicname.Prefix: no client may produce to it or read it.
const SubscriptionsTopic = topicname.Prefix + "subscriptions"

// subRecordVersion is the version of the record format written; a record
// of another version is skipped.
const subRecordVersion = 1

// A subRecord is one record of SubscriptionsTopic: group is subscribed to
// topic, or no longer is. Its key is "group/topic" (names never hold a
// '/'), so that a compacted topic keeps the latest record of each pair and
// two gateways changing different topics of one group never overwrite each
// other. The value is a small JSON object.
type subRecord struct {
	Group, Topic string
	// Subscribed is false for a removal.
	Subscribed bool
	// AtMs is when the change was made, milliseconds since the epoch; By
	// is the principal who made it. Both are for operators: the latest
	// record of a key wins whatever they say.
	AtMs int64
	By   string
	// Refresh marks a change written again unchanged, on a broker that
	// does not compact (see Subscriptions.refreshOnce): it stands only
	// where no newer change (a greater AtMs) was read.
	Refresh bool
}

// subValue is a subRecord's value on the wire.
type subValue struct {
	V          int    `json:"v"`
	Subscribed *bool  `json:"subscribed"`
	AtMs       int64  `json:"at_ms"`
	By         string `json:"by,omitempty"`
	Refresh    bool   `json:"refresh,omitempty"`
}

// key is the record's key.
func (r subRecord) key() []byte { return []byte(r.Group + "/" + r.Topic) }

// encode returns the record's key and value.
func (r subRecord) encode() (key, value []byte) {
	sub := r.Subscribed
	v, err := json.Marshal(subValue{V: subRecordVersion, Subscribed: &sub, AtMs: r.AtMs, By: r.By, Refresh: r.Refresh})
	if err != nil {
		// A struct of a bool, two ints and a string always encodes.
		panic(fmt.Sprintf("encoding a subscription record: %v", err))
	}
	return r.key(), v
}

// decodeSubRecord reads one record of SubscriptionsTopic. Whoever can
// write to the broker can write to the topic, so nothing is trusted: a
// record over maxBytes (key and value together), a key that is not two
// valid names, a value that is not one JSON object of this version with
// its fields, is an error, and its reader skips it.
func decodeSubRecord(key, value []byte, maxBytes int) (subRecord, error) {
	if n := len(key) + len(value); n > maxBytes {
		return subRecord{}, fmt.Errorf("%d bytes, over subscriptions.max_record_bytes (%d)", n, maxBytes)
	}
	group, topic, ok := strings.Cut(string(key), "/")
	if !ok {
		return subRecord{}, fmt.Errorf("key %q is not group/topic", key)
	}
	if p := topicname.GroupProblem(group); p != "" {
		return subRecord{}, fmt.Errorf("key %q: group: %s", key, p)
	}
	if p := topicname.Problem(topic); p != "" {
		return subRecord{}, fmt.Errorf("key %q: topic: %s", key, p)
	}
	var v subValue
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return subRecord{}, fmt.Errorf("value of %q: %w", key, err)
	}
	if dec.More() {
		return subRecord{}, fmt.Errorf("value of %q: more than one JSON value", key)
	}
	switch {
	case v.V != subRecordVersion:
		return subRecord{}, fmt.Errorf("value of %q: version %d; this gateway reads version %d", key, v.V, subRecordVersion)
	case v.Subscribed == nil:
		return subRecord{}, fmt.Errorf("value of %q: subscribed: required", key)
	case v.AtMs < 0:
		return subRecord{}, fmt.Errorf("value of %q: at_ms: %d is negative", key, v.AtMs)
	}
	return subRecord{Group: group, Topic: topic, Subscribed: *v.Subscribed, AtMs: v.AtMs, By: v.By, Refresh: v.Refresh}, nil
}
