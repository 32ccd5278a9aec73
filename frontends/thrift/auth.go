package thriftapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"maps"
	"net"
	"net/netip"
	"slices"

	"github.com/mqgate/mqgate/core/auth"
	"github.com/mqgate/mqgate/core/auth/acl"
	"github.com/mqgate/mqgate/core/consume"
	"github.com/mqgate/mqgate/sdk"
)

// A Thrift connection is authenticated once, when it opens: DDMQ's
// clients send no credential with their calls, so the principal comes
// from the connection itself (its verified client certificate, or its
// source network), else the anonymous principal. With auth.thrift_token a
// call may carry a token of its own (CallToken), which names its
// principal in the gate's order: after a certificate, before a network or
// the anonymous principal. Each call is then authorized for what it
// names.

// connAuthKey holds a *connAuth in a call's context: the connection's,
// and then the call's once authenticateCall has run.
type connAuthKey struct{}

type connAuth struct {
	gate *auth.Gate
	// principal is who makes the calls; has is false when nobody does:
	// the connection has no principal of its own, and its calls must
	// carry a token.
	principal auth.Principal
	has       bool
	remote    netip.Addr
	certs     []*x509.Certificate
	// tokens is whether calls may carry tokens (auth.thrift_token); the
	// gate remembers the JWTs it verified.
	tokens bool
}

// authenticate returns ctx with the connection's principal, for its
// calls (auth.PrincipalFrom gives it, quotas count against it), or the
// code 18 error that closes it. state is the connection's TLS state, nil
// for plaintext. With calls that carry tokens, a connection without a
// principal stays open: its calls must carry one.
func (s *server) authenticate(ctx context.Context, conn net.Conn, state *tls.ConnectionState) (context.Context, error) {
	cr := auth.Credentials{}
	if ap, err := netip.ParseAddrPort(conn.RemoteAddr().String()); err == nil {
		cr.Remote = ap.Addr()
	}
	if state != nil && len(state.VerifiedChains) > 0 {
		cr.PeerCertificates = state.VerifiedChains[0]
	}
	ca := &connAuth{gate: s.gate, remote: cr.Remote, certs: cr.PeerCertificates}
	if s.opts.Token == nil {
		p, err := s.gate.Authenticate(cr)
		if err != nil {
			return nil, err
		}
		ca.principal, ca.has = p, true
	} else {
		ca.principal, ca.has = s.gate.Implicit(cr)
		ca.tokens = true
	}
	if ca.has {
		ctx = auth.WithPrincipal(ctx, ca.principal)
	}
	return context.WithValue(ctx, connAuthKey{}, ca), nil
}

// authenticateCall returns ctx with the principal of a call whose fields
// c has read: its token's, else the connection's; else, and for a token
// the gate refuses, a code 18 error (audited by the gate) and ctx as it
// was. A context without a connection (a handler called directly, in
// tests) is returned as it is.
func authenticateCall(ctx context.Context, c *callToken) (context.Context, error) {
	ca, ok := ctx.Value(connAuthKey{}).(*connAuth)
	if !ok {
		return ctx, nil
	}
	call := *ca
	switch {
	case c.token != "" && ca.tokens:
		p, err := ca.gate.Authenticate(auth.Credentials{Token: c.token, Remote: ca.remote, PeerCertificates: ca.certs})
		if err != nil {
			return ctx, err
		}
		call.principal, call.has = p, true
		ctx = auth.WithPrincipal(ctx, p) // quotas count against the token's principal
	case !ca.has:
		return ctx, ca.gate.NoCredential(ca.remote, c.how())
	}
	return context.WithValue(ctx, connAuthKey{}, &call), nil
}

// authorize checks op on topic as group for the call's principal; a
// context without a connection (a handler called directly, in tests) is
// allowed, and a call nobody made (not authenticated) is refused.
func authorize(ctx context.Context, op acl.Op, topic, group string) error {
	ca, ok := ctx.Value(connAuthKey{}).(*connAuth)
	if !ok {
		return nil
	}
	if !ca.has {
		// Every handler authenticates its call first; this is the guard
		// should one not.
		return sdk.Errorf(sdk.CodeUnauthenticated, "unauthenticated: the call carries no token and the connection has no principal")
	}
	return ca.gate.Authorize(ca.principal, ca.remote, op, topic, group)
}

// authorizeAcks checks consume on every group and topic acks name.
func authorizeAcks(ctx context.Context, acks []consume.Ack) error {
	for _, a := range acks {
		if err := authorize(ctx, acl.Consume, a.Topic, a.Group); err != nil {
			return err
		}
	}
	return nil
}

// authorizeTopics checks op on every topic of offsets, as group, in name
// order.
func authorizeTopics(ctx context.Context, op acl.Op, offsets map[string]map[string]int64, group string) error {
	for _, topic := range slices.Sorted(maps.Keys(offsets)) {
		if err := authorize(ctx, op, topic, group); err != nil {
			return err
		}
	}
	return nil
}

// audit logs an action that moved state others rely on, with the
// connection's principal; nothing for a context without one.
func audit(ctx context.Context, action string, op acl.Op, resource string) {
	if ca, ok := ctx.Value(connAuthKey{}).(*connAuth); ok {
		ca.gate.Audit(action, ca.principal, ca.remote, op, resource)
	}
}
