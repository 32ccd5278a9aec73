package thriftapi

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/mqgate/mqgate/core/delay"
	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/core/topicname"
	"github.com/mqgate/mqgate/frontends/thrift/gen-go/producer"
	"github.com/mqgate/mqgate/sdk"
)

// sendDelaySync answers as DDMQ's producer proxy does: its checks, in its
// order, and its codes (DelayRequest.checkDelayMessage and
// ProxySendResult.java in DDMQ's carrera-producer); ids in the format of
// its delay service, Chronos (delay.ChronosID).

// DDMQ's DelayMessage actions (Actions.java in DDMQ's carrera-common,
// chronos/enums).
const (
	delayActionAdd    = 1
	delayActionCancel = 2
)

// The bounds DDMQ's producer proxy puts on a delay (DelayRequest.java).
const (
	// minTimestamp is the earliest timestamp accepted, in seconds since
	// the epoch: 2001-09-09, ten digits.
	minTimestamp = 1_000_000_000
	// maxIDTimestamp bounds a Chronos id's ten-digit times: the year 2286.
	maxIDTimestamp = 10_000_000_000
	// minLoopInterval is a loop's shortest interval (MIN_INTERVAL).
	minLoopInterval = 3 * time.Second
	// minExponentBase is an exponential loop's smallest base
	// (MIN_EXPONENT_BASE).
	minExponentBase = 2
)

// secondsBelow separates the units of DelayMessage.timestamp: a value
// below it is seconds since the epoch, as DDMQ's clients send it; others
// are milliseconds, which DDMQ refuses. 1e11 s is the year 5138.
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
// (docs/thrift.md, "sendDelaySync"): add (action 1) a delay (dmsgtype 2),
// loop (3) or exponential loop (4) with a Chronos id, or cancel (action 2)
// one by its Chronos id. now is the time of the call, max the longest
// delay accepted (delay.max), maxBytes the limit on the message's Size.
//
// Every error is an *sdk.Error naming the Thrift field
// ("delayMessage.interval: ..."), with DDMQ's code where DDMQ refuses the
// same (30 to 38), else 11, or 16 for a message over maxBytes. The topic is
// checked only as a name: sendDelaySync checks it further before.
func decodeDelayMessage(m *producer.DelayMessage, now time.Time, max time.Duration, maxBytes int) (delayRequest, error) {
	const path = "delayMessage"
	if m == nil {
		return delayRequest{}, sdk.Errorf(sdk.CodeIllegal, "%s: required", path)
	}
	if err := topicname.Validate(m.Topic); err != nil {
		return delayRequest{}, prefixed(path, err)
	}
	switch m.Action {
	case delayActionAdd:
	case delayActionCancel:
		return decodeDelayCancel(m, path)
	default:
		return delayRequest{}, sdk.Errorf(sdk.CodeDelayAction, "%s.action: must be 1 (add) or 2 (cancel); got %d", path, m.Action)
	}
	due, unit, err := decodeDelayTimestamp(m, path, now, max)
	if err != nil {
		return delayRequest{}, err
	}
	typ := delay.ChronosType(m.GetDmsgtype())
	switch typ {
	case delay.ChronosDelay, delay.ChronosLoop, delay.ChronosExponentialLoop:
	default:
		got := "unset"
		if m.Dmsgtype != nil {
			got = fmt.Sprintf("got %d", *m.Dmsgtype)
		}
		return delayRequest{}, sdk.Errorf(sdk.CodeDelayType, "%s.dmsgtype: must be 2 (delay), 3 (loop) or 4 (exponential loop); %s", path, got)
	}
	// The id as DDMQ's producer proxy builds it
	// (DelayRequest.buildAndUpdateMessage): the client's own id is not
	// read, its uuid is.
	id := delay.ChronosID{Timestamp: due.Unix(), Type: typ, Times: m.GetTimes(), Interval: m.GetInterval(), UUID: delay.ChronosUUID(m.GetUUID())}
	var loop *delay.Loop
	if typ == delay.ChronosDelay {
		if id.Times != 0 {
			return delayRequest{}, sdk.Errorf(sdk.CodeDelayLoopTimes, "%s.times: must be 0 or unset for a delay (dmsgtype 2); got %d", path, id.Times)
		}
		if id.Interval < 0 || id.Interval > math.MaxInt32 {
			return delayRequest{}, sdk.Errorf(sdk.CodeDelayInterval, "%s.interval: %d is out of range: a delay (dmsgtype 2) reads none, and its id holds 0 to %d", path, id.Interval, math.MaxInt32)
		}
		id.Expire = due.Add(delay.ChronosDelayExpiry).Unix()
	} else {
		if loop, err = decodeLoop(m, path, typ, unit, due); err != nil {
			return delayRequest{}, err
		}
		id.Expire = loop.Expire.Unix()
		if typ == delay.ChronosLoop {
			id.Interval = int64(loop.Interval / time.Second)
		}
	}
	if len(m.Body) == 0 {
		return delayRequest{}, sdk.Errorf(sdk.CodeIllegal, "%s.body: required to add, and not empty", path)
	}
	out := delay.Message{
		ID:      id.String(),
		Topic:   m.Topic,
		Msg:     produce.Message{Value: m.Body, Tags: m.Tags, Headers: headersOf(m.Properties), Partition: sdk.PartitionRandom},
		DueAt:   due,
		Loop:    loop,
		Chronos: true,
	}
	if n := out.Msg.Size(); n > maxBytes {
		return delayRequest{}, sdk.Errorf(sdk.CodeTooLarge,
			"%s is %d bytes (body, tags and properties), over the limit of %d bytes (http.max_message_bytes)", path, n, maxBytes)
	}
	if err := out.Validate(now, max); err != nil {
		return delayRequest{}, thriftFieldNames(path, err)
	}
	return delayRequest{msg: out}, nil
}

