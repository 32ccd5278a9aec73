// Package testjwt signs the JWTs that tests and benchmarks present to a
// gateway: an ES256 key, the JWKS that publishes it, and tokens it signs.
// It is for tests only; production keys come from an identity provider.
package testjwt

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"

	"github.com/golang-jwt/jwt/v5"
)

// Issuer signs tokens with one ES256 key, named Kid in its JWKS.
type Issuer struct {
	Kid string
	key *ecdsa.PrivateKey
	// JWKS is the key set that publishes the key, as an identity
	// provider serves it.
	JWKS []byte
}

// New makes an issuer with a new key named kid.
func New(kid string) (*Issuer, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	pub, err := k.PublicKey.Bytes() // 0x04 || X || Y
	if err != nil {
		return nil, err
	}
	b64 := base64.RawURLEncoding.EncodeToString
	jwks, err := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
		"x": b64(pub[1:33]), "y": b64(pub[33:]),
	}}})
	if err != nil {
		return nil, err
	}
	return &Issuer{Kid: kid, key: k, JWKS: jwks}, nil
}

// Sign returns a token of claims, its header naming the issuer's key.
func (i *Issuer) Sign(claims jwt.MapClaims) (string, error) {
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	tok.Header["kid"] = i.Kid
	return tok.SignedString(i.key)
}
