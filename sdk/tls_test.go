package sdk_test

import (
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mqgate/mqgate/internal/testcert"
	"github.com/mqgate/mqgate/sdk"
)

func TestParseClientTLS(t *testing.T) {
	ca := testcert.NewCA(t, "plugin")
	dir := t.TempDir()
	client := ca.Client(dir, "client")
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Run("every key", func(t *testing.T) {
		c, errs := sdk.ParseClientTLS("tls", []byte(fmt.Sprintf(`{"ca_file": %q, "cert_file": %q, "key_file": %q,
			"server_name": "store.example"}`, ca.CertFile, client.CertFile, client.KeyFile)))
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		if c == nil || c.RootCAs == nil || len(c.Certificates) != 1 || c.ServerName != "store.example" ||
			c.MinVersion != tls.VersionTLS12 || c.InsecureSkipVerify {
			t.Errorf("config = %+v", c)
		}
	})
	t.Run("an empty block is TLS with the system's CAs", func(t *testing.T) {
		c, errs := sdk.ParseClientTLS("tls", []byte(`{}`))
		if len(errs) > 0 || c == nil || c.RootCAs != nil {
			t.Errorf("config = %+v, %v", c, errs)
		}
	})
	t.Run("enabled false turns it off", func(t *testing.T) {
		c, errs := sdk.ParseClientTLS("tls", []byte(`{"enabled": false, "ca_file": "/nonexistent"}`))
		if len(errs) > 0 || c != nil {
			t.Errorf("config = %+v, %v; want no TLS and no problem", c, errs)
		}
	})
	for _, tc := range []struct {
		name, block, key, msg string
	}{
		{"not an object", `true`, "store_tls", "must be a JSON object"},
		{"unknown key", `{"ca_fil": "x"}`, "store_tls.ca_fil", "did you mean ca_file?"},
		{"wrong type", `{"insecure_skip_verify": "yes"}`, "store_tls.insecure_skip_verify", "want a bool"},
		{"missing CA file", `{"ca_file": "/nonexistent/ca.pem"}`, "store_tls.ca_file", "reading the CA certificates"},
		{"CA file without certificates", fmt.Sprintf(`{"ca_file": %q}`, garbage), "store_tls.ca_file", "no PEM certificate"},
		{"certificate without key", fmt.Sprintf(`{"cert_file": %q}`, client.CertFile), "store_tls.key_file", "required with store_tls.cert_file"},
		{"key without certificate", fmt.Sprintf(`{"key_file": %q}`, client.KeyFile), "store_tls.cert_file", "required with store_tls.key_file"},
		{"certificate that is not one", fmt.Sprintf(`{"cert_file": %q, "key_file": %q}`, garbage, client.KeyFile), "store_tls.cert_file", "loading the client certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errs := sdk.ParseClientTLS("store_tls", []byte(tc.block))
			if len(errs) != 1 || errs[0].Key != tc.key || !strings.Contains(errs[0].Msg, tc.msg) {
				t.Errorf("problems %v; want one at %s saying %q", errs, tc.key, tc.msg)
			}
		})
	}
}
