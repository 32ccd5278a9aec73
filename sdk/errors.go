package sdk

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Code is an error code clients see, over HTTP and Thrift alike. The values
// are DDMQ's where DDMQ has one.
type Code int32

// The codes of API.md.
const (
	CodeOK              Code = 0
	CodeIllegal         Code = 11 // illegal message or request; the message names the field
	CodeTimeout         Code = 12
	CodeNotAllowed      Code = 13
	CodeTopicNotExist   Code = 14
	CodeRateLimited     Code = 15
	CodeTooLarge        Code = 16 // the message names the limit
	CodeUnavailable     Code = 17 // retriable: the backend is down or restarting
	CodeUnauthenticated Code = 18
	CodeNotFound        Code = 19
	CodeInternal        Code = 100
)

// DDMQ's codes for delay messages a client may not send, as its producer
// proxy answers sendDelaySync (ProxySendResult.java in DDMQ's
// carrera-producer). Only the Thrift frontend's sendDelaySync answers them;
// the HTTP API says 11 for the same faults.
const (
	// CodeDelayID: a uniqDelayMsgId to cancel that is empty or not in
	// Chronos's format.
	CodeDelayID Code = 30
	// CodeDelayType: a dmsgtype other than 2 (delay), 3 (loop) or 4
	// (exponential loop), to add or in an id to cancel.
	CodeDelayType Code = 31
	// CodeDelayAction: an action other than 1 (add) or 2 (cancel).
	CodeDelayAction Code = 32
	// CodeDelayTimestamp: a fire time before 2001 or beyond the longest
	// delay.
	CodeDelayTimestamp Code = 33
	// CodeDelayInnerTopicSeq: an id to cancel naming an inner topic the
	// delay service does not have.
	CodeDelayInnerTopicSeq Code = 34
	// CodeDelayLoopTimes: loop times below 1, or set on a plain delay.
	CodeDelayLoopTimes Code = 35
	// CodeDelayExpire: a loop's expire not after its timestamp.
	CodeDelayExpire Code = 36
	// CodeDelayInterval: a loop's interval under 3 seconds.
	CodeDelayInterval Code = 37
	// CodeDelayExponentBase: an exponential loop's base under 2.
	CodeDelayExponentBase Code = 38
)

// Retriable reports whether a request that failed with c may succeed when
// sent again unchanged.
func (c Code) Retriable() bool {
	return c == CodeUnavailable || c == CodeTimeout
}

// Error is an error with the code a client sees.
type Error struct {
	Code Code
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

// Errorf returns an *Error with code c.
func Errorf(c Code, format string, args ...any) *Error {
	return &Error{Code: c, Msg: fmt.Sprintf(format, args...)}
}

// Sentinel errors for conditions callers branch on.
var (
	// ErrStreamEnded marks the errors of a Consumer whose stream to the
	// plugin has ended: it is unusable and a new one must be opened. Other
	// Poll errors leave the subscription going.
	ErrStreamEnded = errors.New("consume stream ended")

	// ErrLasting marks a retriable error (code 17) whose cause is not
	// expected to pass within one request, such as a plugin whose restarts
	// keep failing: a caller that retries within a request answers it at
	// once instead of retrying into a timeout. Later requests may still
	// succeed.
	ErrLasting = errors.New("the outage is lasting")
)

// Lasting returns e marked as lasting: it matches both e (its code and
// message) and ErrLasting. A plugin returns one for an outage it knows will
// not pass within a request, such as a cluster refusing its credentials;
// the mark crosses the plugin protocol.
func Lasting(e *Error) error { return &lastingError{e} }

type lastingError struct{ err *Error }

func (e *lastingError) Error() string   { return e.err.Error() }
func (e *lastingError) Unwrap() []error { return []error{e.err, ErrLasting} }

// CodeOf maps any error to the code a client sees: an *Error's own code,
// context deadlines to CodeTimeout, cancellation to CodeUnavailable (the
// work was abandoned, not refused: sending again may succeed), everything
// else to CodeInternal.
func CodeOf(err error) Code {
	if err == nil {
		return CodeOK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return CodeTimeout
	}
	if errors.Is(err, context.Canceled) {
		return CodeUnavailable
	}
	return CodeInternal
}

// ConfigError is a problem in a plugin's config. Key is the dotted path of
// the offending key inside the plugin's `config:` map, so the gateway can
// point at its line in plugins.yaml.
type ConfigError struct {
	Key string
	Msg string
}

func (e *ConfigError) Error() string {
	if e.Key == "" {
		return e.Msg
	}
	return e.Key + ": " + e.Msg
}

// ConfigErrors is every problem found in one plugin config, in the order
// found. DecodeConfig returns it, and a plugin's Configure should too, so
// that the gateway reports every problem at once, each at its key's line in
// plugins.yaml, rather than one per start. errors.As finds its first
// *ConfigError, so code that looks for one keeps working.
type ConfigErrors []*ConfigError

// Error joins the problems' messages with "; ".
func (es ConfigErrors) Error() string {
	msgs := make([]string, 0, len(es))
	for _, e := range es {
		if e != nil {
			msgs = append(msgs, e.Error())
		}
	}
	return strings.Join(msgs, "; ")
}

// Unwrap returns the problems, for errors.Is and errors.As.
func (es ConfigErrors) Unwrap() []error {
	out := make([]error, 0, len(es))
	for _, e := range es {
		if e != nil {
			out = append(out, e)
		}
	}
	return out
}

// Err returns es as an error, or nil when es holds no problem. Return
// es.Err() rather than es from a function whose result is an error: an
// empty ConfigErrors in an error is not nil.
func (es ConfigErrors) Err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// Addf records a problem with key.
func (es *ConfigErrors) Addf(key, format string, args ...any) {
	*es = append(*es, &ConfigError{Key: key, Msg: fmt.Sprintf(format, args...)})
}

// Add records the problems err holds (see ConfigErrorsOf); any other
// non-nil error is recorded as a problem of the config as a whole.
func (es *ConfigErrors) Add(err error) {
	if err == nil {
		return
	}
	if ces := ConfigErrorsOf(err); len(ces) > 0 {
		*es = append(*es, ces...)
		return
	}
	*es = append(*es, &ConfigError{Msg: err.Error()})
}

// Has reports whether es holds a problem with key or with a key under it
// (key.name, key.0), so that a value already reported is not reported
// again by a later rule.
func (es ConfigErrors) Has(key string) bool {
	for _, e := range es {
		if e != nil && (e.Key == key || strings.HasPrefix(e.Key, key+".")) {
			return true
		}
	}
	return false
}

// ConfigErrorsOf returns the config problems err holds: the items of a
// ConfigErrors, or a single *ConfigError, found with errors.As. It returns
// nil when err holds neither.
func ConfigErrorsOf(err error) ConfigErrors {
	if es, ok := errors.AsType[ConfigErrors](err); ok {
		return es
	}
	if e, ok := errors.AsType[*ConfigError](err); ok {
		return ConfigErrors{e}
	}
	return nil
}
