package redis

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"os"
	"strings"

	"github.com/mqgate/mqgate/sdk"
)

// rawTLS is the `tls:` block of the plugin config. Setting the block turns
// TLS on; `enabled: false` turns it off without deleting the rest.
type rawTLS struct {
	Enabled            *bool  `json:"enabled"`
	CAFile             string `json:"ca_file"`
	CertFile           string `json:"cert_file"`
	KeyFile            string `json:"key_file"`
	ServerName         string `json:"server_name"`
	InsecureSkipVerify bool   `json:"insecure_skip_verify"`
}

// parseTLS decodes the tls block and loads the files it names, so that a
// missing or malformed file is a config error naming its key. It returns
// nil for a block that turns TLS off. Every problem is reported, its key
// under "tls.".
func parseTLS(raw json.RawMessage) (*tls.Config, sdk.ConfigErrors) {
	var r rawTLS
	var errs sdk.ConfigErrors
	for _, e := range sdk.ConfigErrorsOf(sdk.DecodeConfig(raw, &r)) {
		if e.Key == "" { // not an object
			return nil, sdk.ConfigErrors{{Key: "tls", Msg: strings.Replace(e.Msg, "config must be", "must be", 1)}}
		}
		errs.Addf("tls."+e.Key, "%s", e.Msg)
	}
	if r.Enabled != nil && !*r.Enabled {
		return nil, errs
	}
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         r.ServerName,
		InsecureSkipVerify: r.InsecureSkipVerify, //nolint:gosec // the operator's explicit choice, warned about at Configure
	}
	if r.CAFile != "" {
		pem, err := os.ReadFile(r.CAFile)
		switch {
		case err != nil:
			errs.Addf("tls.ca_file", "reading the CA certificates: %v", err)
		default:
			cfg.RootCAs = x509.NewCertPool()
			if !cfg.RootCAs.AppendCertsFromPEM(pem) {
				errs.Addf("tls.ca_file", "no PEM certificate in %s", r.CAFile)
			}
		}
	}
	switch {
	case r.CertFile != "" && r.KeyFile != "":
		// The error names the files and what is wrong with them, never
		// their contents.
		cert, err := tls.LoadX509KeyPair(r.CertFile, r.KeyFile)
		if err != nil {
			errs.Addf("tls.cert_file", "loading the client certificate and key: %v", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	case r.CertFile != "":
		errs.Addf("tls.key_file", "required with tls.cert_file")
	case r.KeyFile != "":
		errs.Addf("tls.cert_file", "required with tls.key_file")
	}
	return cfg, errs
}