// decodeDelayTimestamp reads the fire time: seconds since the epoch, as
// DDMQ takes it, or milliseconds when 1e11 or more. It must be in 2001 or
// later and at most max from now; both are code 33, as in DDMQ.
func decodeDelayTimestamp(m *producer.DelayMessage, path string, now time.Time, max time.Duration) (time.Time, delayUnit, error) {
	if m.Timestamp == nil {
		return time.Time{}, 0, sdk.Errorf(sdk.CodeDelayTimestamp, "%s.timestamp: required to add: the fire time in seconds since the epoch", path)
	}
	ts := *m.Timestamp
	unit := delayUnit(time.Second)
	if ts >= secondsBelow {
		unit = delayUnit(time.Millisecond)
	}
	due := unit.at(ts)
	if due.Unix() < minTimestamp {
		return time.Time{}, 0, sdk.Errorf(sdk.CodeDelayTimestamp,
			"%s.timestamp: %d is before 2001 (%d seconds since the epoch); it is the fire time in seconds (or, from 1e11, milliseconds) since the epoch", path, ts, minTimestamp)
	}
	if ahead := due.Sub(now); ahead > max {
		return time.Time{}, 0, sdk.Errorf(sdk.CodeDelayTimestamp, "%s.timestamp: %d (%s) is %s from now, beyond delay.max (%s)",
			path, ts, unit, ahead.Round(time.Second), max)
	}
	if due.Add(delay.ChronosDelayExpiry).Unix() >= maxIDTimestamp {
		return time.Time{}, 0, sdk.Errorf(sdk.CodeDelayTimestamp, "%s.timestamp: %d (%s) is past what a Chronos id's ten digits hold", path, ts, unit)
	}
	return due, unit, nil
}

