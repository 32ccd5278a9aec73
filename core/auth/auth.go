// Package auth decides who sends a request (authentication: API keys,
// HTTP Basic, JWTs, client certificates, source networks, an anonymous
// principal) and whether that principal may do what it asks (the ACL
// rules of package acl). Both frontends ask it; it knows nothing of HTTP
// or Thrift beyond the credentials they hand it.
//
// Every refusal is logged as an audit line with the principal (or the
// credential's kind), the source address, the operation and the resource.
package auth

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/mqgate/mqgate/core/auth/acl"
	"github.com/mqgate/mqgate/core/config"
	"github.com/mqgate/mqgate/sdk"
)

// Methods a principal was established by.
const (
	MethodNone      = "none" // auth: is not configured
	MethodAPIKey    = "api_key"
	MethodBasic     = "basic"
	MethodJWT       = "jwt"
	MethodMTLS      = "mtls"
	MethodNetwork   = "network"
	MethodAnonymous = "anonymous"
)

// NoAuthPrincipal is every request's principal when auth: is not
// configured; ACL rules may name it.
const NoAuthPrincipal = "anonymous"

// maxCredentialBytes bounds an Authorization header's credential: a JWT
// with many claims is a few KiB.
const maxCredentialBytes = 16 << 10

// Principal is who sent a request.
type Principal struct {
	Name   string
	Method string
	// Expires is when the credential that established the principal
	// stops being accepted: a JWT's exp plus auth.jwt.leeway. It is zero
	// for one that does not expire. A frontend that remembers a verified
	// credential must not use it past Expires.
	Expires time.Time
}

// principalKey holds a request's Principal in its context.
type principalKey struct{}

// WithPrincipal returns ctx carrying p, the principal of the request ctx
// serves: what the request does after it is authenticated (opening a
// consume session, say) is counted against p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal WithPrincipal put in ctx, and
// whether there is one.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// Credentials are what a request presents.
type Credentials struct {
	// Authorization is the HTTP Authorization header ("Bearer KEY",
	// "Basic ...").
	Authorization string
	// Token is a bearer token (an API key or a JWT) sent outside an
	// Authorization header: a Thrift call's message property or group
	// name prefix. It is tried where Authorization is, and only when
	// Authorization is empty.
	Token string
	// Remote is the client's address.
	Remote netip.Addr
	// PeerCertificates is the client's verified certificate chain, leaf
	// first, when the listener verified one.
	PeerCertificates []*x509.Certificate
}

// Gate authenticates and authorizes requests. Its methods are safe for
// concurrent use.
type Gate struct {
	on        bool
	keys      map[[sha256.Size]byte]string // key hash -> principal
	jwt       *jwtVerifier
	mtls      string // cn, san_dns or san_uri; "" when not configured
	networks  []network
	anonymous string
	rules     acl.Rules
	log       *slog.Logger
}

type network struct {
	prefixes  []netip.Prefix
	principal string
}

// New builds the gate of cfg's auth: and acl: sections, which Load has
// validated. Relative file names are read against cfg.Dir. A JWKS URL is
// fetched again in the background until ctx ends: pass the context of the
// gateway's whole run.
func New(ctx context.Context, cfg *config.Config, log *slog.Logger) (*Gate, error) {
	g := &Gate{keys: map[[sha256.Size]byte]string{}, log: log}
	rules, err := compileRules(cfg.ACL)
	if err != nil {
		return nil, err
	}
	g.rules = rules
	a := cfg.Auth
	if a == nil {
		return g, nil
	}
	g.on = true
	for _, k := range a.APIKeys {
		var h [sha256.Size]byte
		if _, err := hex.Decode(h[:], []byte(k.SHA256)); err != nil {
			return nil, fmt.Errorf("auth.api_keys: %w", err)
		}
		g.keys[h] = k.Principal
	}
	if a.JWT != nil {
		if g.jwt, err = newJWTVerifier(ctx, a.JWT, cfg.Dir, log); err != nil {
			return nil, err
		}
	}
	if a.MTLS != nil {
		g.mtls = a.MTLS.Principal
	}
	for i, n := range a.Networks {
		nw := network{principal: n.Principal}
		for _, c := range n.CIDRs {
			p, err := netip.ParsePrefix(c)
			if err != nil {
				return nil, fmt.Errorf("auth.networks[%d].cidrs: %w", i, err)
			}
			nw.prefixes = append(nw.prefixes, p.Masked())
		}
		g.networks = append(g.networks, nw)
	}
	if a.Anonymous != nil {
		g.anonymous = a.Anonymous.Principal
	}
	return g, nil
}

