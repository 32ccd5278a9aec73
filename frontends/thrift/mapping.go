package thriftapi

import (
	"errors"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/mqgate/mqgate/core/delay"
	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/core/topicname"
	"github.com/mqgate/mqgate/frontends/thrift/gen-go/producer"
	"github.com/mqgate/mqgate/sdk"
)

// decodeMessage turns a client's Thrift message into its topic and the
// message to produce (docs/thrift.md, "Message mapping"). path names the
// message in errors: "message", or "messages[3]" in a batch. strict
// places it by partitionId and hashId as DDMQ does (placeAsDDMQ); without
// it, hashId 0 means "not set" and a partitionId other than -2, -1 or a
// partition is refused.
//
// Every error is an *sdk.Error naming the offending field: code 11 for an
// illegal message, 16 for one whose Size exceeds maxBytes.
func decodeMessage(m *producer.Message, path string, maxBytes int, strict bool) (string, produce.Message, error) {
	if m == nil {
		return "", produce.Message{}, sdk.Errorf(sdk.CodeIllegal, "%s: required", path)
	}
	if err := topicname.Validate(m.Topic); err != nil {
		return "", produce.Message{}, prefixed(path, err)
	}
	out := produce.Message{Tags: m.Tags}
	if m.Key != "" {
		out.Key = []byte(m.Key)
	}
	// DDMQ's pproxy refuses a message of 0 bytes, body or value
	// (producer/CarreraRequest.java, checkValid).
	switch {
	case m.Body != nil && len(m.Body) == 0:
		return "", produce.Message{}, sdk.Errorf(sdk.CodeIllegal, "%s.body: empty; a message needs at least one byte", path)
	case m.Body != nil:
		out.Value = m.Body
	case m.Value != "":
		out.Value = []byte(m.Value)
	default:
		return "", produce.Message{}, sdk.Errorf(sdk.CodeIllegal, "%s.body: required; set body (binary) or value (string)", path)
	}
	if err := checkProperties(path, m.Properties); err != nil {
		return "", produce.Message{}, err
	}
	switch p := m.PartitionId; {
	case strict:
		placeAsDDMQ(&out, m)
	case p >= 0, p == sdk.PartitionRandom:
		out.Partition = p
	case p == sdk.PartitionHash:
		out.Partition = p
		// DDMQ clients that never set hashId send 0: placing all of them
		// on one partition would be a surprise, so 0 means "not set".
		if m.HashId != 0 {
			h := m.HashId
			out.HashID = &h
		}
	default:
		return "", produce.Message{}, sdk.Errorf(sdk.CodeIllegal,
			"%s.partitionId: must be -1 (by hashId or key), -2 (random) or a partition >= 0; got %d", path, p)
	}
	out.Headers = headersOf(m.Properties)
	if n := out.Size(); n > maxBytes {
		return "", produce.Message{}, sdk.Errorf(sdk.CodeTooLarge,
			"%s is %d bytes (key, value, tags and properties), over the limit of %d bytes (http.max_message_bytes)", path, n, maxBytes)
	}
	return m.Topic, out, nil
}

// headersOf turns a message's properties into headers sorted by name;
// nil when there are none.
func headersOf(props map[string]string) []sdk.Header {
	if len(props) == 0 {
		return nil
	}
	headers := make([]sdk.Header, 0, len(props))
	for k, v := range props {
		headers = append(headers, sdk.Header{Key: k, Value: []byte(v)})
	}
	// Go maps have no order; sorting makes records reproducible.
	slices.SortFunc(headers, func(a, b sdk.Header) int { return strings.Compare(a.Key, b.Key) })
	return headers
}

// prefixed puts path in front of an *sdk.Error's message, which starts with
// the field it names ("topic: ...").
func prefixed(path string, err error) error {
	var e *sdk.Error
	if errors.As(err, &e) {
		return &sdk.Error{Code: e.Code, Msg: path + "." + e.Msg}
	}
	return err
}

