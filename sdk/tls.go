package sdk

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"os"
	"strings"
)

// clientTLS is the TLS block of a plugin's config, as ParseClientTLS reads
// it.
type clientTLS struct {
	Enabled            *bool  `json:"enabled"`
	CAFile             string `json:"ca_file"`
	CertFile           string `json:"cert_file"`
	KeyFile            string `json:"key_file"`
	ServerName         string `json:"server_name"`
	InsecureSkipVerify bool   `json:"insecure_skip_verify"`
}

// ParseClientTLS reads the block of a plugin's config at key (usually
// "tls") that makes its connections to a broker or a store use TLS, so
// that every plugin's block has the same keys and the same errors:
//
//	enabled               false turns TLS off without deleting the block
//	ca_file               PEM CAs the server's certificate must chain to (default: the system's)
//	cert_file, key_file   a client certificate and its key, PEM; both or neither
//	server_name           the name the server's certificate must carry
//	insecure_skip_verify  do not check the server's certificate
//
// raw is the block's JSON. It loads the files the block names, so that a
// file missing or malformed is a problem at its key, and reports every
// problem, each under key. The config asks for TLS 1.2 at least. It is nil
// for a block that turns TLS off; an empty block is TLS with the system's
// CAs. Warning about insecure_skip_verify is the caller's.
func ParseClientTLS(key string, raw json.RawMessage) (*tls.Config, ConfigErrors) {
	var r clientTLS
	var errs ConfigErrors
	for _, e := range ConfigErrorsOf(DecodeConfig(raw, &r)) {
		if e.Key == "" { // not an object
			return nil, ConfigErrors{{Key: key, Msg: strings.Replace(e.Msg, "config must be", "must be", 1)}}
		}
		errs.Addf(key+"."+e.Key, "%s", e.Msg)
	}
	if r.Enabled != nil && !*r.Enabled {
		return nil, errs
	}
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         r.ServerName,
		InsecureSkipVerify: r.InsecureSkipVerify, //nolint:gosec // the operator's explicit choice, which the plugin warns about
	}
	if r.CAFile != "" {
		pem, err := os.ReadFile(r.CAFile)
		switch {
		case err != nil:
			errs.Addf(key+".ca_file", "reading the CA certificates: %v", err)
		default:
			cfg.RootCAs = x509.NewCertPool()
			if !cfg.RootCAs.AppendCertsFromPEM(pem) {
				errs.Addf(key+".ca_file", "no PEM certificate in %s", r.CAFile)
			}
		}
	}
	switch {
	case r.CertFile != "" && r.KeyFile != "":
		// The error names the files and what is wrong with them, never
		// their contents.
		cert, err := tls.LoadX509KeyPair(r.CertFile, r.KeyFile)
		if err != nil {
			errs.Addf(key+".cert_file", "loading the client certificate and key: %v", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	case r.CertFile != "":
		errs.Addf(key+".key_file", "required with %s.cert_file", key)
	case r.KeyFile != "":
		errs.Addf(key+".cert_file", "required with %s.key_file", key)
	}
	return cfg, errs
}
