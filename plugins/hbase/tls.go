package hbase

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"os"
	"strings"

	"github.com/mqgate/mqgate/sdk"
)

// rawTLS is the `tls:` block: how the sink checks https gateways and,
// optionally, proves itself to them.
type rawTLS struct {
	CAFile             string `json:"ca_file"`
	CertFile           string `json:"cert_file"`
	KeyFile            string `json:"key_file"`
	ServerName         string `json:"server_name"`
	InsecureSkipVerify bool   `json:"insecure_skip_verify"`
}

// tlsSettings is the parsed `tls:` block.
type tlsSettings struct {
	config *tls.Config
}

// parseTLS reads the `tls:` block and the files it names. Every problem
// is reported, its key under "tls.".
func parseTLS(raw json.RawMessage) (*tlsSettings, sdk.ConfigErrors) {
	var r rawTLS
	var errs sdk.ConfigErrors
	if err := sdk.DecodeConfig(raw, &r); err != nil {
		ces := sdk.ConfigErrorsOf(err)
		for _, e := range ces {
			errs.Addf(strings.TrimSuffix("tls."+e.Key, "."), "%s", e.Msg)
		}
		if len(ces) == 1 && ces[0].Key == "" {
			return nil, errs // not an object: there are no keys to check
		}
	}
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         r.ServerName,
		InsecureSkipVerify: r.InsecureSkipVerify, //nolint:gosec // the operator's explicit choice, warned about at Configure
	}
	if r.CAFile != "" {
		pem, err := os.ReadFile(r.CAFile)
		pool := x509.NewCertPool()
		switch {
		case err != nil:
			errs.Addf("tls.ca_file", "reading the CA certificates: %v", err)
		case !pool.AppendCertsFromPEM(pem):
			errs.Addf("tls.ca_file", "no PEM certificate in %s", r.CAFile)
		}
		cfg.RootCAs = pool
	}
	switch {
	case r.CertFile != "" && r.KeyFile != "":
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
	return &tlsSettings{config: cfg}, errs
}