// decodeLoop reads a loop's times, expire and interval (an exponential
// loop's base), as DDMQ's producer proxy checks them: times at least 1
// (code 35), expire after the timestamp (36), an interval of 3 seconds or
// more (37), a base of 2 or more (38). Times, interval and base must fit
// the Java ints Chronos reads them into. Expire and a loop's interval are
// in the unit of the timestamp; a base has none.
func decodeLoop(m *producer.DelayMessage, path string, typ delay.ChronosType, unit delayUnit, due time.Time) (*delay.Loop, error) {
	times := m.GetTimes()
	if times < 1 || times > math.MaxInt32 {
		return nil, sdk.Errorf(sdk.CodeDelayLoopTimes, "%s.times: must be 1 to %d for a loop (dmsgtype %d); got %d", path, math.MaxInt32, typ, times)
	}
	ts, expire := *m.Timestamp, m.GetExpire()
	if expire <= ts {
		return nil, sdk.Errorf(sdk.CodeDelayExpire, "%s.expire: must be after timestamp %d for a loop (dmsgtype %d), in %s as timestamp is; got %d", path, ts, typ, unit, expire)
	}
	l := &delay.Loop{Times: times, Expire: unit.at(expire)}
	if l.Expire.Unix() >= maxIDTimestamp {
		return nil, sdk.Errorf(sdk.CodeDelayExpire, "%s.expire: %d (%s) is past what a Chronos id's ten digits hold", path, expire, unit)
	}
	interval := m.GetInterval()
	if typ == delay.ChronosExponentialLoop {
		if interval < minExponentBase || interval > math.MaxInt32 {
			return nil, sdk.Errorf(sdk.CodeDelayExponentBase, "%s.interval: the base of an exponential loop (dmsgtype 4) must be %d to %d; got %d", path, minExponentBase, math.MaxInt32, interval)
		}
		l.Base = interval
		return l, nil
	}
	perSecond := int64(time.Second / time.Duration(unit))
	least := int64(minLoopInterval / time.Duration(unit))
	if interval < least || interval/perSecond > math.MaxInt32 {
		return nil, sdk.Errorf(sdk.CodeDelayInterval, "%s.interval: must be %d to %d for a loop (dmsgtype 3), in %s as timestamp is; got %d",
			path, least, math.MaxInt32*perSecond, unit, interval)
	}
	l.Interval = time.Duration(interval) * time.Duration(unit)
	return l, nil
}

// decodeDelayCancel reads a cancel: an id in Chronos's format (code 30),
// of a type DDMQ adds (31), of its one inner topic (34), as DDMQ's
// producer proxy checks it.
func decodeDelayCancel(m *producer.DelayMessage, path string) (delayRequest, error) {
	id := m.GetUniqDelayMsgId()
	if strings.TrimSpace(id) == "" {
		return delayRequest{}, sdk.Errorf(sdk.CodeDelayID, "%s.uniqDelayMsgId: required to cancel", path)
	}
	c, err := delay.ParseChronosID(id)
	if err != nil {
		return delayRequest{}, thriftFieldNames(path, err)
	}
	switch c.Type {
	case delay.ChronosDelay, delay.ChronosLoop, delay.ChronosExponentialLoop:
	default:
		return delayRequest{}, sdk.Errorf(sdk.CodeDelayType, "%s.uniqDelayMsgId: its type %d is not 2 (delay), 3 (loop) or 4 (exponential loop)", path, c.Type)
	}
	if c.InnerTopicSeq != 0 {
		return delayRequest{}, sdk.Errorf(sdk.CodeDelayInnerTopicSeq,
			"%s.uniqDelayMsgId: its innerTopicSeq %d names an inner topic mqgate does not have: it has one, 0", path, c.InnerTopicSeq)
	}
	return delayRequest{cancel: true, msg: delay.Message{ID: id, Topic: m.Topic}}, nil
}

// delayFieldNames maps the field names of (*delay.Message).Validate's
// errors, the HTTP API's, to the DelayMessage fields they come from.
var delayFieldNames = strings.NewReplacer(
	"loop.interval_ms", "interval",
	"loop.base", "interval",
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
