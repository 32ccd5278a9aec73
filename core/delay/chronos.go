package delay

import (
	"crypto/rand"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/sdk"
)

// DDMQ's delay service, Chronos, names a delay message by a
// uniqDelayMsgId that spells out its schedule:
//
//	timestamp-type-expire-times-timed-interval-innerTopicSeq-uuid
//	1507609164-2-1507781964-0-0-0-0-14f22520-ad72-11e7-91be-6ee54da579e3
//
// (InternalKey.java in DDMQ's carrera-common, chronos/model: the producer
// proxy builds it in DelayRequest.buildAndUpdateMessage and checks an id to
// cancel against a pattern in DelayRequest.checkDelayMessage; Chronos
// parses it back with InternalKey(String).) A fired message carries the id
// of its firing as its key (MqPushService.send in carrera-chronos): a loop's
// firings differ in timestamp and timed, the count of firings before.

// ChronosType is the type field of a Chronos id, DelayMessage.dmsgtype
// (MsgTypes.java in DDMQ's carrera-common, chronos/enums).
type ChronosType int32

// The Chronos types a client may add. Chronos's others, 0 (its cancel
// tombstones) and 1 (real time), are refused.
const (
	// ChronosDelay fires once, at its timestamp.
	ChronosDelay ChronosType = 2
	// ChronosLoop fires at its timestamp, then every interval seconds.
	ChronosLoop ChronosType = 3
	// ChronosExponentialLoop fires at its timestamp, then after interval^1,
	// interval^2, ... seconds, each gap at most a day
	// (InternalKey.nextUniqDelayMsgId).
	ChronosExponentialLoop ChronosType = 4
)

// ChronosProperty is the property Chronos adds to every message it fires,
// with its own name as its value (PROPERTY_KEY_FROM_CHRONOS in DDMQ's
// carrera-common Constant.java; added in MqPushService.send).
const ChronosProperty = "from_chronos"

// ChronosDelayExpiry is how long after its timestamp the expire of a plain
// delay's id lies (TIME_AFTER_TIMESTAMP in DelayRequest.java); Chronos
// reads no more into it.
const ChronosDelayExpiry = 2 * 24 * time.Hour

// chronosMaxGap bounds the gap between an exponential loop's firings
// (ONE_DAY_SECONDS in InternalKey.java).
const chronosMaxGap = 24 * time.Hour

// ChronosID is a Chronos uniqDelayMsgId, field by field.
type ChronosID struct {
	// Timestamp is when this firing is due, in seconds since the epoch:
	// ten digits.
	Timestamp int64
	Type      ChronosType
	// Expire is, for a loop, the time after which it fires no more; for a
	// plain delay, Timestamp plus ChronosDelayExpiry. Seconds since the
	// epoch, ten digits.
	Expire int64
	// Times is how often a loop fires; 0 for a plain delay.
	Times int64
	// Timed is how often the message fired before this firing.
	Timed int64
	// Interval is a loop's gap in seconds, an exponential loop's base; for
	// a plain delay whatever the client sent.
	Interval int64
	// InnerTopicSeq numbers the DDMQ topic that held the message on its
	// way to Chronos. mqgate has one such place: 0.
	InnerTopicSeq int64
	// UUID is 36 characters of [0-9a-z] in groups of 8-4-4-4-12.
	UUID string
}

// String is the id in Chronos's format. Timestamp and Expire take ten
// digits, zeros in front of a time before 2001 (which only an id to cancel
// can hold), so that the id reads back.
func (c ChronosID) String() string {
	return fmt.Sprintf("%010d-%d-%010d-%d-%d-%d-%d-%s", c.Timestamp, c.Type, c.Expire, c.Times, c.Timed, c.Interval, c.InnerTopicSeq, c.UUID)
}

// Firing is the id the message carries as its key when it fires at at,
// after k firings: Chronos's id with Timestamp and Timed advanced.
func (c ChronosID) Firing(at time.Time, k int64) ChronosID {
	c.Timestamp, c.Timed = at.Unix(), k
	return c
}

// identity names the message across its firings: the id without the
// firing's timestamp and count. Two ids with the same identity are the
// same loop, whichever firing's key a consumer cancels with; a plain
// delay's timestamp is in its expire.
func (c ChronosID) identity() string {
	return fmt.Sprintf("*-%d-%d-%d-*-%d-%d-%s", c.Type, c.Expire, c.Times, c.Interval, c.InnerTopicSeq, c.UUID)
}

