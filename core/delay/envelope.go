package delay

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/core/topicname"
	"github.com/mqgate/mqgate/sdk"
)

// Headers of a record in a tier topic. The message's own key, value, tags
// and headers travel as they are; these are appended.
const (
	headerPrefix = topicname.DelayHeaderPrefix
	hTopic       = headerPrefix + "topic" // the target topic
	hID          = headerPrefix + "id"
	hDue         = headerPrefix + "due-ms" // when it fires, epoch ms
	hHop         = headerPrefix + "hop-ms" // when this hop ends, epoch ms
	hLoop        = headerPrefix + "loop"   // interval_ms/times/expire_ms/fired[/base/chronos]: see loopHeader
	hPlace       = headerPrefix + "place"  // partition[/hash_id] for delivery
)

// Headers a delivered message carries besides its own.
const (
	// HeaderID is the delivered message's delay id.
	HeaderID = hID
	// HeaderDue is its due time in epoch milliseconds.
	HeaderDue = hDue
)

// envelope is a delayed message in flight.
type envelope struct {
	id    string
	topic string
	msg   produce.Message
	due   time.Time
	hop   time.Time
	loop  *Loop
	fired int64 // firings so far, for loops
	// chronos keys each firing of a loop by its Chronos id
	// (Message.Chronos). A plain delay's key is set once, when it is added.
	chronos bool
}

func ms(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

// record builds the tier record for e, hopping at e.hop, placed in the
// tier topic by id so that one message's hops spread like all the others.
func (e *envelope) record(tierTopic string) sdk.Record {
	hs := make([]sdk.Header, 0, len(e.msg.Headers)+6)
	hs = append(hs, e.msg.Headers...)
	hs = append(hs,
		sdk.Header{Key: hTopic, Value: []byte(e.topic)},
		sdk.Header{Key: hID, Value: []byte(e.id)},
		sdk.Header{Key: hDue, Value: []byte(ms(e.due))},
		sdk.Header{Key: hHop, Value: []byte(ms(e.hop))},
	)
	if e.loop != nil {
		hs = append(hs, sdk.Header{Key: hLoop, Value: e.loopHeader()})
	}
	if e.msg.Partition != sdk.PartitionHash || e.msg.HashID != nil {
		place := strconv.Itoa(int(e.msg.Partition))
		if e.msg.HashID != nil {
			place += "/" + strconv.FormatInt(*e.msg.HashID, 10)
		}
		hs = append(hs, sdk.Header{Key: hPlace, Value: []byte(place)})
	}
	return sdk.Record{
		Topic: tierTopic, Partition: sdk.PartitionHash, Hash: hashString(e.id),
		Key: e.msg.Key, Value: e.msg.Value, Tags: e.msg.Tags, Headers: hs,
	}
}

// loopHeader is the hLoop value of a loop: interval_ms/times/expire_ms/fired,
// expire_ms 0 for none. An exponential or Chronos-keyed loop adds
// /base/chronos (chronos 1 or 0), with interval_ms its first gap: a
// gateway that reads only the first four fields (one from before they
// were added) still fires it, at that interval and with its first key.
func (e *envelope) loopHeader() []byte {
	l := e.loop
	var expire int64
	if !l.Expire.IsZero() {
		expire = l.Expire.UnixMilli()
	}
	if l.Base == 0 && !e.chronos {
		return fmt.Appendf(nil, "%d/%d/%d/%d", l.Interval.Milliseconds(), l.Times, expire, e.fired)
	}
	chronos := 0
	if e.chronos {
		chronos = 1
	}
	return fmt.Appendf(nil, "%d/%d/%d/%d/%d/%d", l.gap(1).Milliseconds(), l.Times, expire, e.fired, l.Base, chronos)
}

// parseLoop reads a loopHeader value into e.
func (e *envelope) parseLoop(v string) error {
	fields := strings.Split(v, "/")
	if len(fields) != 4 && len(fields) != 6 {
		return fmt.Errorf("%d fields", len(fields))
	}
	var n [6]int64
	for i, f := range fields {
		var err error
		if n[i], err = strconv.ParseInt(f, 10, 64); err != nil {
			return err
		}
	}
	interval, times, expire, fired, base, chronos := n[0], n[1], n[2], n[3], n[4], n[5]
	if base != 0 && base < 2 || chronos != 0 && chronos != 1 || fired < 0 {
		return fmt.Errorf("base %d, chronos %d, fired %d", base, chronos, fired)
	}
	e.loop = &Loop{Interval: time.Duration(interval) * time.Millisecond, Times: times, Base: base}
	if expire != 0 {
		e.loop.Expire = time.UnixMilli(expire)
	}
	e.fired, e.chronos = fired, chronos == 1
	return nil
}

// hashString is FNV-1a, to spread ids over a tier's partitions.
func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// parseEnvelope reads a tier record back.
func parseEnvelope(r *sdk.Record) (*envelope, error) {
	e := &envelope{msg: produce.Message{Key: r.Key, Value: r.Value, Tags: r.Tags, Partition: sdk.PartitionHash}}
	var due, hop, loop, place string
	for _, h := range r.Headers {
		switch h.Key {
		case hTopic:
			e.topic = string(h.Value)
		case hID:
			e.id = string(h.Value)
		case hDue:
			due = string(h.Value)
		case hHop:
			hop = string(h.Value)
		case hLoop:
			loop = string(h.Value)
		case hPlace:
			place = string(h.Value)
		default:
			e.msg.Headers = append(e.msg.Headers, h)
		}
	}
	if e.topic == "" || e.id == "" {
		return nil, fmt.Errorf("record %s/%s@%d is not a delayed message: no %s or %s header", r.Topic, r.Qid, r.Offset, hTopic, hID)
	}
	d, err := strconv.ParseInt(due, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("record %s/%s@%d: bad %s %q", r.Topic, r.Qid, r.Offset, hDue, due)
	}
	e.due = time.UnixMilli(d)
	e.hop = e.due
	if hop != "" {
		h, err := strconv.ParseInt(hop, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("record %s/%s@%d: bad %s %q", r.Topic, r.Qid, r.Offset, hHop, hop)
		}
		e.hop = time.UnixMilli(h)
	}
	if loop != "" {
		if err := e.parseLoop(loop); err != nil {
			return nil, fmt.Errorf("record %s/%s@%d: bad %s %q: %v", r.Topic, r.Qid, r.Offset, hLoop, loop, err)
		}
	}
	if place != "" {
		p, hash, hasHash := strings.Cut(place, "/")
		n, err := strconv.ParseInt(p, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("record %s/%s@%d: bad %s %q", r.Topic, r.Qid, r.Offset, hPlace, place)
		}
		e.msg.Partition = int32(n)
		if hasHash {
			h, err := strconv.ParseInt(hash, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("record %s/%s@%d: bad %s %q", r.Topic, r.Qid, r.Offset, hPlace, place)
			}
			e.msg.HashID = &h
		}
	}
	return e, nil
}

// delivered is the message as it reaches its topic: its own headers plus
// the delay id and due time. A Chronos loop's firing is keyed by its own
// Chronos id, as Chronos keys it.
func (e *envelope) delivered() produce.Message {
	m := e.msg
	if e.chronos {
		if c, err := ParseChronosID(e.id); err == nil {
			m.Key = []byte(c.Firing(e.due, e.fired).String())
		}
	}
	m.Headers = append(append([]sdk.Header(nil), e.msg.Headers...),
		sdk.Header{Key: HeaderID, Value: []byte(e.id)},
		sdk.Header{Key: HeaderDue, Value: []byte(ms(e.due))},
	)
	return m
}
