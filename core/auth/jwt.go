package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/mqgate/mqgate/core/config"
)

// jwtMethods are the signing algorithms accepted: asymmetric only, so a
// JWKS (public keys) can verify them, and "none" or an HMAC keyed with a
// public key can never pass.
var jwtMethods = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// jwtVerifier checks bearer JWTs against a JWKS (golang-jwt parses and
// validates; keyfunc reads the key set, and refreshes one from a URL).
type jwtVerifier struct {
	keys   keyfunc.Keyfunc
	parser *jwt.Parser
	claim  string
	leeway time.Duration
}

func newJWTVerifier(ctx context.Context, c *config.JWT, dir string) (*jwtVerifier, error) {
	v := &jwtVerifier{claim: c.PrincipalClaim, leeway: c.Leeway, parser: jwt.NewParser(
		jwt.WithValidMethods(jwtMethods),
		jwt.WithIssuer(c.Issuer),
		jwt.WithAudience(c.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(c.Leeway),
	)}
	var err error
	if c.JWKSFile != "" {
		path := c.JWKSFile
		if !filepath.IsAbs(path) {
			path = filepath.Join(dir, path)
		}
		raw, rerr := os.ReadFile(path)
		if rerr != nil {
			return nil, fmt.Errorf("auth.jwt.jwks_file: %w", rerr)
		}
		if !json.Valid(raw) {
			return nil, fmt.Errorf("auth.jwt.jwks_file: %s is not JSON", path)
		}
		if v.keys, err = keyfunc.NewJWKSetJSON(raw); err != nil {
			return nil, fmt.Errorf("auth.jwt.jwks_file: %s: %w", path, err)
		}
		return v, nil
	}
	if v.keys, err = keyfunc.NewDefaultCtx(ctx, []string{c.JWKSURL}); err != nil {
		return nil, fmt.Errorf("auth.jwt.jwks_url: %w", err)
	}
	return v, nil
}

// verify returns the principal of a valid token and when the token stops
// being accepted (its exp plus the leeway).
func (v *jwtVerifier) verify(token string) (string, time.Time, error) {
	claims := jwt.MapClaims{}
	if _, err := v.parser.ParseWithClaims(token, claims, v.keys.Keyfunc); err != nil {
		return "", time.Time{}, fmt.Errorf("JWT refused: %v", err)
	}
	name, ok := claims[v.claim].(string)
	if !ok || name == "" {
		return "", time.Time{}, fmt.Errorf("JWT refused: it has no string claim %q (auth.jwt.principal_claim)", v.claim)
	}
	// The parser requires exp (WithExpirationRequired) and has read it.
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil {
		return "", time.Time{}, fmt.Errorf("JWT refused: no exp claim")
	}
	return name, exp.Time.Add(v.leeway), nil
}
