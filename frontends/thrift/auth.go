package thriftapi

import (
	"context"
	"crypto/tls"
	"maps"
	"net"
	"net/netip"
	"slices"

	"github.com/mqgate/mqgate/core/auth"
	"github.com/mqgate/mqgate/core/auth/acl"
	"github.com/mqgate/mqgate/core/consume"
)

// A Thrift connection is authenticated once, when it opens: DDMQ's
// clients send no credential with their calls, so the principal comes
// from the connection itself (its verified client certificate, or its
// source network), else the anonymous principal. Each call is then
// authorized for what it names.

// connAuthKey holds a connection's *connAuth in its calls' context.
type connAuthKey struct{}

type connAuth struct {
	gate      *auth.Gate
	principal auth.Principal
	remote    netip.Addr
}

// authenticate returns ctx with the connection's principal, for its
// calls (auth.PrincipalFrom gives it, quotas count against it), or the
// code 18 error that closes it. state is the connection's TLS state, nil
// for plaintext.
func (s *server) authenticate(ctx context.Context, conn net.Conn, state *tls.ConnectionState) (context.Context, error) {
	cr := auth.Credentials{}
	if ap, err := netip.ParseAddrPort(conn.RemoteAddr().String()); err == nil {
		cr.Remote = ap.Addr()
	}
	if state != nil && len(state.VerifiedChains) > 0 {
		cr.PeerCertificates = state.VerifiedChains[0]
	}
	p, err := s.gate.Authenticate(cr)
	if err != nil {
		return nil, err
	}
	ctx = auth.WithPrincipal(ctx, p)
	return context.WithValue(ctx, connAuthKey{}, &connAuth{gate: s.gate, principal: p, remote: cr.Remote}), nil
}

// authorize checks op on topic as group for the call's connection; a
// context without one (a handler called directly, in tests) is allowed.
func authorize(ctx context.Context, op acl.Op, topic, group string) error {
	ca, ok := ctx.Value(connAuthKey{}).(*connAuth)
	if !ok {
		return nil
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
