package kafka

import (
	"strings"
	"testing"
)

// Every mistake of a config is reported at once, each naming its key and
// what is wanted, so an operator fixes them in one go.
func TestParseConfigReportsEveryProblem(t *testing.T) {
	for _, tc := range []struct {
		name   string
		config string
		// want holds "key: text the message contains", in order.
		want []string
	}{
		{"valid embedded", `{"brokers": "embedded", "listen": "127.0.0.1:0", "data_dir": "d", "retention": "168h", "default_partitions": 2, "produce_timeout": "5s", "client_id": "x", "max_topics": 100}`, nil},
		{"valid external", `{"brokers": ["a:9092", "b:9092"], "produce_timeout": "5s"}`, nil},
		{"embedded, every key wrong", `{"brokers": "embedded", "data_dri": "x", "retention": "7d", "listen": "nohost", "data_dir": "", "produce_timeout": "-1s", "max_topics": 0, "default_partitions": 0}`, []string{
			"data_dri: unknown key; did you mean data_dir?",
			`listen: want host:port, got "nohost"`,
			"data_dir: must not be empty",
			`retention: want a duration like "168h" or "30s", got "7d"`,
			`produce_timeout: must be positive, got "-1s"`,
			"max_topics: must be at least 1, got 0",
			"default_partitions: must be at least 1, got 0",
		}},
		{"external brokers with embedded keys", `{"brokers": ["a:9092", "b", ":1"], "listen": "x:1", "data_dir": "d", "retention": "1h", "max_topics": 10, "bogus": true}`, []string{
			"bogus: unknown key; known keys are brokers, listen, data_dir",
			`brokers.1: want host:port, got "b"`,
			`brokers.2: missing host in ":1"`,
			"listen: applies only with brokers: embedded",
			"data_dir: applies only with brokers: embedded",
			"retention: applies only with brokers: embedded",
			"max_topics: applies only with brokers: embedded",
		}},
		{"wrong types are reported once", `{"brokers": "embedded", "default_partitions": "4", "retention": 7, "listen": ["a:1"]}`, []string{
			"default_partitions: want a int32, got a JSON string",
			"listen: want a string, got a JSON array",
			"retention: want a string, got a JSON number",
		}},
		{"brokers missing", `{"retention": "a week", "produce_timeout": "30s"}`, []string{
			`brokers: required; want "embedded" or a list of "host:port"`,
			`retention: want a duration like "168h" or "30s", got "a week"`,
		}},
		{"brokers neither embedded nor a list", `{"brokers": 5, "listen": "bad"}`, []string{
			`brokers: want "embedded" or a list of "host:port"`,
			`listen: want host:port, got "bad"`,
		}},
		{"not an object", `[1]`, []string{": config must be a JSON object"}},
		{"valid sasl, tls switched off", `{"brokers": ["a:9092"], "sasl": {"mechanism": "scram-sha-512", "username": "u", "password": "p"}, "tls": {"enabled": false, "ca_file": "/nonexistent"}}`, nil},
		{"valid oauth", `{"brokers": ["a:9092"], "sasl": {"mechanism": "OAUTHBEARER", "token": "t"}, "tls": null}`, nil},
		{"tls and sasl, every key wrong", `{"brokers": ["a:9092"], "tls": {"servername": "x", "ca_file": "/nonexistent/ca.pem", "cert_file": "c.pem"}, "sasl": {"mechanism": "SCRAM-SHA-256", "token": "t", "passwd": "x"}}`, []string{
			"tls.servername: unknown key; did you mean server_name?",
			"tls.ca_file: reading the CA certificates: open /nonexistent/ca.pem",
			"tls.key_file: required with tls.cert_file",
			"sasl.passwd: unknown key; did you mean password?",
			"sasl.username: required with mechanism SCRAM-SHA-256",
			"sasl.password: required with mechanism SCRAM-SHA-256",
			"sasl.token: applies only to mechanism OAUTHBEARER, not SCRAM-SHA-256",
		}},
		{"oauth with a user and no token", `{"brokers": ["a:9092"], "sasl": {"mechanism": "OAUTHBEARER", "username": "u", "password": "p"}}`, []string{
			"sasl.token: required with mechanism OAUTHBEARER",
			"sasl.username: applies only to mechanism PLAIN or SCRAM",
			"sasl.password: applies only to mechanism PLAIN or SCRAM",
		}},
		{"unknown mechanism, key without cert", `{"brokers": ["a:9092"], "tls": {"key_file": "k.pem", "insecure_skip_verify": "yes"}, "sasl": {"mechanism": "GSSAPI"}}`, []string{
			"tls.insecure_skip_verify: want a bool, got a JSON string",
			"tls.cert_file: required with tls.key_file",
			`sasl.mechanism: want one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER, got "GSSAPI"`,
		}},
		{"sasl without mechanism", `{"brokers": ["a:9092"], "sasl": {"username": "u"}}`, []string{
			"sasl.mechanism: required; want one of PLAIN, SCRAM-SHA-256",
		}},
		{"sasl values of the wrong type are reported once", `{"brokers": ["a:9092"], "sasl": {"mechanism": 1, "username": "u", "password": 2}}`, []string{
			"sasl.mechanism: want a string, got a JSON number",
			"sasl.password: want a string, got a JSON number",
		}},
		{"PLAIN with a password of the wrong type", `{"brokers": ["a:9092"], "sasl": {"mechanism": "PLAIN", "username": "u", "password": 2}}`, []string{
			"sasl.password: want a string, got a JSON number",
		}},
		{"blocks that are not objects", `{"brokers": ["a:9092"], "tls": true, "sasl": "PLAIN"}`, []string{
			"tls: must be a JSON object",
			"sasl: must be a JSON object",
		}},
		{"tls and sasl with the embedded broker", `{"brokers": "embedded", "tls": {"ca_file": "/nonexistent"}, "sasl": {"mechanism": "PLAIN"}}`, []string{
			"tls: applies only to external brokers, not brokers: embedded",
			"sasl: applies only to external brokers, not brokers: embedded",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errs := parseConfig([]byte(tc.config))
			if len(errs) != len(tc.want) {
				t.Fatalf("parseConfig(%s) = %v; want %d problems %q", tc.config, errs, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				key, text, _ := strings.Cut(w, ": ")
				if errs[i].Key != key || !strings.Contains(errs[i].Msg, text) {
					t.Errorf("problem %d = %s: %s; want %s: ...%s...", i, errs[i].Key, errs[i].Msg, key, text)
				}
			}
			// ValidateConfig is what mqgate check asks; it must say the same.
			if got := New(nil).ValidateConfig([]byte(tc.config)); len(got) != len(errs) {
				t.Errorf("ValidateConfig = %v; parseConfig = %v", got, errs)
			}
		})
	}
}

// The default of max_topics leaves a reserve for connections and state
// files and gives each topic two descriptors per partition, within bounds.
func TestDefaultMaxTopics(t *testing.T) {
	for _, tc := range []struct {
		soft       uint64
		partitions int32
		want       int
	}{
		{1024, 4, 64},        // half kept back: 512 / 8
		{4096, 4, 384},       // 1024 kept back: 3072 / 8
		{65536, 4, 8064},     // (65536 - 1024) / 8
		{1 << 20, 4, 10_000}, // capped
		{1 << 20, 1, 10_000}, // capped
		{8, 64, 1},           // never 0: one topic is always allowed
		{4096, 1, 1536},      // (4096 - 1024) / 2
	} {
		if got := defaultMaxTopics(tc.soft, tc.partitions); got != tc.want {
			t.Errorf("defaultMaxTopics(%d, %d) = %d; want %d", tc.soft, tc.partitions, got, tc.want)
		}
	}
}