func compileRules(rules []*config.ACLRule) (acl.Rules, error) {
	if rules == nil {
		return nil, nil
	}
	out := make(acl.Rules, 0, len(rules))
	for i, r := range rules {
		src := fmt.Sprintf("acl[%d]", i)
		rule := acl.Rule{Deny: r.Effect == "deny", Source: src}
		var err error
		if rule.Principal, err = acl.ParsePattern(r.Principal); err != nil {
			return nil, fmt.Errorf("%s.principal: %w", src, err)
		}
		for _, o := range r.Operations {
			op, err := acl.ParseOp(o)
			if err != nil {
				return nil, fmt.Errorf("%s.operations: %w", src, err)
			}
			rule.Ops = append(rule.Ops, op)
		}
		for _, list := range []struct {
			key  string
			in   []string
			into *[]acl.Pattern
		}{{"topics", r.Topics, &rule.Topics}, {"groups", r.Groups, &rule.Groups}} {
			for _, s := range list.in {
				p, err := acl.ParsePattern(s)
				if err != nil {
					return nil, fmt.Errorf("%s.%s: %w", src, list.key, err)
				}
				*list.into = append(*list.into, p)
			}
		}
		out = append(out, rule)
	}
	return out, nil
}

// Enabled reports whether auth: is configured.
func (g *Gate) Enabled() bool { return g.on }

// Authenticate returns the principal of c, or a code 18 error saying why
// there is none. It tries, in order, the client certificate, the
// Authorization header or Token, the source network and the anonymous
// principal; the first that applies decides. A credential that is
// presented and fails is refused, even where an anonymous principal is
// configured: a client that meant to be someone should hear that it is
// not.
func (g *Gate) Authenticate(c Credentials) (Principal, error) {
	if !g.on {
		return Principal{Name: NoAuthPrincipal, Method: MethodNone}, nil
	}
	if p, ok := g.byCertificate(c); ok {
		return p, nil
	}
	if c.Authorization != "" || c.Token != "" {
		p, err := g.fromCredential(c)
		if err != nil {
			g.audit("authentication refused", "", c.Remote, "", "", err)
			return Principal{}, sdk.Errorf(sdk.CodeUnauthenticated, "unauthenticated: %v", err)
		}
		return p, nil
	}
	if p, ok := g.byAddress(c); ok {
		return p, nil
	}
	return Principal{}, g.NoCredential(c.Remote, `send "Authorization: Bearer <API key or JWT>", HTTP Basic, or a client certificate`)
}

// Implicit returns the principal c has without a credential of its own:
// by client certificate, source network or as the anonymous principal,
// in Authenticate's order; false when none applies. c.Authorization and
// c.Token are not looked at, and nothing is audited: a caller that gets
// false asks each request for a credential (Thrift calls' tokens) and
// refuses one without with NoCredential.
func (g *Gate) Implicit(c Credentials) (Principal, bool) {
	if !g.on {
		return Principal{Name: NoAuthPrincipal, Method: MethodNone}, true
	}
	if p, ok := g.byCertificate(c); ok {
		return p, true
	}
	return g.byAddress(c)
}

// NoCredential returns the code 18 error for a request from remote that
// presented no credential, telling the client how to send one (the
// frontend's words) and what this gate accepts, and audits the refusal.
func (g *Gate) NoCredential(remote netip.Addr, how string) error {
	err := fmt.Errorf("no credential: %s%s", how, g.accepted())
	g.audit("authentication refused", "", remote, "", "", err)
	return sdk.Errorf(sdk.CodeUnauthenticated, "unauthenticated: %v", err)
}

// byCertificate is the principal of c's verified client certificate.
func (g *Gate) byCertificate(c Credentials) (Principal, bool) {
	if g.mtls != "" && len(c.PeerCertificates) > 0 {
		if name := certPrincipal(c.PeerCertificates[0], g.mtls); name != "" {
			return Principal{Name: name, Method: MethodMTLS}, true
		}
	}
	return Principal{}, false
}

// byAddress is the principal of c's source network, else the anonymous
// principal.
func (g *Gate) byAddress(c Credentials) (Principal, bool) {
	for _, n := range g.networks {
		for _, p := range n.prefixes {
			if c.Remote.IsValid() && p.Contains(c.Remote.Unmap()) {
				return Principal{Name: n.principal, Method: MethodNetwork}, true
			}
		}
	}
	if g.anonymous != "" {
		return Principal{Name: g.anonymous, Method: MethodAnonymous}, true
	}
	return Principal{}, false
}

// accepted lists what the gate takes, for the message to a client that
// sent nothing.
func (g *Gate) accepted() string {
	var m []string
	if len(g.keys) > 0 {
		m = append(m, "API keys")
	}
	if g.jwt != nil {
		m = append(m, "JWTs")
	}
	if g.mtls != "" {
		m = append(m, "client certificates")
	}
	if len(m) == 0 {
		return ""
	}
	return " (this gateway accepts " + strings.Join(m, ", ") + ")"
}

// fromCredential authenticates c's Authorization header, else its Token.
func (g *Gate) fromCredential(c Credentials) (Principal, error) {
	if c.Authorization != "" {
		return g.fromHeader(c.Authorization)
	}
	if len(c.Token) > maxCredentialBytes {
		return Principal{}, fmt.Errorf("token of %d bytes is over the limit of %d", len(c.Token), maxCredentialBytes)
	}
	return g.bearer(c.Token)
}

