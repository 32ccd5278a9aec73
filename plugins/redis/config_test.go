package redis

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mqgate/mqgate/internal/testcert"
	"github.com/mqgate/mqgate/sdk"
)

// hset is a valid command entry for configs that test something else.
const hset = `{"cmd": "HSET", "key": "'order:' + string(json.id)", "fields": {"status": "json.status"}}`

func TestConfigErrorsNameTheirKey(t *testing.T) {
	for _, tc := range []struct {
		name, config string
		key, msg     string // msg: a part of the message
	}{
		{"not an object", `[1]`, "", "JSON object"},
		{"unknown key", `{"addrs": ["h:1"], "comands": [` + hset + `]}`, "comands", "did you mean commands?"},
		{"bad mode", `{"mode": "ring", "addrs": ["h:1"], "commands": [` + hset + `]}`, "mode", "standalone, sentinel, cluster"},
		{"no addrs", `{"commands": [` + hset + `]}`, "addrs", "required"},
		{"two addrs standalone", `{"addrs": ["h:1", "h:2"], "commands": [` + hset + `]}`, "addrs", "mode: cluster"},
		{"bad addr", `{"mode": "cluster", "addrs": ["h:1", "nohost"], "commands": [` + hset + `]}`, "addrs[1]", "host:port"},
		{"addrs not a list", `{"addrs": "h:1", "commands": [` + hset + `]}`, "addrs", "want a []string"},
		{"sentinel without master", `{"mode": "sentinel", "addrs": ["h:1"], "commands": [` + hset + `]}`, "master_name", "required"},
		{"master_name outside sentinel", `{"addrs": ["h:1"], "master_name": "m", "commands": [` + hset + `]}`, "master_name", "only to mode sentinel"},
		{"sentinel_password outside sentinel", `{"addrs": ["h:1"], "sentinel_password": "p", "commands": [` + hset + `]}`, "sentinel_password", "only to mode sentinel"},
		{"db in cluster", `{"mode": "cluster", "addrs": ["h:1"], "db": 2, "commands": [` + hset + `]}`, "db", "only database 0"},
		{"negative db", `{"addrs": ["h:1"], "db": -1, "commands": [` + hset + `]}`, "db", "0 or more"},
		{"negative pool", `{"addrs": ["h:1"], "pool_size": -1, "commands": [` + hset + `]}`, "pool_size", "0 (the default"},
		{"bad timeout", `{"addrs": ["h:1"], "read_timeout": "3", "commands": [` + hset + `]}`, "read_timeout", "duration"},
		{"tls not an object", `{"addrs": ["h:1"], "tls": true, "commands": [` + hset + `]}`, "tls", "JSON object"},
		{"tls unknown key", `{"addrs": ["h:1"], "tls": {"ca": "x"}, "commands": [` + hset + `]}`, "tls.ca", "unknown key"},
		{"tls missing ca file", `{"addrs": ["h:1"], "tls": {"ca_file": "/nonexistent/ca.pem"}, "commands": [` + hset + `]}`, "tls.ca_file", "reading"},
		{"tls cert without key", `{"addrs": ["h:1"], "tls": {"cert_file": "c.pem"}, "commands": [` + hset + `]}`, "tls.key_file", "required"},
		{"no commands", `{"addrs": ["h:1"]}`, "commands", "at least one"},
		{"empty commands", `{"addrs": ["h:1"], "commands": []}`, "commands", "at least one"},
		{"command not an object", `{"addrs": ["h:1"], "commands": ["SET"]}`, "commands[0]", "want a command"},
		{"no cmd", `{"addrs": ["h:1"], "commands": [{"key": "key"}]}`, "commands[0].cmd", "required"},
		{"bad cmd", `{"addrs": ["h:1"], "commands": [` + hset + `, {"cmd": "HGET", "key": "key"}]}`, "commands[1].cmd", `unknown command "HGET"`},
		{"cmd not a string", `{"addrs": ["h:1"], "commands": [{"cmd": 1, "key": "key"}]}`, "commands[0].cmd", "want a string"},
		{"missing key expr", `{"addrs": ["h:1"], "commands": [{"cmd": "SET", "value": "value"}]}`, "commands[0].key", "required by SET"},
		{"missing value", `{"addrs": ["h:1"], "commands": [{"cmd": "set", "key": "key"}]}`, "commands[0].value", "required by SET"},
		{"key not taken", `{"addrs": ["h:1"], "commands": [{"cmd": "DEL", "key": "key", "value": "value"}]}`, "commands[0].value", "DEL takes no value; it takes key, when"},
		{"unknown key in command", `{"addrs": ["h:1"], "commands": [{"cmd": "SET", "key": "key", "value": "value", "expire": "3"}]}`, "commands[0].expire", "unknown key"},
		{"bad expression syntax", `{"addrs": ["h:1"], "commands": [{"cmd": "SET", "key": "'a' +", "value": "value"}]}`, "commands[0].key", "unexpected"},
		{"unknown variable", `{"addrs": ["h:1"], "commands": [{"cmd": "SET", "key": "key", "value": "paid"}]}`, "commands[0].value", "unknown name paid"},
		{"empty expression", `{"addrs": ["h:1"], "commands": [{"cmd": "SET", "key": " ", "value": "value"}]}`, "commands[0].key", "is empty"},
		{"expression not a string", `{"addrs": ["h:1"], "commands": [{"cmd": "SET", "key": ["k"], "value": "value"}]}`, "commands[0].key", "expression"},
		{"bad field expression", `{"addrs": ["h:1"], "commands": [{"cmd": "HSET", "key": "key", "fields": {"a": "value", "b": "json..x"}}]}`, "commands[0].fields.b", ""},
		{"fields a list for HSET", `{"addrs": ["h:1"], "commands": [{"cmd": "HSET", "key": "key", "fields": ["a"]}]}`, "commands[0].fields", "map of field names"},
		{"fields a map for HDEL", `{"addrs": ["h:1"], "commands": [{"cmd": "HDEL", "key": "key", "fields": {"a": "value"}}]}`, "commands[0].fields", "list of field names"},
		{"empty fields", `{"addrs": ["h:1"], "commands": [{"cmd": "HSET", "key": "key", "fields": {}}]}`, "commands[0].fields", "map of field names"},
		{"when not boolean", `{"addrs": ["h:1"], "commands": [{"cmd": "DEL", "key": "key", "when": "topic"}]}`, "commands[0].when", "bool"},
		{"zero ttl", `{"addrs": ["h:1"], "commands": [{"cmd": "EXPIRE", "key": "key", "ttl": 0}]}`, "commands[0].ttl", "time to live"},
		{"negative ttl duration", `{"addrs": ["h:1"], "commands": [{"cmd": "EXPIRE", "key": "key", "ttl": "-5s"}]}`, "commands[0].ttl", "time to live"},
		{"bad ttl expression", `{"addrs": ["h:1"], "commands": [{"cmd": "SET", "key": "key", "value": "value", "ttl": "json.ttl +"}]}`, "commands[0].ttl", "unexpected"},
		{"nx and xx", `{"addrs": ["h:1"], "commands": [{"cmd": "SET", "key": "key", "value": "value", "nx": true, "xx": true}]}`, "commands[0].xx", "exclude each other"},
		{"zero max_len", `{"addrs": ["h:1"], "commands": [{"cmd": "LPUSH", "key": "key", "value": "value", "max_len": 0}]}`, "commands[0].max_len", "1 or more"},
		{"approx without max_len", `{"addrs": ["h:1"], "commands": [{"cmd": "XADD", "key": "key", "fields": {"v": "value"}, "approx": true}]}`, "commands[0].approx", "max_len"},
		{"approx on LPUSH", `{"addrs": ["h:1"], "commands": [{"cmd": "LPUSH", "key": "key", "value": "value", "max_len": 5, "approx": true}]}`, "commands[0].approx", "LPUSH takes no approx"},
		{"zadd without score", `{"addrs": ["h:1"], "commands": [{"cmd": "ZADD", "key": "key", "member": "value"}]}`, "commands[0].score", "required by ZADD"},
		{"publish without channel", `{"addrs": ["h:1"], "commands": [{"cmd": "PUBLISH", "value": "value"}]}`, "commands[0].channel", "required by PUBLISH"},
		{"pairs not a list", `{"addrs": ["h:1"], "commands": [{"cmd": "MSET", "pairs": {"k": "v"}}]}`, "commands[0].pairs", "list of {key"},
		{"pair without value", `{"addrs": ["h:1"], "commands": [{"cmd": "MSET", "pairs": [{"key": "key"}]}]}`, "commands[0].pairs[0].value", "required"},
		{"pair unknown key", `{"addrs": ["h:1"], "commands": [{"cmd": "MSET", "pairs": [{"key": "key", "value": "value", "ttl": 3}]}]}`, "commands[0].pairs[0].ttl", "unknown key"},
		{"too many commands", `{"addrs": ["h:1"], "commands": [` + strings.Repeat(hset+",", maxCommands) + hset + `]}`, "commands", "at most"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errs := parseConfig([]byte(tc.config))
			for _, e := range errs {
				if e.Key == tc.key && strings.Contains(e.Msg, tc.msg) {
					return
				}
			}
			t.Errorf("problems %v; want one at %q saying %q", errs, tc.key, tc.msg)
		})
	}
}