// ParseChronosID reads an id in Chronos's format: what DDMQ's producer
// proxy accepts to cancel (its pattern
// ^\d{10}-\d-\d{10}-\d+-\d+-\d+-\d+-[0-9a-z]{8}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{12}$)
// and Chronos can parse back (times, timed, interval and innerTopicSeq
// are Java ints there). Anything else is an *sdk.Error with code 30
// (sdk.CodeDelayID) naming the field "id". The type is not checked.
func ParseChronosID(s string) (ChronosID, error) {
	bad := func(why string, args ...any) (ChronosID, error) {
		return ChronosID{}, sdk.Errorf(sdk.CodeDelayID, "id: %s; a Chronos uniqDelayMsgId is timestamp-type-expire-times-timed-interval-innerTopicSeq-uuid, like 1507609164-2-1507781964-0-0-0-0-14f22520-ad72-11e7-91be-6ee54da579e3", fmt.Sprintf(why, args...))
	}
	if len(s) > MaxIDBytes {
		return bad("%d bytes, longer than any", len(s))
	}
	parts := strings.Split(s, "-")
	if len(parts) != 12 {
		return bad("%d fields separated by '-', not 12 (7 numbers and a UUID's 5 groups)", len(parts))
	}
	names := [7]string{"timestamp", "type", "expire", "times", "timed", "interval", "innerTopicSeq"}
	var nums [7]int64
	for i, p := range parts[:7] {
		if p == "" || strings.Trim(p, "0123456789") != "" {
			return bad("its %s %q is not a number of decimal digits", names[i], p)
		}
		switch i {
		case 0, 2:
			if len(p) != 10 {
				return bad("its %s %q has %d digits, not 10 (seconds since the epoch)", names[i], p, len(p))
			}
		case 1:
			if len(p) != 1 {
				return bad("its type %q has %d digits, not 1", p, len(p))
			}
		}
		n, err := strconv.ParseInt(p, 10, 64)
		if err != nil || i >= 3 && n > math.MaxInt32 {
			return bad("its %s %q is out of range", names[i], p)
		}
		nums[i] = n
	}
	uuid := strings.Join(parts[7:], "-")
	if !isChronosUUID(uuid) {
		return bad("its uuid %q is not 36 characters of [0-9a-z] in groups of 8-4-4-4-12", uuid)
	}
	return ChronosID{
		Timestamp: nums[0], Type: ChronosType(nums[1]), Expire: nums[2], Times: nums[3],
		Timed: nums[4], Interval: nums[5], InnerTopicSeq: nums[6], UUID: uuid,
	}, nil
}

// isChronosUUID reports whether s is 36 characters of [0-9a-z] in groups
// of 8-4-4-4-12, as DDMQ's pattern wants a uuid.
func isChronosUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'z') {
				return false
			}
		}
	}
	return true
}

// ChronosUUID is uuid as a Chronos id wants it, lower case, when it is a
// UUID (DDMQ's SDKs send a new one with each message); otherwise a new
// random one.
func ChronosUUID(uuid string) string {
	if u := strings.ToLower(uuid); isChronosUUID(u) {
		return u
	}
	var b [16]byte
	_, _ = rand.Read(b[:])  // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// identityOf is what cancels match: a Chronos id's identity, so that the
// key of any firing of a loop cancels the loop, and any other id as it is.
func identityOf(id string) string {
	if c, err := ParseChronosID(id); err == nil {
		return c.identity()
	}
	return id
}

// exponentialGap is the gap before firing k (k >= 1) of an exponential
// loop of base b: b^k seconds, at most a day. Chronos computes b^k as a
// double and takes a day for anything over a day or not positive.
func exponentialGap(b, k int64) time.Duration {
	const day = int64(chronosMaxGap / time.Second)
	p := int64(1)
	for range k {
		if p > day/b {
			return chronosMaxGap
		}
		p *= b
	}
	return time.Duration(min(p, day)) * time.Second
}

// chronosMessage is msg as Chronos delivers it: keyed by id, with
// ChronosProperty set (replacing the client's own, as Chronos's
// addProperty does) and placed on a random partition (setRandomPartition
// in MqPushService.send).
func chronosMessage(msg produce.Message, id string) produce.Message {
	msg.Key = []byte(id)
	hs := make([]sdk.Header, 0, len(msg.Headers)+1)
	for _, h := range msg.Headers {
		if h.Key != ChronosProperty {
			hs = append(hs, h)
		}
	}
	msg.Headers = append(hs, sdk.Header{Key: ChronosProperty, Value: []byte(ChronosProperty)})
	msg.Partition, msg.HashID = sdk.PartitionRandom, nil
	return msg
}
