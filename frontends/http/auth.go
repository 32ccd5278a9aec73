package httpapi

import (
	"maps"
	"net/netip"
	"slices"

	"github.com/gin-gonic/gin"

	"github.com/mqgate/mqgate/core/auth"
	"github.com/mqgate/mqgate/core/auth/acl"
	"github.com/mqgate/mqgate/sdk"
)

// resourceOf says which topic and group a route acts on, from its path.
type resourceOf func(c *gin.Context) (topic, group string)

// pathResource is the :topic and :group of the path (either may be absent).
func pathResource(c *gin.Context) (string, string) { return c.Param("topic"), c.Param("group") }

// noResource is for routes about the gateway itself.
func noResource(*gin.Context) (string, string) { return "", "" }

// guard runs h for an authenticated request, once op on the route's
// resource is authorized; op "" leaves authorization to h (the resource is
// in the body). A refusal is answered by fail: 401 with code 18, or 403
// with code 13. The request's context carries its principal
// (auth.PrincipalFrom), for what the handler does on its behalf.
func (s *Server) guard(op acl.Op, res resourceOf, fail func(*gin.Context, error), h gin.HandlerFunc) gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := crossSite(c); err != nil {
			fail(c, err)
			return
		}
		p, err := s.gate.Authenticate(credentials(c))
		if err != nil {
			c.Header("WWW-Authenticate", `Bearer realm="mqgate"`)
			fail(c, err)
			return
		}
		c.Request = c.Request.WithContext(auth.WithPrincipal(c.Request.Context(), p))
		if op != "" {
			topic, group := res(c)
			if err := s.gate.Authorize(p, remoteAddr(c), op, topic, group); err != nil {
				fail(c, err)
				return
			}
		}
		h(c)
	}
}

// crossSite refuses a request a browser sent for a page of another site
// (Sec-Fetch-Site, which browsers set and nothing else does): a page
// elsewhere cannot have a browser that holds a client certificate, or a
// session of the console, act on the gateway for it. The console's own
// requests are same-origin; clients other than browsers send no such
// header.
func crossSite(c *gin.Context) error {
	switch site := c.GetHeader("Sec-Fetch-Site"); site {
	case "", "same-origin", "none":
		return nil
	default:
		return sdk.Errorf(sdk.CodeNotAllowed, "a request from a page of another site (Sec-Fetch-Site: %s) is refused: call the gateway from its own console or from a program", truncate(site))
	}
}

// guarded is guard answering with the standard error body.
func (s *Server) guarded(op acl.Op, res resourceOf, h gin.HandlerFunc) gin.HandlerFunc {
	return s.guard(op, res, s.abortWithError, h)
}

// authorize checks op on a resource a guarded handler found in the body.
func (s *Server) authorize(c *gin.Context, op acl.Op, topic, group string) error {
	return s.gate.Authorize(principalOf(c), remoteAddr(c), op, topic, group)
}

// credentials are what the request presents: its Authorization header,
// its source address and its verified client certificate.
func credentials(c *gin.Context) auth.Credentials {
	cr := auth.Credentials{Authorization: c.GetHeader("Authorization"), Remote: remoteAddr(c)}
	if t := c.Request.TLS; t != nil && len(t.VerifiedChains) > 0 && len(t.VerifiedChains[0]) > 0 {
		cr.PeerCertificates = t.VerifiedChains[0]
	}
	return cr
}

// remoteAddr is the TCP peer's address: no proxy header is trusted.
func remoteAddr(c *gin.Context) netip.Addr {
	ap, err := netip.ParseAddrPort(c.Request.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr()
}

// authorizeTopics checks op on every topic of offsets (as group), in name
// order so the refusal named is always the same.
func (s *Server) authorizeTopics(c *gin.Context, op acl.Op, offsets map[string]map[string]int64, group string) error {
	for _, topic := range slices.Sorted(maps.Keys(offsets)) {
		if err := s.authorize(c, op, topic, group); err != nil {
			return err
		}
	}
	return nil
}

// audit logs an action that moved state others rely on (a group's
// offsets), with the principal who took it.
func (s *Server) audit(c *gin.Context, action string, op acl.Op, resource string) {
	s.gate.Audit(action, principalOf(c), remoteAddr(c), op, resource)
}

// principalOf is the principal guard authenticated the request as.
func principalOf(c *gin.Context) auth.Principal {
	p, _ := auth.PrincipalFrom(c.Request.Context())
	return p
}