// DDMQ's DelayMessage actions and types (seed 001).
const (
	delayActionAdd    = 1
	delayActionCancel = 2
	delayTypeDelay    = 2
	delayTypeLoop     = 3
)

// secondsBelow separates the units of DelayMessage.timestamp: a value
// below it is seconds since the epoch, as DDMQ's chronos clients send it;
// others are milliseconds. 1e11 ms is March 1973; 1e11 s is the year 5138.
const secondsBelow = 1e11

// delayRequest is a decoded sendDelaySync call: a message to add, or, with
// cancel, the Topic and ID of msg to cancel.
type delayRequest struct {
	cancel bool
	msg    delay.Message
}

// delayUnit is the unit of a DelayMessage's timestamp, interval and
// expire: seconds or milliseconds, told by the timestamp's size.
type delayUnit time.Duration

func (u delayUnit) String() string {
	if time.Duration(u) == time.Second {
		return "seconds"
	}
	return "milliseconds"
}

// at is the time v units after the epoch.
func (u delayUnit) at(v int64) time.Time {
	if time.Duration(u) == time.Second {
		return time.Unix(v, 0)
	}
	return time.UnixMilli(v)
}

// decodeDelayMessage turns a sendDelaySync call into what it asks for
// (docs/thrift.md, "sendDelaySync"): add (action 1) a delay (dmsgtype 2,
// the default) or loop (dmsgtype 3) message, or cancel (action 2) one by
// uniqDelayMsgId. now is the time of the call, max the longest delay
// accepted (delay.max), maxBytes the limit on the message's Size.
//
// Every error is an *sdk.Error naming the Thrift field
// ("delayMessage.interval: ..."): code 11 for illegal input, 16 for a
// message over maxBytes. The message is checked with
// (*delay.Message).Validate, whose field names are mapped to Thrift's.
func decodeDelayMessage(m *producer.DelayMessage, now time.Time, max time.Duration, maxBytes int) (delayRequest, error) {
	const path = "delayMessage"
	if m == nil {
		return delayRequest{}, sdk.Errorf(sdk.CodeIllegal, "%s: required", path)
	}
	if err := topicname.Validate(m.Topic); err != nil {
		return delayRequest{}, prefixed(path, err)
	}
	id := m.GetUniqDelayMsgId()
	switch m.Action {
	case delayActionAdd:
	case delayActionCancel:
		if id == "" {
			return delayRequest{}, sdk.Errorf(sdk.CodeIllegal, "%s.uniqDelayMsgId: required to cancel", path)
		}
		if err := delay.ValidateID(id); err != nil {
			return delayRequest{}, thriftFieldNames(path, err)
		}
		return delayRequest{cancel: true, msg: delay.Message{ID: id, Topic: m.Topic}}, nil
	default:
		return delayRequest{}, sdk.Errorf(sdk.CodeIllegal, "%s.action: must be 1 (add) or 2 (cancel); got %d", path, m.Action)
	}
	typ := int32(delayTypeDelay)
	if m.Dmsgtype != nil {
		typ = *m.Dmsgtype
	}
	if typ != delayTypeDelay && typ != delayTypeLoop {
		return delayRequest{}, sdk.Errorf(sdk.CodeIllegal, "%s.dmsgtype: must be 2 (delay) or 3 (loop); got %d", path, typ)
	}
	if m.Timestamp == nil {
		return delayRequest{}, sdk.Errorf(sdk.CodeIllegal, "%s.timestamp: required to add: the fire time in milliseconds since the epoch", path)
	}
	ts := *m.Timestamp
	if ts <= 0 {
		return delayRequest{}, sdk.Errorf(sdk.CodeIllegal,
			"%s.timestamp: must be the fire time in milliseconds (or, below 1e11, seconds) since the epoch; got %d", path, ts)
	}
	unit := delayUnit(time.Millisecond)
	if ts < secondsBelow {
		unit = delayUnit(time.Second)
	}
	due := unit.at(ts)
	if ahead := due.Sub(now); ahead > max {
		return delayRequest{}, sdk.Errorf(sdk.CodeIllegal, "%s.timestamp: %d (%s) is %s from now, beyond delay.max (%s)",
			path, ts, unit, ahead.Round(time.Second), max)
	}
	if m.Body == nil {
		return delayRequest{}, sdk.Errorf(sdk.CodeIllegal, "%s.body: required to add", path)
	}
	out := delay.Message{
		ID:    id,
		Topic: m.Topic,
		Msg:   produce.Message{Value: m.Body, Tags: m.Tags, Headers: headersOf(m.Properties), Partition: sdk.PartitionHash},
		DueAt: due,
	}
	if n := out.Msg.Size(); n > maxBytes {
		return delayRequest{}, sdk.Errorf(sdk.CodeTooLarge,
			"%s is %d bytes (body, tags and properties), over the limit of %d bytes (http.max_message_bytes)", path, n, maxBytes)
	}
	if typ == delayTypeLoop {
		l, err := decodeLoop(m, path, ts, unit, due)
		if err != nil {
			return delayRequest{}, err
		}
		out.Loop = l
	}
	if err := out.Validate(now, max); err != nil {
		return delayRequest{}, thriftFieldNames(path, err)
	}
	return delayRequest{msg: out}, nil
}

