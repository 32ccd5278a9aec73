package sdk

import (
	"context"
	"errors"
	"fmt"
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
)

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
