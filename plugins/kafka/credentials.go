package kafka

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/mqgate/mqgate/sdk"
)

// The SASL mechanisms the plugin offers, as Kafka names them.
const (
	mechPlain       = "PLAIN"
	mechScramSHA256 = "SCRAM-SHA-256"
	mechScramSHA512 = "SCRAM-SHA-512"
	mechOAuthBearer = "OAUTHBEARER"
)

// rawSASL is the `sasl:` block of the plugin config. Password and token
// are secrets: no message, log line or error ever carries their values.
type rawSASL struct {
	Mechanism string `json:"mechanism"`
	Username  string `json:"username"`
	Password  string `json:"password"`
	Token     string `json:"token"`
}

// credentials are how the plugin's clients prove themselves to an
// external cluster and check it in turn. The zero value is plaintext
// without SASL.
type credentials struct {
	// tls is nil when the connections are plaintext. It asks for TLS 1.2
	// at least.
	tls *tls.Config
	// mechanism is empty without SASL; then auth is nil.
	mechanism string
	username  string // for PLAIN and SCRAM; not a secret, it names the principal in errors
	auth      sasl.Mechanism
}

// opts are the kgo options that apply the credentials to a client.
func (c credentials) opts() []kgo.Opt {
	var opts []kgo.Opt
	if c.tls != nil {
		opts = append(opts, kgo.DialTLSConfig(c.tls))
	}
	if c.auth != nil {
		opts = append(opts, kgo.SASL(c.auth))
	}
	return opts
}

// warn logs the settings that weaken the connection's security, once, at
// Configure.
func (c credentials) warn(l *slog.Logger) {
	if c.tls != nil && c.tls.InsecureSkipVerify {
		l.Warn("tls.insecure_skip_verify is set: the brokers' certificates are not checked, so anyone on the path can pose as the cluster")
	}
	if c.tls == nil && c.mechanism == mechPlain {
		l.Warn("sasl mechanism PLAIN without tls: the password crosses the network in clear text")
	}
}

// who describes the SASL identity for error messages: the mechanism and,
// where there is one, the user name. It never includes a secret.
func (c credentials) who() string {
	if c.username == "" {
		return c.mechanism
	}
	return fmt.Sprintf("%s as user %q", c.mechanism, c.username)
}

// parseSASL decodes the sasl block into a mechanism kgo authenticates
// with. Every problem is reported, its key under "sasl."; none quotes a
// password or token.
func parseSASL(raw json.RawMessage) (credentials, sdk.ConfigErrors) {
	var r rawSASL
	var errs sdk.ConfigErrors
	if err := sdk.DecodeConfig(raw, &r); err != nil {
		errs = append(errs, prefixed("sasl", err)...)
		if len(errs) == 1 && errs[0].Key == "sasl" {
			return credentials{}, errs // not an object
		}
	}
	mech := strings.ToUpper(r.Mechanism)
	c := credentials{mechanism: mech, username: r.Username}
	// need reports key when it is empty; unwanted reports it when set. A
	// key whose value had the wrong type is already reported.
	need := func(key, v string) {
		if v == "" && !errs.Has("sasl."+key) {
			errs.Addf("sasl."+key, "required with mechanism %s", mech)
		}
	}
	unwanted := func(key, v, appliesTo string) {
		if v != "" {
			errs.Addf("sasl."+key, "applies only to mechanism %s, not %s", appliesTo, mech)
		}
	}
	switch mech {
	case mechPlain, mechScramSHA256, mechScramSHA512:
		need("username", r.Username)
		need("password", r.Password)
		unwanted("token", r.Token, mechOAuthBearer)
		switch mech {
		case mechPlain:
			c.auth = plain.Auth{User: r.Username, Pass: r.Password}.AsMechanism()
		case mechScramSHA256:
			c.auth = scram.Auth{User: r.Username, Pass: r.Password}.AsSha256Mechanism()
		default:
			c.auth = scram.Auth{User: r.Username, Pass: r.Password}.AsSha512Mechanism()
		}
	case mechOAuthBearer:
		need("token", r.Token)
		unwanted("username", r.Username, "PLAIN or SCRAM")
		unwanted("password", r.Password, "PLAIN or SCRAM")
		c.username = ""
		c.auth = oauth.Auth{Token: r.Token}.AsMechanism()
	case "":
		if !errs.Has("sasl.mechanism") {
			errs.Addf("sasl.mechanism", "required; want one of %s", strings.Join(mechanisms, ", "))
		}
	default:
		errs.Addf("sasl.mechanism", "want one of %s, got %q", strings.Join(mechanisms, ", "), r.Mechanism)
	}
	return c, errs
}

// mechanisms lists the SASL mechanisms in the order errors name them.
var mechanisms = []string{mechPlain, mechScramSHA256, mechScramSHA512, mechOAuthBearer}

// prefixed puts block's name in front of the keys of err, the errors of
// decoding that block with sdk.DecodeConfig.
func prefixed(block string, err error) sdk.ConfigErrors {
	var out sdk.ConfigErrors
	for _, e := range sdk.ConfigErrorsOf(err) {
		key := block
		if e.Key != "" {
			key += "." + e.Key
		}
		msg := e.Msg
		if e.Key == "" {
			msg = strings.Replace(msg, "config must be", "must be", 1)
		}
		out = append(out, &sdk.ConfigError{Key: key, Msg: msg})
	}
	return out
}
