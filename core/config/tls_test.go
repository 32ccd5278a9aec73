package config

import (
	"fmt"
	"testing"

	"github.com/mqgate/mqgate/internal/testcert"
)

func TestTLSFiles(t *testing.T) {
	dir := t.TempDir()
	ca := testcert.NewCA(t, "config")
	a, b := ca.Server(dir, "a"), ca.Server(dir, "b")
	const head = "version: 1\nplugins: {kafka: {builtin: kafka}}\nclusters: {local: {plugin: kafka}}\n"
	for _, tc := range []struct {
		name, yaml string
		want       *TLSConfig // of http.tls; thrift.tls is always absent
		err        string
	}{
		{name: "absent", yaml: "http: {listen: '0.0.0.0:8080'}"},
		{name: "null", yaml: "http: {tls: ~}"},
		{
			name: "a pair, 1.2 by default",
			yaml: fmt.Sprintf("http: {tls: {cert_file: %q, key_file: %q}}", a.CertFile, a.KeyFile),
			want: &TLSConfig{CertFile: a.CertFile, KeyFile: a.KeyFile, MinVersion: "1.2"},
		},
		{
			name: "mTLS and 1.3 written as a number",
			yaml: fmt.Sprintf("http: {tls: {cert_file: %q, key_file: %q, client_ca_file: %q, min_version: 1.3}}", a.CertFile, a.KeyFile, ca.CertFile),
			want: &TLSConfig{CertFile: a.CertFile, KeyFile: a.KeyFile, ClientCAFile: ca.CertFile, MinVersion: "1.3"},
		},
		{
			name: "a certificate with another's key",
			yaml: fmt.Sprintf("http: {tls: {cert_file: %q, key_file: %q}}", a.CertFile, b.KeyFile),
			err:  fmt.Sprintf("x.yaml:4: http.tls.cert_file: %s and key_file %s do not load as a certificate and its key: tls: private key does not match public key", a.CertFile, b.KeyFile),
		},
		{
			name: "a key without its certificate",
			yaml: fmt.Sprintf("thrift: {tls: {key_file: %q}}", a.KeyFile),
			err:  "x.yaml:4: thrift.tls.cert_file: required key is missing",
		},
		{
			name: "a key as the client CA",
			yaml: fmt.Sprintf("thrift: {tls: {cert_file: %q, key_file: %q, client_ca_file: %q}}", a.CertFile, a.KeyFile, a.KeyFile),
			err:  fmt.Sprintf("x.yaml:4: thrift.tls.client_ca_file: %s holds no PEM certificate", a.KeyFile),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("x.yaml", []byte(head+tc.yaml+"\n"))
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("Parse error:\n%v\nwant:\n%s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Thrift.TLS != nil {
				t.Errorf("thrift.tls = %+v, want nil", c.Thrift.TLS)
			}
			switch got := c.HTTP.TLS; {
			case tc.want == nil && got != nil:
				t.Fatalf("http.tls = %+v, want nil (plaintext)", got)
			case tc.want != nil && (got == nil || *got != *tc.want):
				t.Fatalf("http.tls = %+v, want %+v", got, tc.want)
			}
		})
	}
}
