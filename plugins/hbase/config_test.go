package hbase

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mqgate/mqgate/sdk"
)

// baseConfig is a valid config as a map, for tests to change one key of.
func baseConfig() map[string]any {
	return map[string]any{
		"urls":    []string{"http://127.0.0.1:1"},
		"table":   "'users'",
		"row":     "json.user_id",
		"columns": map[string]string{"info:name": "json.name"},
	}
}

// with returns baseConfig with keys set (nil deletes one), as JSON.
func with(kv ...any) []byte { return configJSON(baseConfig(), kv...) }

func TestConfigErrorsNameTheirKeys(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		config []byte
		keys   []string // every key the errors must name
	}{
		{"not an object", []byte(`[]`), []string{""}},
		{"unknown key", with("tabel", "'x'"), []string{"tabel"}},
		{"urls missing", with("urls", nil), []string{"urls"}},
		{"urls wrong type", with("urls", "http://x"), []string{"urls"}},
		{"url scheme", with("urls", []string{"ftp://x"}), []string{"urls.0"}},
		{"url without host", with("urls", []string{"http://ok", "http://"}), []string{"urls.1"}},
		{"url with credentials", with("urls", []string{"http://u:p@x"}), []string{"urls.0"}},
		{"url with query", with("urls", []string{"http://x/?a=1"}), []string{"urls.0"}},
		{"encoding", with("encoding", "xml"), []string{"encoding"}},
		{"table missing", with("table", nil), []string{"table"}},
		{"table does not compile", with("table", "'a' +"), []string{"table"}},
		{"row missing", with("row", ""), []string{"row"}},
		{"row unknown variable", with("row", "jsn.id"), []string{"row"}},
		{"column without qualifier", with("columns", map[string]string{"info": "value"}), []string{"columns.info"}},
		{"column without family", with("columns", map[string]string{":a": "value"}), []string{"columns.:a"}},
		{"column expression", with("columns", map[string]string{"info:a": "value +"}), []string{"columns.info:a"}},
		{"column expression empty", with("columns", map[string]string{"info:a": " "}), []string{"columns.info:a"}},
		{"columns missing for put", with("columns", nil), []string{"columns"}},
		{"timestamp", with("timestamp", "timestamp_ms +"), []string{"timestamp"}},
		{"op misspelt", with("op", "puts"), []string{"op"}},
		{"delete_columns with put", with("delete_columns", []string{"info"}), []string{"delete_columns"}},
		{"delete_columns glob", with("op", "delete", "delete_columns", []string{"info:a*"}), []string{"delete_columns.0"}},
		{"delete_columns family", with("op", "delete", "delete_columns", []string{":a"}), []string{"delete_columns.0"}},
		{"check missing", with("op", "check_and_put"), []string{"check"}},
		{"check with put", with("check", map[string]string{"column": "info:name", "value": "'x'"}), []string{"check"}},
		{"check unknown key", with("op", "check_and_put", "check", map[string]string{"colum": "info:name", "value": "'x'"}), []string{"check.colum", "check.column"}},
		{"check not an object", with("op", "check_and_put", "check", "info:name"), []string{"check"}},
		{"check column not written", with("op", "check_and_put", "check", map[string]string{"column": "info:v", "value": "'x'"}), []string{"check.column"}},
		{"check column a family", with("op", "check_and_put", "columns", map[string]string{"info:": "'a'"}, "check", map[string]string{"column": "info:", "value": "'x'"}), []string{"check.column"}},
		{"check value", with("op", "check_and_put", "check", map[string]string{"column": "info:name"}), []string{"check.value"}},
		{"check value compiles", with("op", "check_and_put", "check", map[string]string{"column": "info:name", "value": "("}), []string{"check.value"}},
		{"timeout", with("timeout", "soon"), []string{"timeout"}},
		{"timeout negative", with("timeout", "-1s"), []string{"timeout"}},
		{"max_idle_conns", with("max_idle_conns", 0), []string{"max_idle_conns"}},
		{"max_request_bytes", with("max_request_bytes", 10), []string{"max_request_bytes"}},
		{"max_concurrent_requests", with("max_concurrent_requests", 1000), []string{"max_concurrent_requests"}},
		{"password without username", with("password", "secret"), []string{"username"}},
		{"username with colon", with("username", "a:b"), []string{"username"}},
		{"tls with http urls", with("tls", map[string]any{}), []string{"tls"}},
		{"tls unknown key", with("urls", []string{"https://x"}, "tls", map[string]any{"ca": "x"}), []string{"tls.ca"}},
		{"tls ca file missing", with("urls", []string{"https://x"}, "tls", map[string]any{"ca_file": filepath.Join(dir, "none")}), []string{"tls.ca_file"}},
		{"tls ca file not PEM", with("urls", []string{"https://x"}, "tls", map[string]any{"ca_file": notPEM}), []string{"tls.ca_file"}},
		{"tls cert without key", with("urls", []string{"https://x"}, "tls", map[string]any{"cert_file": notPEM}), []string{"tls.key_file"}},
		{"every problem at once", with("urls", nil, "encoding", "xml", "row", nil), []string{"urls", "encoding", "row"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errs := parseConfig(tc.config)
			for _, k := range tc.keys {
				if !slices.ContainsFunc(errs, func(e *sdk.ConfigError) bool { return e.Key == k }) {
					t.Errorf("parseConfig(%s) = %v; want a problem with key %q", tc.config, errs, k)
				}
			}
			if s := New(nil); s.ValidateConfig(tc.config).Error() != errs.Error() {
				t.Errorf("ValidateConfig and parseConfig disagree")
			}
		})
	}
}

