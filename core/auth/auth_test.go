package auth

import (
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mqgate/mqgate/core/auth/acl"
	"github.com/mqgate/mqgate/core/config"
	"github.com/mqgate/mqgate/internal/syncbuf"
	"github.com/mqgate/mqgate/internal/testjwt"
	"github.com/mqgate/mqgate/sdk"
)

func hash(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:])
}

// signer is an issuer of JWTs whose JWKS is written to file.
type signer struct {
	*testjwt.Issuer
	jwks []byte
	file string
}

func newSigner(t testing.TB) signer { return newSignerKid(t, "k1") }

func newSignerKid(t testing.TB, kid string) signer {
	t.Helper()
	iss, err := testjwt.New(kid)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(file, iss.JWKS, 0o644); err != nil {
		t.Fatal(err)
	}
	return signer{iss, iss.JWKS, file}
}

func (s signer) token(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	out, err := s.Sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func gate(t testing.TB, cfg *config.Config, log *syncbuf.Buffer) *Gate {
	t.Helper()
	if log == nil {
		log = &syncbuf.Buffer{}
	}
	g, err := New(t.Context(), cfg, slog.New(slog.NewTextHandler(log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func TestAuthenticate(t *testing.T) {
	s := newSigner(t)
	cfg := &config.Config{Auth: &config.Auth{
		APIKeys:  []*config.APIKey{{Principal: "orders-svc", SHA256: hash("k-orders")}},
		JWT:      &config.JWT{JWKSFile: s.file, Issuer: "https://idp", Audience: "mqgate", PrincipalClaim: "sub", Leeway: time.Second},
		MTLS:     &config.MTLS{Principal: "cn"},
		Networks: []*config.Network{{CIDRs: []string{"10.1.0.0/16"}, Principal: "dc-east"}},
	}}
	var log syncbuf.Buffer
	g := gate(t, cfg, &log)
	now := time.Now()
	valid := jwt.MapClaims{"iss": "https://idp", "aud": "mqgate", "sub": "alice", "exp": now.Add(time.Hour).Unix()}
	with := func(k string, v any) jwt.MapClaims {
		c := jwt.MapClaims{}
		for kk, vv := range valid {
			c[kk] = vv
		}
		c[k] = v
		return c
	}
	other := newSigner(t)
	cert := &x509.Certificate{Subject: pkix.Name{CommonName: "billing"}}
	lan := netip.MustParseAddr("10.1.2.3")
	for _, c := range []struct {
		name   string
		creds  Credentials
		want   Principal
		refuse string
	}{
		{"API key as bearer", Credentials{Authorization: "Bearer k-orders"}, Principal{Name: "orders-svc", Method: MethodAPIKey}, ""},
		{"API key as Basic password", Credentials{Authorization: basic("orders-svc", "k-orders")}, Principal{Name: "orders-svc", Method: MethodBasic}, ""},
		{"Basic with another principal's key", Credentials{Authorization: basic("admin", "k-orders")}, Principal{}, `principal "admin"`},
		{"unknown key", Credentials{Authorization: "Bearer nope"}, Principal{}, "not a known API key or a JWT"},
		{"unknown key from a trusted network", Credentials{Authorization: "Bearer nope", Remote: lan}, Principal{}, "not a known API key"},
		{"JWT", Credentials{Authorization: "Bearer " + s.token(t, valid)}, Principal{Name: "alice", Method: MethodJWT}, ""},
		{"JWT expired", Credentials{Authorization: "Bearer " + s.token(t, with("exp", now.Add(-time.Hour).Unix()))}, Principal{}, "expired"},
		{"JWT without exp", Credentials{Authorization: "Bearer " + s.token(t, jwt.MapClaims{"iss": "https://idp", "aud": "mqgate", "sub": "alice"})}, Principal{}, "exp"},
		{"JWT for another audience", Credentials{Authorization: "Bearer " + s.token(t, with("aud", "other"))}, Principal{}, "audience"},
		{"JWT of another issuer", Credentials{Authorization: "Bearer " + s.token(t, with("iss", "https://evil"))}, Principal{}, "issuer"},
		{"JWT signed by another key", Credentials{Authorization: "Bearer " + other.token(t, valid)}, Principal{}, "JWT refused"},
		{"JWT without the principal claim", Credentials{Authorization: "Bearer " + s.token(t, with("sub", 7))}, Principal{}, `claim "sub"`},
		{"JWT alg none", Credentials{Authorization: "Bearer " + noneToken(valid)}, Principal{}, "JWT refused"},
		{"client certificate", Credentials{PeerCertificates: []*x509.Certificate{cert}}, Principal{Name: "billing", Method: MethodMTLS}, ""},
		{"network", Credentials{Remote: lan}, Principal{Name: "dc-east", Method: MethodNetwork}, ""},
		{"IPv4-mapped network", Credentials{Remote: netip.MustParseAddr("::ffff:10.1.2.3")}, Principal{Name: "dc-east", Method: MethodNetwork}, ""},
		{"nothing", Credentials{Remote: netip.MustParseAddr("192.168.1.1")}, Principal{}, "no credential"},
		{"bad scheme", Credentials{Authorization: "Digest x"}, Principal{}, "not Bearer or Basic"},
		{"API key as token", Credentials{Token: "k-orders"}, Principal{Name: "orders-svc", Method: MethodAPIKey}, ""},
		{"JWT as token", Credentials{Token: s.token(t, valid)}, Principal{Name: "alice", Method: MethodJWT}, ""},
		{"expired JWT as token", Credentials{Token: s.token(t, with("exp", now.Add(-time.Hour).Unix()))}, Principal{}, "expired"},
		{"unknown token from a trusted network", Credentials{Token: "nope", Remote: lan}, Principal{}, "not a known API key or a JWT"},
		{"token over the limit", Credentials{Token: strings.Repeat("k", maxCredentialBytes+1)}, Principal{}, "token of 16385 bytes is over the limit of 16384"},
		{"Authorization before token", Credentials{Authorization: "Bearer nope", Token: "k-orders"}, Principal{}, "not a known API key"},
		{"client certificate before token", Credentials{Token: "nope", PeerCertificates: []*x509.Certificate{cert}}, Principal{Name: "billing", Method: MethodMTLS}, ""},
		{"token before network", Credentials{Token: "k-orders", Remote: lan}, Principal{Name: "orders-svc", Method: MethodAPIKey}, ""},
	} {
		p, err := g.Authenticate(c.creds)
		switch {
		case c.refuse == "" && (err != nil || p.Name != c.want.Name || p.Method != c.want.Method):
			t.Errorf("%s: %+v, %v; want %+v", c.name, p, err, c.want)
		case c.refuse != "" && (sdk.CodeOf(err) != sdk.CodeUnauthenticated || !strings.Contains(err.Error(), c.refuse)):
			t.Errorf("%s: %+v, %v; want code 18 naming %q", c.name, p, err, c.refuse)
		}
	}
	if !strings.Contains(log.String(), `action="authentication refused"`) || !strings.Contains(log.String(), "source=192.168.1.1") {
		t.Errorf("refusals were not audited:\n%s", log.String())
	}
	if strings.Contains(log.String(), "k-orders") || strings.Contains(log.String(), "nope") {
		t.Errorf("the audit log holds a key:\n%s", log.String())
	}

	cfg.Auth.Anonymous = &config.Anonymous{Principal: "guest"}
	g = gate(t, cfg, nil)
	if p, err := g.Authenticate(Credentials{}); err != nil || p != (Principal{Name: "guest", Method: MethodAnonymous}) {
		t.Errorf("anonymous: %+v, %v", p, err)
	}
	if _, err := g.Authenticate(Credentials{Authorization: "Bearer wrong"}); sdk.CodeOf(err) != sdk.CodeUnauthenticated {
		t.Errorf("a wrong key with anonymous allowed: %v; want code 18, not anonymous", err)
	}
}

// A JWT's principal says when the token stops being accepted, so that a
// frontend remembering it can honour exp; an API key's never expires.
func TestPrincipalExpires(t *testing.T) {
	s := newSigner(t)
	g := gate(t, &config.Config{Auth: &config.Auth{
		APIKeys: []*config.APIKey{{Principal: "svc", SHA256: hash("key")}},
		JWT:     &config.JWT{JWKSFile: s.file, Issuer: "i", Audience: "a", PrincipalClaim: "sub", Leeway: 30 * time.Second},
	}}, nil)
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	p, err := g.Authenticate(Credentials{Token: s.token(t, jwt.MapClaims{"iss": "i", "aud": "a", "sub": "alice", "exp": exp.Unix()})})
	if err != nil || !p.Expires.Equal(exp.Add(30*time.Second)) {
		t.Errorf("JWT: %+v, %v; want Expires at exp plus the leeway, %v", p, err, exp.Add(30*time.Second))
	}
	if p, err := g.Authenticate(Credentials{Token: "key"}); err != nil || !p.Expires.IsZero() {
		t.Errorf("API key: %+v, %v; want no expiry", p, err)
	}
}

// Implicit finds a certificate's, a network's or the anonymous principal
// without auditing anything; NoCredential refuses with the frontend's
// words and audits the refusal.
func TestImplicitAndNoCredential(t *testing.T) {
	var log syncbuf.Buffer
	cfg := &config.Config{Auth: &config.Auth{
		APIKeys:  []*config.APIKey{{Principal: "svc", SHA256: hash("key")}},
		MTLS:     &config.MTLS{Principal: "cn"},
		Networks: []*config.Network{{CIDRs: []string{"10.1.0.0/16"}, Principal: "dc"}},
	}}
	g := gate(t, cfg, &log)
	cert := &x509.Certificate{Subject: pkix.Name{CommonName: "billing"}}
	outside := netip.MustParseAddr("192.168.1.1")
	for _, c := range []struct {
		name  string
		creds Credentials
		want  string // "": none
	}{
		{"certificate", Credentials{PeerCertificates: []*x509.Certificate{cert}, Remote: netip.MustParseAddr("10.1.0.1")}, "billing"},
		{"network", Credentials{Remote: netip.MustParseAddr("10.1.0.1")}, "dc"},
		{"a key is not looked at", Credentials{Token: "key", Authorization: "Bearer key", Remote: outside}, ""},
		{"nothing", Credentials{Remote: outside}, ""},
	} {
		p, ok := g.Implicit(c.creds)
		if ok != (c.want != "") || p.Name != c.want {
			t.Errorf("%s: %+v, %v; want %q", c.name, p, ok, c.want)
		}
	}
	if log.String() != "" {
		t.Errorf("Implicit audited:\n%s", log.String())
	}
	err := g.NoCredential(outside, `set the message property "tok"`)
	if sdk.CodeOf(err) != sdk.CodeUnauthenticated || err.Error() != `unauthenticated: no credential: set the message property "tok" (this gateway accepts API keys, client certificates)` {
		t.Errorf("NoCredential: %v", err)
	}
	if !strings.Contains(log.String(), `action="authentication refused" principal="" source=192.168.1.1`) {
		t.Errorf("the refusal was not audited:\n%s", log.String())
	}
	cfg.Auth.Anonymous = &config.Anonymous{Principal: "guest"}
	if p, ok := gate(t, cfg, nil).Implicit(Credentials{Remote: outside}); !ok || p.Name != "guest" {
		t.Errorf("anonymous: %+v, %v", p, ok)
	}
}

func noneToken(c jwt.MapClaims) string {
	tok := jwt.NewWithClaims(jwt.SigningMethodNone, c)
	s, _ := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
	return s
}

// idp serves a JWKS at URL, or 503 while jwks is nil.
type idp struct {
	*httptest.Server
	mu   sync.Mutex
	jwks []byte
}

func newIDP(t *testing.T, jwks []byte) *idp {
	p := &idp{jwks: jwks}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.jwks == nil {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(p.jwks)
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *idp) serve(jwks []byte) {
	p.mu.Lock()
	p.jwks = jwks
	p.mu.Unlock()
}

// eventually polls cond for up to 10 s.
func eventually(cond func() bool) bool {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

func jwksURLConfig(url string) *config.Config {
	return &config.Config{Auth: &config.Auth{JWT: &config.JWT{
		JWKSURL: url, Issuer: "https://idp", Audience: "mqgate", PrincipalClaim: "sub", JWKSRefresh: 20 * time.Millisecond,
	}}}
}

// A JWKS from a URL is fetched at start, again at once when a token names
// a key it does not hold (the provider rotated its keys), and again every
// jwks_refresh, which drops a key the provider revoked.
func TestJWKSFromURL(t *testing.T) {
	old, rotated := newSignerKid(t, "old"), newSignerKid(t, "new")
	p := newIDP(t, old.jwks)
	g := gate(t, jwksURLConfig(p.URL+"/jwks.json"), nil)
	claims := jwt.MapClaims{"iss": "https://idp", "aud": "mqgate", "sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}
	accepted := func(s signer) bool {
		p, err := g.Authenticate(Credentials{Authorization: "Bearer " + s.token(t, claims)})
		return err == nil && p.Name == "alice"
	}
	if !accepted(old) {
		t.Fatal("a token of the served key is refused")
	}
	p.serve(rotated.jwks)
	if !accepted(rotated) {
		t.Fatal("a token of the rotated key is refused")
	}
	if !eventually(func() bool { return !accepted(old) }) {
		t.Fatal("a token of the revoked key is still accepted after refreshes")
	}
	if accepted(newSignerKid(t, "rogue")) {
		t.Fatal("a token of a key the provider never served is accepted")
	}
}

// An identity provider that is down when the gateway starts does not stop
// it: the failure is logged, JWTs are refused, and accepted once a fetch
// succeeds.
func TestJWKSProviderDownAtStart(t *testing.T) {
	s := newSigner(t)
	p := newIDP(t, nil)
	var log syncbuf.Buffer
	g := gate(t, jwksURLConfig(p.URL), &log)
	if !strings.Contains(log.String(), "fetching the JWKS failed") || !strings.Contains(log.String(), p.URL) {
		t.Errorf("log = %s; want the failed fetch, naming the URL", log.String())
	}
	tok := "Bearer " + s.token(t, jwt.MapClaims{"iss": "https://idp", "aud": "mqgate", "sub": "alice", "exp": time.Now().Add(time.Hour).Unix()})
	if _, err := g.Authenticate(Credentials{Authorization: tok}); err == nil || !strings.Contains(err.Error(), "JWT refused") {
		t.Fatalf("a JWT while the JWKS is not fetched: %v; want refused", err)
	}
	p.serve(s.jwks)
	if !eventually(func() bool { _, err := g.Authenticate(Credentials{Authorization: tok}); return err == nil }) {
		t.Fatal("JWTs are still refused after the provider came back")
	}
}

func TestNoAuthIsAnonymousAndACLStillApplies(t *testing.T) {
	var log syncbuf.Buffer
	g := gate(t, &config.Config{ACL: []*config.ACLRule{
		{Principal: "anonymous", Effect: "allow", Operations: []string{"produce"}, Topics: []string{"public.*"}},
	}}, &log)
	p, err := g.Authenticate(Credentials{Authorization: "Bearer whatever"})
	if err != nil || p.Name != NoAuthPrincipal {
		t.Fatalf("without auth: %+v, %v", p, err)
	}
	remote := netip.MustParseAddr("127.0.0.1")
	if err := g.Authorize(p, remote, acl.Produce, "public.news", ""); err != nil {
		t.Errorf("allowed produce refused: %v", err)
	}
	err = g.Authorize(p, remote, acl.Consume, "public.news", "g")
	if sdk.CodeOf(err) != sdk.CodeNotAllowed || !strings.Contains(err.Error(), `consume on topic "public.news" as group "g"`) {
		t.Errorf("consume: %v; want code 13 naming the operation and resource", err)
	}
	if !strings.Contains(log.String(), `action="authorization refused" principal=anonymous source=127.0.0.1 operation=consume`) {
		t.Errorf("refusal not audited:\n%s", log.String())
	}
	if err := gate(t, &config.Config{}, nil).Authorize(p, remote, acl.Admin, "", ""); err != nil {
		t.Errorf("no acl: refused %v", err)
	}
}

func FuzzParseAuthorization(f *testing.F) {
	for _, s := range []string{"Bearer abc", basic("u", "p"), "Basic !!!", "bearer  x ", "Basic " + base64.StdEncoding.EncodeToString([]byte("nocolon")), ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		scheme, cred, err := ParseAuthorization(h)
		if err != nil {
			return
		}
		if scheme != "bearer" && scheme != "basic" || cred == "" {
			t.Fatalf("ParseAuthorization(%q) = %q, %q", h, scheme, cred)
		}
		if scheme == "basic" && !strings.Contains(cred, ":") {
			t.Fatalf("basic credential without a colon: %q", cred)
		}
	})
}

// FuzzAuthenticateToken feeds arbitrary bearer tokens, in an
// Authorization header and as a Thrift call's Token, to a gate with API
// keys and a JWKS: none but the known key and the valid token may pass.
func FuzzAuthenticateToken(f *testing.F) {
	s := newSigner(f)
	valid := s.token(f, jwt.MapClaims{"iss": "i", "aud": "a", "sub": "alice", "exp": time.Now().Add(24 * time.Hour).Unix()})
	g := gate(f, &config.Config{Auth: &config.Auth{
		APIKeys: []*config.APIKey{{Principal: "svc", SHA256: hash("key")}},
		JWT:     &config.JWT{JWKSFile: s.file, Issuer: "i", Audience: "a", PrincipalClaim: "sub"},
	}}, nil)
	f.Add(valid)
	f.Add("key")
	f.Add(valid[:len(valid)-2] + "AA")
	f.Add(noneToken(jwt.MapClaims{"iss": "i", "aud": "a", "sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}))
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, token string) {
		p, err := g.Authenticate(Credentials{Authorization: "Bearer " + token})
		if err == nil && strings.TrimSpace(token) != "key" && strings.TrimSpace(token) != valid {
			t.Fatalf("token %q authenticated as %+v", token, p)
		}
		// A Thrift call's token is taken as it is, without trimming.
		p, err = g.Authenticate(Credentials{Token: token})
		if err == nil && token != "key" && token != valid {
			t.Fatalf("Thrift token %q authenticated as %+v", token, p)
		}
	})
}

// A JWT's signature is checked once, then remembered until the sooner of
// jwtRecheck and its exp (plus leeway); a refusal is not remembered, and
// at most verifiedJWTs tokens are.
func TestVerifiedJWTsAreRemembered(t *testing.T) {
	s := newSigner(t)
	g := gate(t, &config.Config{Auth: &config.Auth{JWT: &config.JWT{JWKSFile: s.file, Issuer: "https://idp", Audience: "mqgate", PrincipalClaim: "sub"}}}, nil)
	now := time.Now()
	g.jwt.now = func() time.Time { return now }
	checks := 0
	g.jwt.parser = jwt.NewParser(jwt.WithValidMethods(jwtMethods), jwt.WithExpirationRequired(), jwt.WithTimeFunc(func() time.Time { checks++; return now }))
	short := s.token(t, jwt.MapClaims{"sub": "alice", "exp": now.Add(10 * time.Second).Unix()})
	long := s.token(t, jwt.MapClaims{"sub": "bob", "exp": now.Add(time.Hour).Unix()})
	auth := func(tok string) (Principal, error) {
		return g.Authenticate(Credentials{Authorization: "Bearer " + tok})
	}
	for range 3 {
		if p, err := auth(short); err != nil || p.Name != "alice" {
			t.Fatalf("short: %+v, %v", p, err)
		}
		if p, err := auth(long); err != nil || p.Name != "bob" {
			t.Fatalf("long: %+v, %v", p, err)
		}
		if _, err := auth(short + "x"); err == nil {
			t.Fatal("a forged token is accepted")
		}
	}
	if checks != 2 {
		t.Fatalf("%d checks of the two good tokens in three rounds; want each checked once", checks)
	}
	// Past its exp, a remembered token is checked again, and refused.
	now = now.Add(11 * time.Second)
	if _, err := auth(short); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired token: %v; want refused as expired", err)
	}
	// Past jwtRecheck, a token is checked again: a key dropped from the
	// JWKS stops its tokens within that time.
	checks = 0
	now = now.Add(jwtRecheck)
	if _, err := auth(long); err != nil || checks != 1 {
		t.Fatalf("long after jwtRecheck: %v, %d checks; want checked again", err, checks)
	}
	if g.jwt.verified.Len() > verifiedJWTs {
		t.Fatalf("%d tokens remembered; want at most %d", g.jwt.verified.Len(), verifiedJWTs)
	}
}
