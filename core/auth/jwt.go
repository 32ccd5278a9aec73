package auth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"

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
	// verified remembers tokens that passed, by their SHA-256, so a
	// client that sends the same JWT with every request (HTTP) or call
	// (Thrift) has its signature checked once (about 100 µs for ES256)
	// rather than each time. Refusals are not remembered: each is
	// audited.
	verified *lru.Cache[[sha256.Size]byte, verifiedJWT]
	now      func() time.Time
}

// verifiedJWTs bounds the tokens a gate remembers; past it, the least
// recently used is verified again when next seen.
const verifiedJWTs = 4096

// jwtRecheck is how long a verified token is remembered at most, so a key
// that a JWKS refresh drops stops its tokens within this time too. A
// token is never remembered past its exp.
const jwtRecheck = time.Minute

type verifiedJWT struct {
	name             string
	expires, recheck time.Time
}

// jwksFetchTimeout bounds one fetch of a JWKS URL.
const jwksFetchTimeout = 10 * time.Second

// newJWTVerifier reads c's key set. A JWKS URL is fetched again in the
// background until ctx ends, so ctx must live as long as the verifier.
func newJWTVerifier(ctx context.Context, c *config.JWT, dir string, log *slog.Logger) (*jwtVerifier, error) {
	verified, err := lru.New[[sha256.Size]byte, verifiedJWT](verifiedJWTs)
	if err != nil {
		return nil, err
	}
	v := &jwtVerifier{claim: c.PrincipalClaim, leeway: c.Leeway, verified: verified, now: time.Now, parser: jwt.NewParser(
		jwt.WithValidMethods(jwtMethods),
		jwt.WithIssuer(c.Issuer),
		jwt.WithAudience(c.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(c.Leeway),
	)}
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
	failed := func(url string) func(context.Context, error) {
		return func(_ context.Context, err error) {
			log.Error("fetching the JWKS failed; JWTs signed by keys not yet fetched are refused until a fetch succeeds",
				"url", url, "err", err, "next", "at once for a token naming an unknown key (at most once a minute), else in auth.jwt.jwks_refresh")
		}
	}
	startAnyway := true
	if v.keys, err = keyfunc.NewDefaultOverrideCtx(ctx, []string{c.JWKSURL}, keyfunc.Override{
		HTTPTimeout:     jwksFetchTimeout,
		RefreshInterval: c.JWKSRefresh,
		// A token naming a key the set does not hold (the provider has
		// rotated its keys) fetches the set again, at most once a minute;
		// a request waits for that turn no longer than a fetch may take.
		RefreshUnknownKID:       rate.NewLimiter(rate.Every(time.Minute), 1),
		RateLimitWaitMax:        jwksFetchTimeout,
		RefreshErrorHandlerFunc: failed,
		// An identity provider that is down when the gateway starts does
		// not keep the gateway down: API keys, certificates and networks
		// work, and JWTs once a fetch succeeds. The failure is logged.
		NoErrorReturnFirstHTTPReq: &startAnyway,
	}); err != nil {
		return nil, fmt.Errorf("auth.jwt.jwks_url: %w", err)
	}
	return v, nil
}

// verify returns the principal of a valid token and when the token stops
// being accepted (its exp plus the leeway): remembered for a token that
// passed within jwtRecheck and has not expired, else checked.
func (v *jwtVerifier) verify(token string) (string, time.Time, error) {
	key := sha256.Sum256([]byte(token))
	now := v.now()
	if t, ok := v.verified.Get(key); ok && now.Before(t.recheck) {
		return t.name, t.expires, nil
	}
	name, expires, err := v.check(token)
	if err != nil {
		v.verified.Remove(key)
		return "", time.Time{}, err
	}
	recheck := now.Add(jwtRecheck)
	if expires.Before(recheck) {
		recheck = expires
	}
	v.verified.Add(key, verifiedJWT{name: name, expires: expires, recheck: recheck})
	return name, expires, nil
}

// check verifies token's signature and claims.
func (v *jwtVerifier) check(token string) (string, time.Time, error) {
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