// decodeLoop reads a loop's interval, times and expire, in the unit of
// the timestamp ts; an expire <= 0 means none.
func decodeLoop(m *producer.DelayMessage, path string, ts int64, unit delayUnit, due time.Time) (*delay.Loop, error) {
	interval := m.GetInterval()
	if interval <= 0 {
		return nil, sdk.Errorf(sdk.CodeIllegal, "%s.interval: must be positive for a loop (dmsgtype 3), in %s as timestamp is; got %d", path, unit, interval)
	}
	if interval > int64(math.MaxInt64/time.Duration(unit)) {
		return nil, sdk.Errorf(sdk.CodeIllegal, "%s.interval: %d %s is out of range", path, interval, unit)
	}
	if times := m.GetTimes(); times < 1 {
		return nil, sdk.Errorf(sdk.CodeIllegal, "%s.times: must be at least 1 for a loop (dmsgtype 3); got %d", path, times)
	}
	l := &delay.Loop{Interval: time.Duration(interval) * time.Duration(unit), Times: m.GetTimes()}
	if e := m.GetExpire(); e > 0 {
		l.Expire = unit.at(e)
		if l.Expire.Before(due) {
			return nil, sdk.Errorf(sdk.CodeIllegal, "%s.expire: %d is before timestamp %d (both in %s)", path, e, ts, unit)
		}
	}
	return l, nil
}

// delayFieldNames maps the field names of (*delay.Message).Validate's
// errors, the HTTP API's, to the DelayMessage fields they come from.
var delayFieldNames = strings.NewReplacer(
	"loop.interval_ms", "interval",
	"loop.times", "times",
	"loop.expire_at_ms", "expire",
)

// thriftFieldNames rewrites an *sdk.Error from Validate in Thrift's
// terms, under path.
func thriftFieldNames(path string, err error) error {
	var e *sdk.Error
	if !errors.As(err, &e) {
		return err
	}
	msg := delayFieldNames.Replace(e.Msg)
	if rest, ok := strings.CutPrefix(msg, "id:"); ok {
		msg = "uniqDelayMsgId:" + rest
	}
	for _, field := range []string{"uniqDelayMsgId:", "interval:", "times:", "expire:", "topic:"} {
		if strings.HasPrefix(msg, field) {
			return &sdk.Error{Code: e.Code, Msg: path + "." + msg}
		}
	}
	return &sdk.Error{Code: e.Code, Msg: path + ": " + msg}
}
