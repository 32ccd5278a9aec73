package auth

import (
	"net/netip"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mqgate/mqgate/core/auth/acl"
	"github.com/mqgate/mqgate/core/config"
)

// BenchmarkRequest is what the gate costs one request: authenticate its
// credential and authorize a produce, under an ACL of three rules.
func BenchmarkRequest(b *testing.B) {
	s := newSigner(b)
	cfg := &config.Config{
		Auth: &config.Auth{
			APIKeys:   []*config.APIKey{{Principal: "bench-key", SHA256: hash("k")}},
			JWT:       &config.JWT{JWKSFile: s.file, Issuer: "https://idp", Audience: "mqgate", PrincipalClaim: "sub"},
			Anonymous: &config.Anonymous{Principal: "bench-anonymous"},
		},
		ACL: []*config.ACLRule{
			{Principal: "bench-*", Operations: []string{"produce"}, Topics: []string{"bench-*"}},
			{Principal: "bench-*", Effect: "deny", Operations: []string{"produce"}, Topics: []string{"bench-frozen"}},
			{Principal: "ops", Operations: []string{"metrics", "read-stats", "admin"}},
		},
	}
	g := gate(b, cfg, nil)
	tok := s.token(b, jwt.MapClaims{"iss": "https://idp", "aud": "mqgate", "sub": "bench-jwt", "exp": time.Now().Add(time.Hour).Unix()})
	remote := netip.MustParseAddr("127.0.0.1")
	for _, c := range []struct{ name, authorization string }{{"anonymous", ""}, {"API key", "Bearer k"}, {"JWT", "Bearer " + tok}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p, err := g.Authenticate(Credentials{Authorization: c.authorization, Remote: remote})
				if err != nil {
					b.Fatal(err)
				}
				if err := g.Authorize(p, remote, acl.Produce, "bench-http-auth", ""); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
