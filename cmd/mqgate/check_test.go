package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mqgate/mqgate/plugins/kafka"
	"github.com/mqgate/mqgate/sdk"
)

// unvalidatedPluginEnv makes the test binary serve a backend plugin that
// does not implement sdk.ConfigValidator, as a third-party plugin built
// before plugins could validate their config.
const unvalidatedPluginEnv = "MQGATE_TEST_UNVALIDATED_PLUGIN"

// unvalidatedBackend is a Backend without the ValidateConfig of the one it
// holds: only the methods of sdk.Backend are promoted.
type unvalidatedBackend struct{ sdk.Backend }

func serveUnvalidatedPlugin() {
	sdk.ServeBackend(unvalidatedBackend{kafka.New(sdk.Logger())})
}

// runCheck writes yaml (with {{dir}} replaced by a temporary directory) to
// a plugins.yaml and runs `mqgate check` on it in this process. It returns
// the exit code, the config's path and the lines of stdout and stderr, with
// the path replaced by FILE.
func runCheck(t *testing.T, yaml string) (code int, dir string, stdout, stderr []string) {
	t.Helper()
	dir = t.TempDir()
	path := filepath.Join(dir, "plugins.yaml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(yaml, "{{dir}}", dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	code = run([]string{"check", "-c", path}, &out, &errOut)
	lines := func(b *bytes.Buffer) []string {
		s := strings.TrimSpace(strings.ReplaceAll(b.String(), path, "FILE"))
		if s == "" {
			return nil
		}
		return strings.Split(s, "\n")
	}
	return code, dir, lines(&out), lines(&errOut)
}

// check asks each plugin about its clusters' config and prints every
// problem, the plugins' and the gateway's own together, sorted by line,
// without any broker running and without starting one.
func TestCheckReportsPluginConfigProblems(t *testing.T) {
	for _, tc := range []struct {
		name       string
		yaml       string
		wantCode   int
		wantStdout []string
		// wantStderr is every line check prints there; a line ending in
		// "..." is a prefix.
		wantStderr []string
	}{
		{
			name: "every problem of every cluster at once",
			yaml: `version: 1
plugins:
  kafka: {builtin: kafka}
  rocketmq: {builtin: rocketmq}
clusters:
  local:
    plugin: kafka
    config:
      brokers: embedded
      data_dri: x
      data_dir: {{dir}}/kafka
      retention: 7d
      default_partitions: 0
  trade:
    plugin: rocketmq
    config:
      nameserver: ["127.0.0.1:9876"]
      send_timeout: "10"
default_cluster: local
http: {listen: nowhere}
`,
			wantCode: 1,
			wantStderr: []string{
				`FILE:10: clusters.local.config.data_dri: unknown key; did you mean data_dir?`,
				`FILE:12: clusters.local.config.retention: want a duration like "168h" or "30s", got "7d"`,
				`FILE:13: clusters.local.config.default_partitions: must be at least 1, got 0`,
				`FILE:16: clusters.trade.config.nameservers: required; want a list of "host:port" (RocketMQ name servers)`,
				`FILE:17: clusters.trade.config.nameserver: unknown key; did you mean nameservers?`,
				`FILE:18: clusters.trade.config.send_timeout: want a duration like "168h" or "30s", got "10"`,
				`FILE:20: http.listen: invalid address "nowhere": missing port in address; want host:port, like 127.0.0.1:8080`,
			},
		},
		{
			name: "valid with no broker running",
			yaml: `version: 1
plugins:
  kafka: {builtin: kafka}
  rocketmq: {builtin: rocketmq}
clusters:
  local: {plugin: kafka, config: {brokers: ["127.0.0.1:1"], produce_timeout: 5s}}
  trade: {plugin: rocketmq, config: {nameservers: ["127.0.0.1:1"]}}
default_cluster: local
`,
			wantStdout: []string{"FILE: ok"},
		},
		{
			name: "every problem of every sink's plugin at its line",
			yaml: `version: 1
plugins:
  kafka: {builtin: kafka}
  redis: {builtin: redis}
  hdfs: {builtin: hdfs}
clusters:
  local: {plugin: kafka, config: {brokers: embedded, data_dir: {{dir}}/kafka}}
sinks:
  - name: cache
    topics: [orders]
    plugin: redis
    config:
      addrs: ["127.0.0.1:6379"]
      commands:
        - {cmd: HSET, key: "'order:' +", fields: {status: json.status}}
        - {cmd: FLY, key: "'x'"}
  - name: archive
    topics: [orders]
    plugin: hdfs
    config:
      namenodes: ["http://nn:9870"]
      path: relative/${topic}
`,
			wantCode: 1,
			wantStderr: []string{
				`FILE:15: sinks[0].config.commands[0].key: ...`,
				`FILE:16: sinks[0].config.commands[1].cmd: ...`,
				`FILE:22: sinks[1].config.path: ...`,
			},
		},
		{
			name: "a plugin in the gateway's process is asked too, and only kafka may run there",
			yaml: `version: 1
plugins:
  kafka: {builtin: kafka, in_process: true}
  rocketmq: {builtin: rocketmq, in_process: true}
clusters:
  local: {plugin: kafka, config: {brokers: embedded, data_dir: {{dir}}/kafka, retention: 7d}}
  trade: {plugin: rocketmq, config: {nameservers: ["127.0.0.1:1"]}}
default_cluster: local
`,
			wantCode: 1,
			wantStderr: []string{
				`FILE:4: plugins.rocketmq.in_process: plugin "rocketmq" cannot run in the gateway's process; bundled plugins that can: kafka`,
				`FILE:6: clusters.local.config.retention: want a duration like "168h" or "30s", got "7d"`,
			},
		},
		{
			name: "a plugin that cannot be started",
			yaml: `version: 1
plugins:
  kafka: {builtin: kafka}
  acme: {path: {{dir}}/no-such-plugin}
clusters:
  a: {plugin: acme}
  b: {plugin: acme, config: {anything: 1}}
  local: {plugin: kafka, config: {brokers: embedded, bogus: 1}}
default_cluster: local
`,
			wantCode: 1,
			wantStderr: []string{
				`FILE:4: plugins.acme: starting plugin acme: ...`,
				`FILE:8: clusters.local.config.bogus: unknown key; known keys are brokers, listen, ...`,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, dir, stdout, stderr := runCheck(t, tc.yaml)
			if code != tc.wantCode {
				t.Errorf("check exit code %d, want %d", code, tc.wantCode)
			}
			if !linesMatch(stdout, tc.wantStdout) {
				t.Errorf("check stdout:\n%s\nwant:\n%s", strings.Join(stdout, "\n"), strings.Join(tc.wantStdout, "\n"))
			}
			if !linesMatch(stderr, tc.wantStderr) {
				t.Errorf("check stderr:\n%s\nwant:\n%s", strings.Join(stderr, "\n"), strings.Join(tc.wantStderr, "\n"))
			}
			// The embedded broker would have made its data directory.
			if _, err := os.Stat(filepath.Join(dir, "kafka")); err == nil {
				t.Error("check started the embedded broker")
			}
		})
	}
}

// A secret that cannot be read is a problem at its key naming the variable
// or file; a secret that can is checked by the plugin like any value, and
// shows in no message.
func TestCheckReportsSecretProblems(t *testing.T) {
	t.Setenv("MQGATE_TEST_CHECK_PASSWORD", "check-secret-value")
	code, _, stdout, stderr := runCheck(t, `version: 1
plugins:
  kafka: {builtin: kafka}
clusters:
  local:
    plugin: kafka
    config:
      brokers: ["127.0.0.1:1"]
      sasl: {mechanism: SCRAM-SHA-256, username: alice, password: "${env:MQGATE_TEST_CHECK_UNSET}"}
  other:
    plugin: kafka
    config:
      brokers: ["127.0.0.1:1"]
      sasl: {mechanism: GSSAPI, username: alice, password: "${env:MQGATE_TEST_CHECK_PASSWORD}"}
  third:
    plugin: kafka
    config:
      brokers: ["127.0.0.1:1"]
      sasl:
        mechanism: PLAIN
        username: bob
        password: ${file:{{dir}}/no-such-secret}
default_cluster: local
`)
	want := []string{
		`FILE:9: clusters.local.config.sasl.password: ${env:MQGATE_TEST_CHECK_UNSET}: environment variable MQGATE_TEST_CHECK_UNSET is not set`,
		`FILE:14: clusters.other.config.sasl.mechanism: want one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER, got "GSSAPI"`,
		`FILE:22: clusters.third.config.sasl.password: ${file:...`,
	}
	if code != 1 || len(stdout) != 0 || !linesMatch(stderr, want) {
		t.Fatalf("check = %d\nstdout: %q\nstderr:\n%s\nwant:\n%s", code, stdout, strings.Join(stderr, "\n"), strings.Join(want, "\n"))
	}
	if out := strings.Join(append(stdout, stderr...), "\n"); strings.Contains(out, "check-secret-value") {
		t.Errorf("check printed the password:\n%s", out)
	}
	if !strings.Contains(stderr[2], "no-such-secret: no such file or directory") {
		t.Errorf("missing file reported as %q; want the file named and why", stderr[2])
	}
}

// linesMatch reports whether got is want, line for line; a wanted line
// ending in "..." matches any line it is a prefix of.
func linesMatch(got, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	for i, w := range want {
		if p, ok := strings.CutSuffix(w, "..."); ok && strings.HasPrefix(got[i], p) {
			continue
		}
		if got[i] != w {
			return false
		}
	}
	return true
}

// A plugin built before plugins could validate their config still works
// with check: it is noted, not counted as a problem.
func TestCheckNotesPluginThatDoesNotValidate(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	wrapper := filepath.Join(dir, "old-plugin")
	script := fmt.Sprintf("#!/bin/sh\n%s=1 exec %q\n", unvalidatedPluginEnv, self)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	code, _, stdout, stderr := runCheck(t, fmt.Sprintf(`version: 1
plugins:
  old: {path: %q}
clusters:
  a: {plugin: old, config: {brokers: embedded, data_dri: x}}
  b: {plugin: old, config: {brokers: embedded}}
default_cluster: a
`, wrapper))
	want := []string{
		"FILE:3: plugins.old: note: the plugin does not validate its config before start; the gateway checks it when it starts the plugin",
		"FILE: ok",
	}
	if code != 0 || !linesMatch(stdout, want) || stderr != nil {
		t.Fatalf("check = %d\nstdout:\n%s\nstderr:\n%s\nwant 0 and stdout:\n%s", code,
			strings.Join(stdout, "\n"), strings.Join(stderr, "\n"), strings.Join(want, "\n"))
	}
}

// The config shipped in the repository passes check, run as users run it:
// the mqgate binary, its bundled plugins started from itself.
func TestCheckPassesShippedConfig(t *testing.T) {
	shipped, err := filepath.Abs(filepath.Join("..", "..", "plugins.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		run  func() (int, string, string)
	}{
		{"in process", func() (int, string, string) {
			var stdout, stderr bytes.Buffer
			code := run([]string{"check", "-c", shipped}, &stdout, &stderr)
			return code, stdout.String(), stderr.String()
		}},
		{"the mqgate binary", func() (int, string, string) {
			var stdout, stderr bytes.Buffer
			cmd := exec.Command(mqgateBin, "check", "-c", shipped)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			if err != nil {
				code = -1
				if ee, ok := err.(*exec.ExitError); ok {
					code = ee.ExitCode()
				}
			}
			return code, stdout.String(), stderr.String()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := tc.run()
			if code != 0 || stdout != shipped+": ok\n" || stderr != "" {
				t.Fatalf("check of the shipped plugins.yaml = %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
			}
		})
	}
}

// serve, given a config check would refuse, stops with every problem the
// plugin found, each at its line, not only the first.
func TestServeReportsEveryPluginConfigProblem(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "plugins.yaml")
	yaml := fmt.Sprintf(`version: 1
plugins:
  kafka: {builtin: kafka}
clusters:
  local:
    plugin: kafka
    config:
      brokers: embedded
      data_dri: x
      retention: 7d
http: {listen: %q}
thrift: {producer_listen: %q, consumer_listen: %q}
producer: {spool_dir: %q}
`, anyPort, anyPort, anyPort, filepath.Join(dir, "spool"))
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(mqgateBin, "serve", "-c", path).CombinedOutput()
	if err == nil {
		t.Fatal("the gateway started with an invalid plugin config")
	}
	for _, want := range []string{
		path + `:9: clusters.local.config.data_dri: unknown key; did you mean data_dir?`,
		path + `:10: clusters.local.config.retention: want a duration like \"168h\" or \"30s\", got \"7d\"`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("serve output lacks %s:\n%s", want, out)
		}
	}
}
