package config

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// The config shown by the admin API holds no secret written in the file,
// wherever it is, and everything else as written.
func TestShownRedactsSecrets(t *testing.T) {
	t.Setenv("OTHER_PASSWORD", "swordfish")
	c, err := Parse("plugins.yaml", []byte(`version: 1
default_cluster: local
plugins: {kafka: {builtin: kafka}}
clusters:
  local:
    plugin: kafka
    config:
      brokers: ["k1:9092"]
      sasl: {mechanism: plain, user: svc, password: &pw hunter2}
      tls: {key_file: /etc/k.pem}
      credentials: {user: u1, pass: lists-too}
      tokens: [t-one, t-two]
      extra_password: *pw
  other:
    plugin: kafka
    config:
      brokers: ["k1:9092"]
      sasl: {mechanism: plain, user: svc2, password: "${env:OTHER_PASSWORD}"}
auth:
  api_keys:
    - {principal: ops, sha256: "`+strings.Repeat("ab", 32)+`"}
http: {listen: "127.0.0.1:8080", max_batch_messages: 500, console: false}
push:
  - name: hook
    topics: [orders]
    targets: ["https://hooks.example.com/orders"]
    headers: {Authorization: "Bearer abc123", X-Api-Key: k-999, X-Trace: keep-me}
  - name: hook2
    topics: [orders]
    targets: ["https://hooks.example.com/orders?access_token=qs-secret"]
`))
	if err != nil {
		t.Fatal(err)
	}
	shown, redacted, err := c.Shown()
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(shown)
	for _, secret := range []string{"hunter2", "swordfish", strings.Repeat("ab", 32), "abc123", "k-999", "lists-too", "t-one", "t-two", "u1", "qs-secret"} {
		if strings.Contains(string(out), secret) {
			t.Errorf("shown config holds a secret: %s", out)
		}
	}
	for _, kept := range []string{`"key_file":"/etc/k.pem"`, `"password":"${env:OTHER_PASSWORD}"`, `"user":"svc2"`, `"max_batch_messages":500`, `"console":false`, `"brokers":["k1:9092"]`, `"X-Trace":"keep-me"`} {
		if !strings.Contains(string(out), kept) {
			t.Errorf("shown config lacks %s: %s", kept, out)
		}
	}
	want := []string{"auth.api_keys[0].sha256", "clusters.local.config.extra_password", "clusters.local.config.sasl.password",
		"clusters.local.config.credentials.pass", "clusters.local.config.credentials.user", "clusters.local.config.tokens[0]", "clusters.local.config.tokens[1]",
		"push[0].headers.Authorization", "push[0].headers.X-Api-Key", "push[1].targets[0]"}
	slices.Sort(redacted)
	slices.Sort(want)
	if !slices.Equal(redacted, want) {
		t.Errorf("redacted %v, want %v", redacted, want)
	}
}
