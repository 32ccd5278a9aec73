package config

import (
	"encoding/json"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/bad/*.golden from the current output")

// TestBadConfigs checks the exact `mqgate check` output for every file in
// testdata/bad against its .golden file.
func TestBadConfigs(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no bad configs: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".yaml"), func(t *testing.T) {
			c, err := Load(file)
			if err == nil {
				t.Fatalf("Load(%s) = %+v, want errors", file, c)
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Load(%s) error %T %v, want Errors", file, err, err)
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("reading golden file (run with -update to create it): %v", err)
			}
			if got != string(want) {
				t.Errorf("errors differ from %s\ngot:\n%s\nwant:\n%s", golden, got, want)
			}
			for i := 1; i < len(errs); i++ {
				if errs[i].Line < errs[i-1].Line {
					t.Errorf("errors not sorted by line: %d after %d", errs[i].Line, errs[i-1].Line)
				}
			}
		})
	}
}

func TestFullConfig(t *testing.T) {
	c, err := Load("testdata/good/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	wantDir, _ := filepath.Abs("testdata/good")
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"File", c.File, "testdata/good/full.yaml"},
		{"Dir", c.Dir, wantDir},
		{"Version", c.Version, 1},
		{"plugin kafka", *c.Plugins["kafka"], Plugin{Name: "kafka", Builtin: "kafka", Kind: KindBackend, line: 4}},
		{"plugin acme", *c.Plugins["acme"], Plugin{Name: "acme", Path: "/opt/mqgate/plugins/acme",
			SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", Kind: KindBackend, line: 5}},
		{"plugin archive", *c.Plugins["archive"], Plugin{Name: "archive", Path: "./plugins/archive", Kind: KindSink, line: 9}},
		{"clusters", len(c.Clusters), 2},
		{"cluster local plugin", c.Clusters["local"].Plugin, "kafka"},
		{"cluster local name", c.Clusters["local"].Name, "local"},
		{"cluster local config", c.Clusters["local"].Config, map[string]any{
			"brokers": "embedded", "listen": "127.0.0.1:9092", "data_dir": "./data/kafka",
			"default_partitions": 8, "retention": "72h",
		}},
		{"cluster other config", c.Clusters["other"].Config, map[string]any{
			"brokers": []any{"10.0.0.1:9092", "10.0.0.2:9092"},
			"tls":     map[string]any{"enabled": true, "ca": "/etc/ssl/ca.pem"},
			"ratio":   0.5,
			"nothing": nil,
		}},
		{"default cluster", c.DefaultCluster, "local"},
		{"topic orders", *c.Topics["orders"], Topic{Name: "orders", Cluster: "other"}},
		{"topic with null value", *c.Topics["orders.v2-eu_1"], Topic{Name: "orders.v2-eu_1", Cluster: "local"}},
		{"topic with empty mapping", *c.Topics["audit"], Topic{Name: "audit", Cluster: "local"}},
		{"topic with a rate limit", *c.Topics["payments"], Topic{Name: "payments", Cluster: "local", RateLimit: 100, Burst: 20}},
		{"topics.auto_create is no topic", len(c.Topics), 4},
		{"topics.auto_create", c.AutoCreateTopics, false},
		{"http", c.HTTP, HTTP{Listen: "0.0.0.0:8081", MaxMessageBytes: 512 << 10, MaxBodyBytes: 64 << 20, MaxBodyBytesInFlight: 96 << 20,
			MaxBatchMessages: 10000, RequestTimeout: 3 * time.Second, ShutdownTimeout: time.Minute,
			Limits: HTTPLimits{MaxConnections: 5000, MaxConnectionsPerSource: 200, IdleTimeout: 30 * time.Second, HeaderTimeout: 5 * time.Second}}},
		{"runtime", c.Runtime, Runtime{MemoryLimit: 3 << 30}},
		{"quota without limits", *c.Quotas[0], Quota{Principal: "ops"}},
		{"quota with every key", *c.Quotas[1], Quota{Principal: "ingest", MessagesPerSecond: 5000, Burst: 20000,
			BytesPerSecond: 8 << 20, BurstBytes: 32 << 20, MaxSessions: 4}},
		// The bursts default to a second's worth, and burst_bytes to at
		// least http.max_message_bytes (512KiB here).
		{"quota with default bursts", *c.Quotas[2], Quota{Principal: "team-*", MessagesPerSecond: 100, Burst: 100,
			BytesPerSecond: 256 << 10, BurstBytes: 512 << 10}},
		{"thrift", c.Thrift, Thrift{ProducerListen: "127.0.0.1:19613", ConsumerListen: "[::1]:19713",
			Transport: "buffered", Protocol: "binary", DDMQAnswers: "informative", MaxRequestBytesInFlight: 512 << 20,
			Limits: ThriftLimits{MaxConnections: 3000, IdleTimeout: 30 * time.Minute, ReadTimeout: 20 * time.Second}}},
		{"plugin_host", c.PluginHost, PluginHost{HealthInterval: 500 * time.Millisecond,
			RestartBackoffMax: 30 * time.Second, CallTimeout: 2 * time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !reflect.DeepEqual(tc.got, tc.want) {
				t.Errorf("got %#v\nwant %#v", tc.got, tc.want)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	for _, file := range []string{"testdata/good/minimal.yaml", "testdata/good/design.yaml"} {
		t.Run(filepath.Base(file), func(t *testing.T) {
			c, err := Load(file)
			if err != nil {
				t.Fatal(err)
			}
			want := HTTP{Listen: "127.0.0.1:8080", MaxMessageBytes: 1 << 20, MaxBodyBytes: 64 << 20, MaxBodyBytesInFlight: 256 << 20,
				MaxBatchMessages: 10000, RequestTimeout: 10 * time.Second, ShutdownTimeout: 15 * time.Second,
				Limits: HTTPLimits{IdleTimeout: 2 * time.Minute, HeaderTimeout: 10 * time.Second}, Console: true}
			if c.HTTP != want {
				t.Errorf("HTTP = %+v, want %+v", c.HTTP, want)
			}
			wantThrift := Thrift{ProducerListen: "127.0.0.1:9613", ConsumerListen: "127.0.0.1:9713",
				Transport: "framed", Protocol: "compact", DDMQAnswers: "strict",
				// read_timeout takes http.request_timeout; the connection
				// limits are derived from the descriptor limit at start.
				Limits: ThriftLimits{IdleTimeout: 10 * time.Minute, ReadTimeout: 10 * time.Second}}
			if c.Thrift != wantThrift {
				t.Errorf("Thrift = %+v, want %+v", c.Thrift, wantThrift)
			}
			wantProducer := Producer{Linger: time.Millisecond, MaxBatchMessages: 1000, MaxBatchBytes: 8 << 20,
				RetryBackoff: 20 * time.Millisecond, RetryBackoffMax: time.Second, SpoolDir: "./data/spool", SpoolMaxBytes: 1 << 30}
			if c.Producer != wantProducer {
				t.Errorf("Producer = %+v, want %+v", c.Producer, wantProducer)
			}
			wantHost := PluginHost{HealthInterval: time.Second, RestartBackoffMax: 2 * time.Second, CallTimeout: 10 * time.Second}
			if c.PluginHost != wantHost {
				t.Errorf("PluginHost = %+v, want %+v", c.PluginHost, wantHost)
			}
			if c.DefaultCluster != "local" {
				t.Errorf("DefaultCluster = %q, want local (the only cluster)", c.DefaultCluster)
			}
			if c.Topics == nil || len(c.Topics) != 0 {
				t.Errorf("Topics = %#v, want an empty map", c.Topics)
			}
			if !c.AutoCreateTopics {
				t.Error("AutoCreateTopics = false, want true: any topic may be produced to")
			}
			if got := c.ClusterFor("anything"); got != "local" {
				t.Errorf("ClusterFor(anything) = %q, want local", got)
			}
		})
	}
	c, err := Parse("minimal.yaml", []byte("version: 1\nplugins: {kafka: {builtin: kafka}}\nclusters: {local: {plugin: kafka}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if b, err := c.Clusters["local"].ConfigJSON(); err != nil || string(b) != "{}" {
		t.Errorf("ConfigJSON of a cluster without config = %s, %v; want {}", b, err)
	}
}

func TestClusterFor(t *testing.T) {
	c, err := Load("testdata/good/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ topic, want string }{
		{"orders", "other"},
		{"audit", "local"},
		{"not-listed", "local"},
	} {
		t.Run(tc.topic, func(t *testing.T) {
			if got := c.ClusterFor(tc.topic); got != tc.want {
				t.Errorf("ClusterFor(%q) = %q, want %q", tc.topic, got, tc.want)
			}
		})
	}
}

func TestConfigJSON(t *testing.T) {
	c, err := Load("testdata/good/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Clusters["other"].ConfigJSON()
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("ConfigJSON gave invalid JSON %s: %v", b, err)
	}
	want := map[string]any{
		"brokers": []any{"10.0.0.1:9092", "10.0.0.2:9092"},
		"tls":     map[string]any{"enabled": true, "ca": "/etc/ssl/ca.pem"},
		"ratio":   0.5,
		"nothing": nil,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ConfigJSON = %s, want the config as written", b)
	}
}

func TestLineOfAndPluginError(t *testing.T) {
	c, err := Load("testdata/good/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, cluster, key string
		want               string
	}{
		{"top key", "local", "data_dir", "testdata/good/full.yaml:16: clusters.local.config.data_dir: bad"},
		{"list element dotted", "other", "brokers.1", "testdata/good/full.yaml:22: clusters.other.config.brokers.1: bad"},
		{"list element bracketed", "other", "brokers[0]", "testdata/good/full.yaml:22: clusters.other.config.brokers[0]: bad"},
		{"nested", "other", "tls.ca", "testdata/good/full.yaml:23: clusters.other.config.tls.ca: bad"},
		{"missing key: config line", "local", "partitions", "testdata/good/full.yaml:13: clusters.local.config.partitions: bad"},
		{"missing nested key: deepest found", "other", "tls.cert", "testdata/good/full.yaml:23: clusters.other.config.tls.cert: bad"},
		{"whole map", "other", "", "testdata/good/full.yaml:21: clusters.other.config: bad"},
		{"unknown cluster", "nope", "x", "testdata/good/full.yaml: clusters.nope.config.x: bad"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := c.PluginError(tc.cluster, tc.key, "bad").String(); got != tc.want {
				t.Errorf("PluginError(%q, %q) = %q, want %q", tc.cluster, tc.key, got, tc.want)
			}
		})
	}

	// A cluster without config: points at the cluster itself.
	c, err = Load("testdata/good/minimal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Clusters["local"].LineOf("brokers"); got != 5 {
		t.Errorf("LineOf(brokers) without config: = %d, want 5 (the cluster's line)", got)
	}
}

// Inspect keeps what it could read of an invalid file, so that check can
// ask plugins about the clusters the problems do not touch.
func TestInspectAndCheckableClusters(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		wantErrs   int      // problems Inspect finds
		want       []string // the checkable clusters
	}{
		{"valid", `version: 1
plugins: {kafka: {builtin: kafka}, acme: {path: /bin/acme}}
clusters:
  a: {plugin: kafka, config: {brokers: embedded}}
  b: {plugin: acme}
default_cluster: a
`, 0, []string{"a", "b"}},
		{"problems elsewhere leave clusters checkable", `version: 2
plugins: {kafka: {builtin: kafka}}
clusters:
  a: {plugin: kafka, config: {data_dri: x}}
bogus: 1
http: {listen: nowhere}
`, 3, []string{"a"}},
		{"a problem in a cluster or its plugin leaves it out", `version: 1
plugins: {kafka: {builtin: kafka}, acme: {path: /bin/acme, sha256: "12"}, store: {path: /bin/store, kind: sink}}
clusters:
  a: {plugin: kafka, bogus: 1}
  b: {plugin: acme}
  c: {plugin: nope}
  d: {plugin: store}
  e: {plugin: kafka, config: {ratio: .inf}}
  f: {plugin: kafka, config: {retention: 7d}}
default_cluster: f
`, 5, []string{"f"}},
		{"not YAML", "version: [1\n", 1, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "plugins.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			c, errs, err := Inspect(path)
			if err != nil {
				t.Fatal(err)
			}
			if len(errs) != tc.wantErrs {
				t.Errorf("Inspect found %d problems, want %d:\n%v", len(errs), tc.wantErrs, errs)
			}
			if _, lerr := Load(path); (lerr == nil) != (len(errs) == 0) || (lerr != nil && lerr.Error() != errs.Error()) {
				t.Errorf("Load = %v; Inspect = %v; want the same problems", lerr, errs)
			}
			var got []string
			for _, cl := range c.CheckableClusters(errs) {
				got = append(got, cl.Name)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("CheckableClusters = %q, want %q", got, tc.want)
			}
		})
	}
	if _, _, err := Inspect("testdata/does-not-exist.yaml"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Inspect of a missing file: %v, want fs.ErrNotExist", err)
	}
}

func TestPluginEntryError(t *testing.T) {
	c, err := Load("testdata/good/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ plugin, want string }{
		{"kafka", "testdata/good/full.yaml:4: plugins.kafka: cannot start"},
		{"acme", "testdata/good/full.yaml:5: plugins.acme: cannot start"},
		{"nope", "testdata/good/full.yaml: plugins.nope: cannot start"},
	} {
		if got := c.PluginEntryError(tc.plugin, "cannot start").String(); got != tc.want {
			t.Errorf("PluginEntryError(%q) = %q, want %q", tc.plugin, got, tc.want)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load("testdata/does-not-exist.yaml")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load of a missing file: %v, want fs.ErrNotExist", err)
	}
	var errs Errors
	if errors.As(err, &errs) {
		t.Errorf("Load of a missing file gave Errors %v; want a plain error", errs)
	}
}

func TestInProcessOnlyForBuiltinsThatCan(t *testing.T) {
	defer func(saved map[string]string) { Builtins = saved }(Builtins)
	Builtins = map[string]string{"kafka": KindBackend, "rocketmq": KindBackend}
	data := []byte("version: 1\nplugins:\n  kafka: {builtin: kafka, in_process: true}\n  rmq: {builtin: rocketmq, in_process: true}\nclusters:\n  local: {plugin: kafka}\n  r: {plugin: rmq}\ndefault_cluster: local\n")
	_, err := Parse("p.yaml", data)
	want := `p.yaml:4: plugins.rmq.in_process: plugin "rocketmq" cannot run in the gateway's process; bundled plugins that can: kafka`
	if err == nil || err.Error() != want {
		t.Errorf("Parse = %v, want %q", err, want)
	}
	c, err := Parse("p.yaml", []byte("version: 1\nplugins:\n  kafka: {builtin: kafka, in_process: true}\nclusters:\n  local: {plugin: kafka}\n"))
	if err != nil || !c.Plugins["kafka"].InProcess {
		t.Errorf("Parse = %v, %v; want kafka in process", c, err)
	}
}

func TestBuiltinsExtend(t *testing.T) {
	defer func(saved map[string]string) { Builtins = saved }(Builtins)
	Builtins = map[string]string{"kafka": KindBackend, "redis": KindSink}
	data := []byte("version: 1\nplugins:\n  kafka: {builtin: kafka}\n  redis: {builtin: redis}\nclusters:\n  local: {plugin: redis}\n")
	_, err := Parse("p.yaml", data)
	want := "p.yaml:6: clusters.local.plugin: plugin \"redis\" is a sink; a cluster needs a backend"
	if err == nil || err.Error() != want {
		t.Errorf("Parse = %v, want %q", err, want)
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1", 1, true},
		{"10B", 10, true},
		{"512KiB", 512 << 10, true},
		{"1MiB", 1 << 20, true},
		{"2 GiB", 2 << 30, true},
		{"1MB", 0, false},
		{"1.5MiB", 0, false},
		{"MiB", 0, false},
		{"-1", 0, false},
		{"99999999999GiB", 0, false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseSize(tc.in)
			if (err == nil) != tc.ok || got != tc.want {
				t.Errorf("parseSize(%q) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
			}
		})
	}
}

// auth.thrift_token: {} turns the Thrift token on with its defaults.
func TestThriftTokenDefaults(t *testing.T) {
	c, err := Parse("plugins.yaml", []byte(`version: 1
plugins: {kafka: {builtin: kafka}}
clusters: {local: {plugin: kafka, config: {brokers: embedded}}}
auth:
  api_keys: [{principal: svc, sha256: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}]
  thrift_token: {}
`))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := *c.Auth.ThriftToken, (ThriftToken{Property: "mqgate-token", GroupSeparator: "@"}); got != want {
		t.Errorf("thrift_token: %+v; want %+v", got, want)
	}
}
