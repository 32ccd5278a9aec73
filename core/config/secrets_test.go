package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// References are replaced by what they name wherever a string goes: the
// gateway's own keys, plugin config maps at any depth, list elements, and
// through aliases.
func TestReferencesAreExpanded(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("password", "s3cret\n\n") // one newline is trimmed, not two
	write("token", "tok\r\n")
	write("ca.pem", "no newline")
	t.Setenv("MQGATE_TEST_LISTEN", "127.0.0.1:18080")
	t.Setenv("MQGATE_TEST_USER", "alice")
	t.Setenv("MQGATE_TEST_EMPTY", "")
	file := filepath.Join(dir, "plugins.yaml")
	c, err := Parse(file, []byte(`version: 1
plugins:
  kafka: {builtin: kafka}
clusters:
  local:
    plugin: kafka
    config:
      brokers: ["${env:MQGATE_TEST_LISTEN}", "b:9092"]
      sasl:
        username: &user ${env:MQGATE_TEST_USER}
        password: ${file:`+filepath.Join(dir, "password")+`}
        token: "${file:`+filepath.Join(dir, "token")+`}"
        also: *user
        empty: ${env:MQGATE_TEST_EMPTY}
        inside: prefix-${env:MQGATE_TEST_USER}
        number: 5
      tls: {ca_file: '${file:`+filepath.Join(dir, "ca.pem")+`}'}
http:
  listen: ${env:MQGATE_TEST_LISTEN}
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.HTTP.Listen; got != "127.0.0.1:18080" {
		t.Errorf("http.listen = %q; want the environment variable's value", got)
	}
	want := map[string]any{
		"brokers": []any{"127.0.0.1:18080", "b:9092"},
		"sasl": map[string]any{
			"username": "alice",
			"password": "s3cret\n",
			"token":    "tok",
			"also":     "alice",
			"empty":    "",
			"inside":   "prefix-${env:MQGATE_TEST_USER}", // only a whole value is a reference
			"number":   5,
		},
		"tls": map[string]any{"ca_file": "no newline"},
	}
	if got := c.Clusters["local"].Config; !reflect.DeepEqual(got, want) {
		t.Errorf("cluster config = %#v\nwant %#v", got, want)
	}
}

// A value read through a reference never shows in an error, whether the
// gateway or a plugin finds fault with it: the reference does instead.
func TestSecretsStayOutOfErrors(t *testing.T) {
	const listen = "secret-listen-value"
	long := strings.Repeat("x", 30) + "-a-long-secret-beyond-forty-runes"
	t.Setenv("MQGATE_TEST_LISTEN", listen)
	t.Setenv("MQGATE_TEST_LONG", long)
	t.Setenv("MQGATE_TEST_PASSWORD", "hunter2!")
	data := []byte(`version: 1
plugins:
  kafka: {builtin: kafka}
clusters:
  local:
    plugin: kafka
    config: {sasl: {password: "${env:MQGATE_TEST_PASSWORD}"}}
http:
  listen: ${env:MQGATE_TEST_LISTEN}
  max_message_bytes: ${env:MQGATE_TEST_LONG}
`)
	c, errs := parse("plugins.yaml", data)
	if len(errs) != 2 {
		t.Fatalf("parse = %v; want two problems", errs)
	}
	for _, e := range errs {
		if strings.Contains(e.Msg, listen) || strings.Contains(e.Msg, long[:37]) {
			t.Errorf("error %q shows a secret", e)
		}
	}
	if !strings.Contains(errs[0].Msg, "${env:MQGATE_TEST_LISTEN}") || !strings.Contains(errs[1].Msg, "${env:MQGATE_TEST_LONG}") {
		t.Errorf("errors %v; want each to name the reference instead", errs)
	}
	// As a plugin would quote the value back.
	e := c.PluginError("local", "sasl.password", `want at most 4 characters, got "hunter2!" (hunter2!)`)
	if strings.Contains(e.Msg, "hunter2") || e.Line != 7 {
		t.Errorf("PluginError = %v; want the password replaced by its reference, at line 7", e)
	}
}
