package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mqgate/mqgate/sdk"
)

// authWatch follows how the clients' SASL authentications go, so that a
// cluster refusing the configured credentials is reported as that (code
// 17, naming SASL and the user), logged once rather than per retry, and
// ends the calls waiting on it instead of letting them retry into their
// deadline.
type authWatch struct {
	logger *slog.Logger

	mu      sync.Mutex
	who     string // credentials.who(); empty without SASL
	lastErr error  // the last refused authentication; nil once one succeeds
	// failed is closed, and replaced, at each refused authentication.
	failed chan struct{}
}

var _ kgo.HookBrokerConnect = (*authWatch)(nil)

// OnBrokerConnect records whether a connection's authentication went
// through.
func (a *authWatch) OnBrokerConnect(meta kgo.BrokerMetadata, _ time.Duration, conn net.Conn, err error) {
	if conn == nil && err != nil && !isSASLError(err) {
		return // the dial failed; reachability reports that
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err == nil {
		if a.lastErr != nil {
			a.logger.Info("kafka SASL authentication succeeds again", "sasl", a.who)
		}
		a.lastErr = nil
		return
	}
	if !refusedAuth(err) {
		return
	}
	addr := net.JoinHostPort(meta.Host, fmt.Sprint(meta.Port))
	if !isSASLError(err) {
		// A broker that refuses credentials by closing the connection
		// (older brokers do) leaves no other trace.
		err = fmt.Errorf("broker %s closed the connection while authenticating: %w", addr, err)
	} else {
		err = fmt.Errorf("broker %s: %w", addr, err)
	}
	if a.lastErr == nil {
		// Once per outage: the clients retry every few hundred
		// milliseconds, and every call says it anyway.
		a.logger.Error("kafka SASL authentication failed; check sasl.username and sasl.password (or sasl.token) of the Kafka plugin config",
			"sasl", a.who, "err", err)
	}
	a.lastErr = err
	if a.failed != nil {
		close(a.failed)
	}
	a.failed = make(chan struct{})
}

// enable starts watching for credentials described by who.
func (a *authWatch) enable(who string) {
	a.mu.Lock()
	a.who = who
	a.mu.Unlock()
}

// failure is the error a call gets while the cluster refuses the
// credentials: code 17, naming SASL and the user, never a secret, and
// lasting, so the gateway answers it rather than retrying it until the
// request's deadline (credentials are not mended within a request). It is
// nil when the last authentication succeeded or none was tried.
func (a *authWatch) failure() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.lastErr == nil {
		return nil
	}
	return sdk.Lasting(sdk.Errorf(sdk.CodeUnavailable, "kafka SASL authentication failed (%s): %v", a.who, a.lastErr))
}

// guard returns ctx ended by the next refused authentication, so a call
// the client would retry until its deadline ends at once. Without SASL it
// returns ctx as is.
func (a *authWatch) guard(ctx context.Context) (context.Context, context.CancelFunc) {
	a.mu.Lock()
	if a.who == "" {
		a.mu.Unlock()
		return ctx, func() {}
	}
	if a.failed == nil {
		a.failed = make(chan struct{})
	}
	failed := a.failed
	a.mu.Unlock()
	ctx, cancel := context.WithCancelCause(ctx)
	go func() { // ends with ctx, which the caller's cancel ends
		select {
		case <-failed:
			cancel(errAuthRefused)
		case <-ctx.Done():
		}
	}()
	return ctx, func() { cancel(nil) }
}

// errAuthRefused is the cause of a call's context that guard ended.
var errAuthRefused = errors.New("kafka SASL authentication failed")

// isSASLError reports whether err is a broker's SASL error code.
func isSASLError(err error) bool {
	return errors.Is(err, kerr.SaslAuthenticationFailed) ||
		errors.Is(err, kerr.UnsupportedSaslMechanism) ||
		errors.Is(err, kerr.IllegalSaslState)
}

// refusedAuth reports whether err, the failure of a connection that was
// dialed, is the broker refusing the credentials: a SASL error, or the
// connection closed during SASL. kgo opens a connection with ApiVersions
// and then SASL; an end of file during ApiVersions comes as
// *kgo.ErrFirstReadEOF (TLS on one side only), so a bare one comes from
// SASL.
func refusedAuth(err error) bool {
	if isSASLError(err) {
		return true
	}
	if _, ok := errors.AsType[*kgo.ErrFirstReadEOF](err); ok {
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}