// Every problem of a config comes at once, each at its key.
func TestConfigReportsEveryProblem(t *testing.T) {
	_, errs := parseConfig([]byte(`{"mode": "ring", "addrs": ["nohost"], "commands": [
		{"cmd": "SET", "key": "'a' +"}, {"cmd": "NOPE"}, {"cmd": "DEL", "key": "key", "score": "1"}]}`))
	want := []string{"mode", "addrs[0]", "commands[0].value", "commands[0].key", "commands[1].cmd", "commands[2].score"}
	for _, k := range want {
		if !errs.Has(k) {
			t.Errorf("no problem at %s in %v", k, errs)
		}
	}
}

func TestConfigAccepts(t *testing.T) {
	ca := testcert.NewCA(t, "redis")
	client := ca.Client(t.TempDir(), "client")
	for _, tc := range []struct {
		name, config string
		check        func(t *testing.T, c *config)
	}{
		{"defaults", `{"addrs": ["127.0.0.1:6379"], "commands": [` + hset + `]}`, func(t *testing.T, c *config) {
			if c.mode != modeStandalone || c.dialTimeout != defaultDialTimeout || c.readTimeout != defaultReadTimeout ||
				c.writeTimeout != defaultWriteTimeout || c.tls != nil {
				t.Errorf("defaults: %+v", c)
			}
		}},
		{"sentinel with tls", fmt.Sprintf(`{"mode": "sentinel", "master_name": "m", "addrs": ["a:1", "b:2"],
			"sentinel_password": "s", "username": "u", "password": "p", "db": 3,
			"tls": {"ca_file": %q, "cert_file": %q, "key_file": %q, "server_name": "redis.example"},
			"commands": [`+hset+`]}`, ca.CertFile, client.CertFile, client.KeyFile), func(t *testing.T, c *config) {
			if c.tls == nil || c.tls.RootCAs == nil || len(c.tls.Certificates) != 1 || c.tls.ServerName != "redis.example" || c.tls.InsecureSkipVerify {
				t.Errorf("tls: %+v", c.tls)
			}
			if c.masterName != "m" || c.db != 3 || len(c.addrs) != 2 {
				t.Errorf("sentinel: %+v", c)
			}
		}},
		{"tls turned off", `{"addrs": ["a:1"], "tls": {"enabled": false, "ca_file": "/nonexistent"}, "commands": [` + hset + `]}`,
			func(t *testing.T, c *config) {
				if c.tls != nil {
					t.Error("tls.enabled false left TLS on")
				}
			}},
		{"ttl forms", `{"addrs": ["a:1"], "commands": [
			{"cmd": "EXPIRE", "key": "key", "ttl": 3600},
			{"cmd": "EXPIRE", "key": "key", "ttl": "90s"},
			{"cmd": "EXPIRE", "key": "key", "ttl": "1.5"},
			{"cmd": "EXPIRE", "key": "key", "ttl": "json.ttl"}]}`, func(t *testing.T, c *config) {
			for i, want := range []time.Duration{time.Hour, 90 * time.Second, 1500 * time.Millisecond, 0} {
				if got := c.commands[i].ttl.fixed; got != want {
					t.Errorf("commands[%d].ttl = %v, want %v", i, got, want)
				}
			}
			if c.commands[3].ttl.expr == nil {
				t.Error("commands[3].ttl is not an expression")
			}
		}},
		{"every command", `{"mode": "cluster", "addrs": ["a:1"], "pool_size": 4, "dial_timeout": "1s", "commands": [
			{"cmd": "set", "key": "key", "value": "value", "ttl": 60, "nx": true},
			{"cmd": "MSET", "pairs": [{"key": "key", "value": "value"}]},
			{"cmd": "MSET", "pairs": "json"},
			{"cmd": "HMSET", "key": "key", "fields": "json"},
			{"cmd": "HDEL", "key": "key", "fields": ["a", "b"]},
			{"cmd": "HDEL", "key": "key", "fields": "json.gone"},
			{"cmd": "DEL", "key": "key", "when": "json.deleted == true"},
			{"cmd": "INCRBY", "key": "key", "by": 1},
			{"cmd": "RPUSH", "key": "key", "value": "value", "max_len": 100},
			{"cmd": "SADD", "key": "key", "member": "value"},
			{"cmd": "SREM", "key": "key", "member": "value"},
			{"cmd": "ZADD", "key": "key", "member": "value", "score": "offset", "xx": true},
			{"cmd": "ZREM", "key": "key", "member": "value"},
			{"cmd": "XADD", "key": "key", "fields": {"v": "value"}, "id": "string(offset) + '-1'", "max_len": 1000, "approx": true},
			{"cmd": "PUBLISH", "channel": "topic", "value": "value"}]}`, func(t *testing.T, c *config) {
			if len(c.commands) != 15 || c.commands[0].upper != "SET" || !c.commands[0].nx || c.poolSize != 4 {
				t.Errorf("commands: %d, first %+v", len(c.commands), c.commands[0])
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, errs := parseConfig([]byte(tc.config))
			if len(errs) > 0 {
				t.Fatalf("refused: %v", errs)
			}
			tc.check(t, c)
		})
	}
}

// FuzzConfig: no config, however malformed, panics the decoder, and every
// problem it reports names a key or the config as a whole with a message.
func FuzzConfig(f *testing.F) {
	for _, seed := range []string{
		`{"addrs": ["127.0.0.1:6379"], "commands": [` + hset + `]}`,
		`{"mode": "cluster", "addrs": ["a:1"], "commands": [{"cmd": "XADD", "key": "key", "fields": "json", "max_len": 5, "approx": true}]}`,
		`{"mode": "sentinel", "master_name": "m", "addrs": ["a:1"], "tls": {"insecure_skip_verify": true}, "commands": [{"cmd": "MSET", "pairs": [{"key": "key", "value": "value"}]}]}`,
		`{"addrs": ["a:1"], "commands": [{"cmd": "EXPIRE", "key": "key", "ttl": "1e400"}]}`,
		`{"commands": [{"cmd": "HDEL", "key": 1, "fields": [1]}]}`,
		`{"commands": [{"cmd": "ZADD", "key": "key", "member": "value", "score": "json.s", "nx": "yes"}]}`,
		`[]`, `null`, `{`, `{"commands": {}}`, `{"commands": [null, 1, "x", {}]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, errs := parseConfig(data)
		for _, e := range errs {
			if e == nil || e.Msg == "" {
				t.Fatalf("a problem without a message in %v", errs)
			}
		}
		if len(errs) == 0 {
			if c == nil || len(c.commands) == 0 || len(c.addrs) == 0 {
				t.Fatalf("accepted %s without commands or addresses", data)
			}
			if !json.Valid(data) {
				t.Fatalf("accepted invalid JSON %s", data)
			}
		}
		if got := (&Sink{}).ValidateConfig(data); len(got) != len(errs) {
			t.Fatalf("ValidateConfig found %d problems, parseConfig %d", len(got), len(errs))
		}
		_ = sdk.ConfigErrors(errs).Error()
	})
}
