package kafka

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mqgate/mqgate/sdk"
)

// errNotConfigured is what every call made before Configure (or after
// Close) returns.
var errNotConfigured = &sdk.Error{Code: sdk.CodeUnavailable, Msg: "kafka backend is not configured or is closed"}

// toSDKError gives err the code a client sees, prefixing the message with
// what was being done ("producing to orders"). An *sdk.Error passes through
// unchanged. This is the one place the plugin maps franz-go and broker
// errors to codes.
func toSDKError(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	if e, ok := errors.AsType[*sdk.Error](err); ok {
		return e
	}
	return &sdk.Error{Code: codeOf(err), Msg: fmt.Sprintf(format, args...) + ": " + err.Error()}
}

// codeOf maps franz-go, broker and network errors to sdk codes. Order
// matters: some non-retriable conditions are flagged retriable by kerr
// (UNKNOWN_TOPIC_OR_PARTITION) and a record timeout may wrap its last cause.
func codeOf(err error) sdk.Code {
	switch {
	case errors.Is(err, kerr.UnknownTopicOrPartition), errors.Is(err, kerr.UnknownTopicID):
		return sdk.CodeTopicNotExist
	case errors.Is(err, kerr.MessageTooLarge), errors.Is(err, kerr.RecordListTooLarge):
		return sdk.CodeTooLarge
	case errors.Is(err, kerr.TopicAuthorizationFailed),
		errors.Is(err, kerr.GroupAuthorizationFailed),
		errors.Is(err, kerr.ClusterAuthorizationFailed),
		errors.Is(err, kerr.TransactionalIDAuthorizationFailed):
		return sdk.CodeNotAllowed
	case isSASLError(err):
		// The gateway's own credentials were refused: the client can do
		// nothing about it, and it may pass once the operator fixes them.
		return sdk.CodeUnavailable
	case errors.Is(err, kerr.OffsetOutOfRange),
		errors.Is(err, kerr.InvalidTopicException),
		errors.Is(err, kerr.InvalidPartitions),
		errors.Is(err, kerr.InvalidReplicationFactor),
		errors.Is(err, kerr.InvalidReplicaAssignment),
		errors.Is(err, kerr.InvalidConfig),
		errors.Is(err, kerr.InvalidRequest),
		errors.Is(err, kerr.PolicyViolation),
		errors.Is(err, kerr.InvalidRecord),
		// A null key on a compacted topic is reported this way; resending
		// the same record cannot succeed.
		errors.Is(err, kerr.CorruptMessage):
		return sdk.CodeIllegal
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, kgo.ErrRecordTimeout):
		return sdk.CodeTimeout
	case kerr.IsRetriable(err),
		errors.Is(err, kerr.RebalanceInProgress),
		errors.Is(err, kerr.IllegalGeneration),
		errors.Is(err, kerr.UnknownMemberID),
		errors.Is(err, kerr.StaleMemberEpoch),
		errors.Is(err, kgo.ErrClientClosed),
		errors.Is(err, kgo.ErrMaxBuffered),
		errors.Is(err, kgo.ErrRecordRetries),
		errors.Is(err, context.Canceled):
		return sdk.CodeUnavailable
	}
	if _, ok := errors.AsType[net.Error](err); ok {
		return sdk.CodeUnavailable
	}
	if _, ok := errors.AsType[*kgo.ErrFirstReadEOF](err); ok {
		// Its message asks whether TLS or SASL is missing on one side.
		return sdk.CodeUnavailable
	}
	if isFDShortage(err) {
		// Descriptors free up as connections close and topics go.
		return sdk.CodeUnavailable
	}
	return sdk.CodeInternal
}

// sdkError is toSDKError, except that a failure with no better code than
// CodeInternal while the process is out of file descriptors is that
// shortage (code 17, naming it): the embedded broker answers a write it
// could not open a segment file for with UNKNOWN_SERVER_ERROR, which says
// nothing of why.
func (b *Backend) sdkError(err error, format string, args ...any) error {
	e := toSDKError(err, format, args...)
	if code := sdk.CodeOf(e); code == sdk.CodeInternal || code == sdk.CodeUnavailable {
		// A failure to talk to the cluster while it refuses the
		// credentials is that refusal.
		if auth := b.auth.failure(); auth != nil {
			return auth
		}
	}
	if sdk.CodeOf(e) != sdk.CodeInternal {
		return e
	}
	if short := b.fds.shortage(); short != nil {
		return sdk.Errorf(sdk.CodeUnavailable, "%s: %v: %v", fmt.Sprintf(format, args...), err, short)
	}
	return e
}