func TestConfigNeverQuotesThePassword(t *testing.T) {
	_, errs := parseConfig(with("password", "hunter2-secret", "username", "a:b", "urls", []string{"http://u:hunter2-secret@x"}))
	if len(errs) == 0 || strings.Contains(errs.Error(), "hunter2-secret") {
		t.Errorf("errors %q quote the password (or there are none)", errs)
	}
}

func TestValidConfigs(t *testing.T) {
	for _, tc := range []struct {
		name   string
		config []byte
		check  func(t *testing.T, c *config)
	}{
		{"defaults", with(), func(t *testing.T, c *config) {
			if c.encoding != encodingProtobuf || c.timeout != defaultTimeout || c.concurrency != defaultConcurrency ||
				c.maxRequestBytes != defaultMaxRequestBytes || c.mapping.op != opPut {
				t.Errorf("defaults not applied: %+v", c)
			}
		}},
		{"json and delete", with("encoding", "json", "op", "delete", "columns", nil, "delete_columns", []string{"info", "info:a"}), func(t *testing.T, c *config) {
			if c.encoding != encodingJSON || c.mapping.op != opDelete || len(c.mapping.deleteColumns) != 2 {
				t.Errorf("got %+v", c.mapping)
			}
		}},
		{"op expression", with("op", "json.deleted ? 'delete' : 'put'", "delete_columns", []string{"info"},
			"check", map[string]string{"column": "info:name", "value": "nil"}), func(t *testing.T, c *config) {
			if c.mapping.opExpr == nil || c.mapping.check == nil {
				t.Errorf("got %+v", c.mapping)
			}
		}},
		{"url path kept, slash dropped", with("urls", []string{"https://gw.example:8443/hbase/"}, "tls", map[string]any{"server_name": "gw"}), func(t *testing.T, c *config) {
			if c.urls[0].Path != "/hbase" || c.tls == nil || c.tls.ServerName != "gw" {
				t.Errorf("urls %v tls %+v", c.urls, c.tls)
			}
		}},
		{"the gateway's key", with("mqgate", sdk.SinkInfo{Sink: "s", Group: "g", Gateway: "h-1"}), func(t *testing.T, c *config) {
			if c.info.Sink != "s" {
				t.Errorf("info %+v", c.info)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, errs := parseConfig(tc.config)
			if len(errs) > 0 {
				t.Fatalf("parseConfig(%s): %v", tc.config, errs)
			}
			tc.check(t, c)
		})
	}
}

// FuzzParseConfig: no config makes the decoder panic, and a config it
// refuses is refused with every problem naming a key or the whole.
func FuzzParseConfig(f *testing.F) {
	f.Add(with())
	f.Add(with("op", "check_and_put", "check", map[string]string{"column": "info:name", "value": "'x'"}))
	f.Add(with("urls", []string{"https://x"}, "tls", map[string]any{"insecure_skip_verify": true}))
	f.Add([]byte(`{"columns":{"a:b":"1","c":""},"op":"x ? 'put' : 'delete'","delete_columns":["a"]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, errs := parseConfig(data)
		if (c == nil) == (len(errs) == 0) {
			t.Fatalf("parseConfig(%q) = %v, %v: want a config or problems, not both or neither", data, c, errs)
		}
		for _, e := range errs {
			if e == nil || e.Msg == "" {
				t.Fatalf("parseConfig(%q): a problem without a message: %v", data, errs)
			}
		}
	})
}