// fromHeader authenticates an Authorization header.
func (g *Gate) fromHeader(h string) (Principal, error) {
	scheme, cred, err := ParseAuthorization(h)
	if err != nil {
		return Principal{}, err
	}
	if scheme == "bearer" {
		return g.bearer(cred)
	}
	user, pass, _ := strings.Cut(cred, ":")
	if name, ok := g.keys[sha256.Sum256([]byte(pass))]; ok && name == user {
		return Principal{Name: name, Method: MethodBasic}, nil
	}
	return Principal{}, fmt.Errorf("HTTP Basic: the password is not an API key of principal %q", user)
}

// bearer authenticates a bearer token: an API key, else a JWT.
func (g *Gate) bearer(token string) (Principal, error) {
	if name, ok := g.keys[sha256.Sum256([]byte(token))]; ok {
		return Principal{Name: name, Method: MethodAPIKey}, nil
	}
	if g.jwt != nil && strings.Count(token, ".") == 2 {
		name, expires, err := g.jwt.verify(token)
		if err != nil {
			return Principal{}, err
		}
		return Principal{Name: name, Method: MethodJWT, Expires: expires}, nil
	}
	return Principal{}, fmt.Errorf("the bearer token is not a known API key%s", map[bool]string{true: " or a JWT", false: ""}[g.jwt != nil])
}

// ParseAuthorization splits an Authorization header into its scheme,
// "bearer" or "basic", and its credential: the token, or Basic's decoded
// "user:password".
func ParseAuthorization(h string) (scheme, credential string, err error) {
	if len(h) > maxCredentialBytes {
		return "", "", fmt.Errorf("Authorization header of %d bytes is over the limit of %d", len(h), maxCredentialBytes)
	}
	s, cred, ok := strings.Cut(strings.TrimSpace(h), " ")
	cred = strings.TrimSpace(cred)
	if !ok || cred == "" {
		return "", "", fmt.Errorf("Authorization header must be \"Bearer <token>\" or \"Basic <base64 of user:password>\"")
	}
	switch strings.ToLower(s) {
	case "bearer":
		return "bearer", cred, nil
	case "basic":
		b, err := base64.StdEncoding.DecodeString(cred)
		if err != nil {
			return "", "", fmt.Errorf("Authorization: Basic credential is not base64: %v", err)
		}
		if !strings.Contains(string(b), ":") {
			return "", "", fmt.Errorf("Authorization: Basic credential must be base64 of user:password")
		}
		return "basic", string(b), nil
	}
	return "", "", fmt.Errorf("Authorization scheme %q is not Bearer or Basic", s)
}

// certPrincipal is the principal a client certificate names.
func certPrincipal(c *x509.Certificate, from string) string {
	switch from {
	case "san_dns":
		if len(c.DNSNames) > 0 {
			return c.DNSNames[0]
		}
	case "san_uri":
		if len(c.URIs) > 0 {
			return c.URIs[0].String()
		}
	default:
		return c.Subject.CommonName
	}
	return ""
}

// Authorize returns nil when p may do op on topic as group (either may be
// empty), else a code 13 error naming the operation and the resource; the
// refusal is logged for audit. remote is the client's address.
func (g *Gate) Authorize(p Principal, remote netip.Addr, op acl.Op, topic, group string) error {
	err := g.rules.Decide(acl.Request{Principal: p.Name, Op: op, Topic: topic, Group: group})
	if err == nil {
		return nil
	}
	g.audit("authorization refused", p.Name, remote, op, acl.Request{Topic: topic, Group: group}.Resource(), err)
	return sdk.Errorf(sdk.CodeNotAllowed, "not allowed: %v", err)
}

// Allowed reports whether p may do op on topic as group, logging nothing:
// for leaving out of a list what the principal may not see.
func (g *Gate) Allowed(p Principal, op acl.Op, topic, group string) bool {
	return g.rules.Decide(acl.Request{Principal: p.Name, Op: op, Topic: topic, Group: group}) == nil
}

// Audit logs an action a principal took that operators must be able to
// trace (an offset reset, say).
func (g *Gate) Audit(action string, p Principal, remote netip.Addr, op acl.Op, resource string) {
	g.log.Info("audit", "action", action, "principal", p.Name, "method", p.Method, "source", addrText(remote), "operation", string(op), "resource", resource)
}

func (g *Gate) audit(action, principal string, remote netip.Addr, op acl.Op, resource string, err error) {
	g.log.Warn("audit", "action", action, "principal", principal, "source", addrText(remote), "operation", string(op), "resource", resource, "error", err.Error())
}

func addrText(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.Unmap().String()
}

// Open is the gate of a gateway without auth: or acl: — everyone is the
// anonymous principal and may do anything.
func Open(log *slog.Logger) *Gate { return &Gate{log: log} }
