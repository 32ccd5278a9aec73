package config

import (
	"crypto/tls"
	"crypto/x509"
	"os"
)

// validateTLS reads the files of http.tls and thrift.tls, so that a
// certificate that cannot serve is found by `mqgate check` and at start,
// not at a client's first handshake.
func (d *decoder) validateTLS(c *Config) {
	for _, l := range []struct {
		key string
		tls *TLSConfig
	}{{"http.tls", c.HTTP.TLS}, {"thrift.tls", c.Thrift.TLS}} {
		if l.tls == nil || d.broken[l.key] {
			continue
		}
		d.checkTLSFiles(l.key, l.tls)
	}
}

func (d *decoder) checkTLSFiles(key string, t *TLSConfig) {
	certKey, keyKey, caKey := keyPath(key, "cert_file"), keyPath(key, "key_file"), keyPath(key, "client_ca_file")
	read := func(k, file string) []byte {
		if file == "" || d.broken[k] {
			return nil
		}
		b, err := os.ReadFile(file)
		if err != nil {
			d.errorf(d.lines[k], k, "%v", err)
			return nil
		}
		return b
	}
	certPEM, keyPEM := read(certKey, t.CertFile), read(keyKey, t.KeyFile)
	if certPEM != nil && keyPEM != nil {
		if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
			d.errorf(d.lines[certKey], certKey, "%s and key_file %s do not load as a certificate and its key: %v", t.CertFile, t.KeyFile, err)
		}
	}
	if caPEM := read(caKey, t.ClientCAFile); caPEM != nil && !x509.NewCertPool().AppendCertsFromPEM(caPEM) {
		d.errorf(d.lines[caKey], caKey, "%s holds no PEM certificate", t.ClientCAFile)
	}
}
