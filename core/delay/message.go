package delay

import (
	"context"
	"time"

	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/sdk"
)

// MaxIDBytes is the longest delay id accepted, to add or to cancel. A
// DDMQ uniqDelayMsgId (eight fields: times, counts, an inner topic and a
// UUID) is under 200 bytes, the HTTP API's own ids are 32; every cancel is
// held in memory on every gateway until it expires, so an id may not be a
// payload.
const MaxIDBytes = 256

// ValidateID refuses an id over MaxIDBytes with code 11, naming the field
// "id" and the limit.
func ValidateID(id string) error {
	if len(id) > MaxIDBytes {
		return sdk.Errorf(sdk.CodeIllegal, "id: %d bytes, over the limit of %d bytes for a delay id", len(id), MaxIDBytes)
	}
	return nil
}

// Message is one delayed message as a frontend decoded it.
type Message struct {
	// ID names the message for cancels and traces; Add generates one when
	// it is empty.
	ID    string
	Topic string
	// Msg is the message delivered at DueAt: key, value, headers, tags,
	// placement.
	Msg produce.Message
	// DueAt is when it fires. A time in the past fires at once.
	DueAt time.Time
	// Loop, when not nil, makes it fire again every Loop.Interval.
	Loop *Loop
	// Chronos, when set, delivers the message as DDMQ's Chronos does: keyed
	// by the uniqDelayMsgId of its firing (ChronosID.Firing), with the
	// property ChronosProperty, on a random partition; Msg's own key and
	// placement are not used. ID must then be a Chronos id
	// (ParseChronosID).
	Chronos bool
}

// Loop is a repeating message: it fires at DueAt, then every Interval,
// until it has fired Times times or the next firing would be after Expire
// (when Expire is not zero), whichever comes first. A cancel stops the
// firings still to come.
type Loop struct {
	Interval time.Duration
	Times    int64
	Expire   time.Time
	// Base, when not zero, makes the loop exponential as Chronos's
	// dmsgtype 4 (ChronosExponentialLoop): the gap before firing k
	// (k = 1, 2, ...) is Base^k seconds, at most a day, and Interval is not
	// used. It must then be at least 2.
	Base int64
}

// gap is the time between firing k-1 and firing k.
func (l *Loop) gap(k int64) time.Duration {
	if l.Base != 0 {
		return exponentialGap(l.Base, k)
	}
	return l.Interval
}

// Result is the outcome of adding one message.
type Result struct {
	ID    string
	DueAt time.Time
	// Err is nil, or an *sdk.Error: code 11 for bad input (naming the
	// field), 17 when the broker is down.
	Err error
}

// Validate checks what a frontend cannot: the due time against max (the
// longest delay accepted), the loop's fields. now is the reference time.
// Field names in errors are the HTTP API's; frontends that name fields
// differently map them.
func (m *Message) Validate(now time.Time, max time.Duration) error {
	if m.Topic == "" {
		return sdk.Errorf(sdk.CodeIllegal, "topic: required")
	}
	if err := ValidateID(m.ID); err != nil {
		return err
	}
	if d := m.DueAt.Sub(now); d > max {
		return sdk.Errorf(sdk.CodeIllegal, "delay of %s exceeds delay.max of %s", d.Round(time.Second), max)
	}
	if m.Chronos {
		if _, err := ParseChronosID(m.ID); err != nil {
			return err
		}
	}
	if l := m.Loop; l != nil {
		switch {
		case l.Base != 0:
			if l.Base < 2 {
				return sdk.Errorf(sdk.CodeIllegal, "loop.base: at least 2, got %d", l.Base)
			}
		case l.Interval <= 0:
			return sdk.Errorf(sdk.CodeIllegal, "loop.interval_ms: must be positive, got %d", l.Interval.Milliseconds())
		case l.Interval < time.Second:
			return sdk.Errorf(sdk.CodeIllegal, "loop.interval_ms: at least 1000 (one second), got %d", l.Interval.Milliseconds())
		}
		if l.Times < 1 {
			return sdk.Errorf(sdk.CodeIllegal, "loop.times: must be at least 1, got %d", l.Times)
		}
		if !l.Expire.IsZero() && l.Expire.Before(m.DueAt) {
			return sdk.Errorf(sdk.CodeIllegal, "loop.expire_at_ms: %d is before the first firing at %d", l.Expire.UnixMilli(), m.DueAt.UnixMilli())
		}
	}
	return nil
}

// Delayer is what frontends call to add and cancel delayed messages;
// *Service implements it.
type Delayer interface {
	// Add schedules msgs and returns one result per message, in order. The
	// error is for failures of the whole call.
	Add(ctx context.Context, msgs []Message) ([]Result, error)
	// Cancel promises that nothing with id on topic is delivered after it
	// returns, whether or not id was ever added. An empty id is code 11.
	Cancel(ctx context.Context, topic, id string) error
	// CheckTopic is nil when topic may take delay messages and cancels,
	// else the error Add and Cancel would answer for it: code 11 for a
	// name that is not a topic's, 13 for one reserved to the gateway.
	// DDMQ checks a delay's topic before its other fields; frontends that
	// answer as DDMQ does call it first.
	CheckTopic(topic string) error
	// Max is the longest delay accepted (delay.max).
	Max() time.Duration
	// Ready is nil once delayed messages can be added, else why not.
	Ready() error
}
